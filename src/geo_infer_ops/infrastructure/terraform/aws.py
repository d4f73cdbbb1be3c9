"""AWS (hashicorp/aws provider v5): network, compute group, load balancer, storage, backups.

What a spec becomes:

- ``vpc`` -> ``aws_vpc.main``, one ``aws_subnet`` per subnet, ``aws_internet_gateway.main``, a
  public route table (default route to the gateway) and, with ``nat_gateway``, a NAT gateway and a
  private route table; every subnet associated with its table.
- security groups ``lb`` (80/443 from ``allowed_cidrs``), ``app`` (the app port from the load
  balancer) and ``efs`` (NFS from the app), as separate rule resources (provider v5 style).
- ``compute`` -> ``aws_launch_template.app`` (Amazon Linux 2023, encrypted gp3 root volume, IMDSv2,
  EFS mounted at ``/mnt/efs``) and ``aws_autoscaling_group.app`` with a target-tracking CPU policy.
- ``load_balancer`` -> ``aws_lb.app`` (application), ``aws_lb_target_group.app`` (health check on
  ``health_check_path``) and a listener: HTTPS (certificate from ``var.certificate_arn``) with an
  HTTP->HTTPS redirect when ``encryption_in_transit``, plain HTTP otherwise.
- ``s3_bucket`` -> bucket, versioning, server-side encryption (KMS when ``encryption_at_rest``,
  AES256 otherwise), public access block, a TLS-only bucket policy when ``encryption_in_transit``,
  a lifecycle rule when ``archive_after_days``.
- ``efs_volume`` -> encrypted ``aws_efs_file_system.data`` and one mount target per zone.
- ``backup_strategy`` daily|weekly -> ``aws_backup_vault``, ``aws_backup_plan``, ``aws_backup_selection``
  (with its IAM role).
- ``vpc_endpoints`` -> an S3 gateway endpoint on every route table.
"""

from __future__ import annotations

import json

from ..spec import InfrastructureSpec, parse_size
from ._doc import TerraformDoc, ref

AL2023_FILTER = "al2023-ami-2023.*-x86_64"


def render(spec: InfrastructureSpec) -> TerraformDoc:
    doc = TerraformDoc("aws")
    c, st, sec = spec.compute, spec.storage, spec.security
    doc.terraform = {
        "required_version": ">= 1.5",
        "required_providers": {"aws": {"source": "hashicorp/aws", "version": "~> 5.0"}},
    }
    tags = {"Project": spec.name, "Environment": spec.environment, "ManagedBy": "geo-infer-ops", **spec.tags}
    doc.provider = {"aws": {"region": "${var.region}", "default_tags": {"tags": tags}}}
    doc.var("region", "string", "AWS region", spec.region)
    doc.var("name", "string", "Prefix of every resource name", spec.name)
    doc.var("instance_type", "string", "EC2 instance type of the compute group", c.instance_type)
    doc.var(
        "allowed_cidrs",
        "list(string)",
        "CIDR blocks allowed to reach the load balancer",
        list(sec.allowed_cidrs),
    )
    doc.var("ami_id", "string", "AMI of the instances; empty = latest Amazon Linux 2023", "")
    doc.locals = {"name": "${var.name}"}

    _network(doc, spec)
    _security_groups(doc, spec)
    if sec.encryption_at_rest:
        doc.add(
            "aws_kms_key",
            "main",
            {
                "description": "${var.name} data at rest (S3, EFS, EBS, backups)",
                "enable_key_rotation": True,
                "deletion_window_in_days": 30,
            },
        )
        doc.add(
            "aws_kms_alias",
            "main",
            {"name": "alias/${var.name}", "target_key_id": ref("aws_kms_key.main", "key_id")},
        )
    if st.efs_volume:
        _efs(doc, spec)
    _compute(doc, spec)
    if c.load_balancer:
        _load_balancer(doc, spec)
    if st.s3_bucket:
        _bucket(doc, spec)
    if st.backup_strategy != "none":
        _backup(doc, spec)
    if sec.vpc_endpoints:
        tables = [ref(a) for a in doc.addresses if a.startswith("aws_route_table.")]
        doc.add(
            "aws_vpc_endpoint",
            "s3",
            {
                "vpc_id": ref("aws_vpc.main"),
                "service_name": "com.amazonaws.${var.region}.s3",
                "vpc_endpoint_type": "Gateway",
                "route_table_ids": tables,
                "tags": {"Name": "${local.name}-s3"},
            },
        )
    _outputs(doc, spec)
    return doc


def _network(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    doc.add(
        "aws_vpc",
        "main",
        {
            "cidr_block": spec.vpc.cidr,
            "enable_dns_support": True,
            "enable_dns_hostnames": True,
            "tags": {"Name": "${local.name}"},
        },
    )
    doc.add(
        "aws_internet_gateway", "main", {"vpc_id": ref("aws_vpc.main"), "tags": {"Name": "${local.name}"}}
    )
    doc.add(
        "aws_route_table", "public", {"vpc_id": ref("aws_vpc.main"), "tags": {"Name": "${local.name}-public"}}
    )
    doc.add(
        "aws_route",
        "public_internet",
        {
            "route_table_id": ref("aws_route_table.public"),
            "destination_cidr_block": "0.0.0.0/0",
            "gateway_id": ref("aws_internet_gateway.main"),
        },
    )
    names = spec.subnet_names()
    has_private = any(not s.public for s in spec.vpc.subnets)
    if has_private:
        doc.add(
            "aws_route_table",
            "private",
            {"vpc_id": ref("aws_vpc.main"), "tags": {"Name": "${local.name}-private"}},
        )
    first_public = next(n for n, s in zip(names, spec.vpc.subnets, strict=False) if s.public)
    for name, s in zip(names, spec.vpc.subnets, strict=False):
        doc.add(
            "aws_subnet",
            name,
            {
                "vpc_id": ref("aws_vpc.main"),
                "cidr_block": s.cidr,
                "availability_zone": s.availability_zone,
                "map_public_ip_on_launch": False,
                "tags": {"Name": f"${{local.name}}-{name}", "Tier": "public" if s.public else "private"},
            },
        )
        doc.add(
            "aws_route_table_association",
            name,
            {
                "subnet_id": ref(f"aws_subnet.{name}"),
                "route_table_id": ref(f"aws_route_table.{'public' if s.public else 'private'}"),
            },
        )
    if spec.vpc.nat_gateway and has_private:
        doc.add("aws_eip", "nat", {"domain": "vpc", "tags": {"Name": "${local.name}-nat"}})
        doc.add(
            "aws_nat_gateway",
            "main",
            {
                "allocation_id": ref("aws_eip.nat"),
                "subnet_id": ref(f"aws_subnet.{first_public}"),
                "depends_on": ["aws_internet_gateway.main"],
                "tags": {"Name": "${local.name}"},
            },
        )
        doc.add(
            "aws_route",
            "private_nat",
            {
                "route_table_id": ref("aws_route_table.private"),
                "destination_cidr_block": "0.0.0.0/0",
                "nat_gateway_id": ref("aws_nat_gateway.main"),
            },
        )


def _rule(
    doc: TerraformDoc,
    name: str,
    group: str,
    port: int,
    *,
    cidr: str | None = None,
    source: str | None = None,
    description: str,
) -> None:
    body = {
        "security_group_id": ref(f"aws_security_group.{group}"),
        "description": description,
        "ip_protocol": "tcp",
        "from_port": port,
        "to_port": port,
    }
    if cidr is not None:
        body["cidr_ipv4"] = cidr
    if source is not None:
        body["referenced_security_group_id"] = ref(f"aws_security_group.{source}")
    doc.add("aws_vpc_security_group_ingress_rule", name, body)


def _security_groups(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    c, sec = spec.compute, spec.security
    groups = ["app"]
    if c.load_balancer:
        groups.insert(0, "lb")
    if spec.storage.efs_volume:
        groups.append("efs")
    for group in groups:
        doc.add(
            "aws_security_group",
            group,
            {
                "name": f"${{local.name}}-{group}",
                "description": f"{spec.name} {group}",
                "vpc_id": ref("aws_vpc.main"),
                "tags": {"Name": f"${{local.name}}-{group}"},
            },
        )
        doc.add(
            "aws_vpc_security_group_egress_rule",
            f"{group}_all",
            {
                "security_group_id": ref(f"aws_security_group.{group}"),
                "ip_protocol": "-1",
                "cidr_ipv4": "0.0.0.0/0",
            },
        )
    if c.load_balancer:
        for i, cidr in enumerate(sec.allowed_cidrs):
            suffix = "" if i == 0 else f"_{i + 1}"
            _rule(
                doc,
                f"lb_http{suffix}",
                "lb",
                80,
                cidr=cidr,
                description="HTTP (redirected to HTTPS when TLS is on)",
            )
            if sec.encryption_in_transit:
                _rule(doc, f"lb_https{suffix}", "lb", 443, cidr=cidr, description="HTTPS")
        _rule(
            doc, "app_from_lb", "app", c.app_port, source="lb", description="app port from the load balancer"
        )
    else:
        for i, cidr in enumerate(sec.allowed_cidrs):
            suffix = "" if i == 0 else f"_{i + 1}"
            _rule(doc, f"app_public{suffix}", "app", c.app_port, cidr=cidr, description="app port")
    if spec.storage.efs_volume:
        _rule(doc, "efs_from_app", "efs", 2049, source="app", description="NFS from the app")


def _efs(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    body: dict = {
        "creation_token": "${local.name}-data",
        "encrypted": spec.security.encryption_at_rest,
        "performance_mode": "generalPurpose",
        "throughput_mode": "elastic",
        "tags": {"Name": "${local.name}-data"},
    }
    if spec.security.encryption_at_rest:
        body["kms_key_id"] = ref("aws_kms_key.main", "arn")
    if spec.storage.archive_after_days:
        body["lifecycle_policy"] = [{"transition_to_ia": "AFTER_30_DAYS"}]
    doc.add("aws_efs_file_system", "data", body)
    names = spec.subnet_names()
    seen: set[str] = set()
    # one mount target per zone (AWS allows no more), private subnets first
    ordered = sorted(zip(names, spec.vpc.subnets, strict=False), key=lambda p: p[1].public)
    for name, s in ordered:
        if s.availability_zone in seen:
            continue
        seen.add(s.availability_zone or "")
        doc.add(
            "aws_efs_mount_target",
            name,
            {
                "file_system_id": ref("aws_efs_file_system.data"),
                "subnet_id": ref(f"aws_subnet.{name}"),
                "security_groups": [ref("aws_security_group.efs")],
            },
        )


def _user_data(spec: InfrastructureSpec) -> str:
    lines = ["#!/bin/bash", "set -eu"]
    if spec.storage.efs_volume:
        tls = ",tls" if spec.security.encryption_in_transit else ""
        lines += [
            "dnf install -y amazon-efs-utils",
            "mkdir -p /mnt/efs",
            f"echo '${{aws_efs_file_system.data.id}}:/ /mnt/efs efs _netdev{tls} 0 0' >> /etc/fstab",
            "mount -a -t efs",
        ]
    lines.append(
        f"echo 'geo-infer-ops {spec.name}: install the app on port {spec.compute.app_port}' > /etc/motd"
    )
    return "\n".join(lines) + "\n"


def _compute(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    c, sec = spec.compute, spec.security
    doc.add_data(
        "aws_ami",
        "al2023",
        {
            "most_recent": True,
            "owners": ["amazon"],
            "filter": [
                {"name": "name", "values": [AL2023_FILTER]},
                {"name": "architecture", "values": ["x86_64"]},
            ],
        },
    )
    doc.locals["user_data"] = _user_data(spec)
    ebs: dict = {
        "volume_size": max(1, round(parse_size(c.disk_size) / 1024**3)),
        "volume_type": "gp3",
        "encrypted": sec.encryption_at_rest,
        "delete_on_termination": True,
    }
    if sec.encryption_at_rest:
        ebs["kms_key_id"] = ref("aws_kms_key.main", "arn")
    doc.add(
        "aws_launch_template",
        "app",
        {
            "name_prefix": "${local.name}-app-",
            "image_id": '${var.ami_id != "" ? var.ami_id : data.aws_ami.al2023.id}',
            "instance_type": "${var.instance_type}",
            "user_data": "${base64encode(local.user_data)}",
            "vpc_security_group_ids": [ref("aws_security_group.app")],
            "metadata_options": {"http_tokens": "required", "http_endpoint": "enabled"},
            "block_device_mappings": [{"device_name": "/dev/xvda", "ebs": ebs}],
            "tag_specifications": [{"resource_type": "instance", "tags": {"Name": "${local.name}-app"}}],
            "lifecycle": {"create_before_destroy": True},
        },
    )
    names = spec.subnet_names()
    private = [n for n, s in zip(names, spec.vpc.subnets, strict=False) if not s.public]
    public = [n for n, s in zip(names, spec.vpc.subnets, strict=False) if s.public]
    placement = private if private and spec.vpc.nat_gateway else public
    asg: dict = {
        "name_prefix": "${local.name}-app-",
        "min_size": c.min_instances if c.auto_scaling_group else c.desired,
        "max_size": c.maximum,
        "desired_capacity": c.desired,
        "vpc_zone_identifier": [ref(f"aws_subnet.{n}") for n in placement],
        "launch_template": {"id": ref("aws_launch_template.app"), "version": "$Latest"},
        "health_check_type": "ELB" if c.load_balancer else "EC2",
        "health_check_grace_period": 300,
        "tag": [{"key": "Name", "value": "${local.name}-app", "propagate_at_launch": True}],
    }
    if c.load_balancer:
        asg["target_group_arns"] = [ref("aws_lb_target_group.app", "arn")]
    if spec.storage.efs_volume:
        asg["depends_on"] = [
            f"aws_efs_mount_target.{n}" for n in doc.resource.get("aws_efs_mount_target", {})
        ]
    doc.add("aws_autoscaling_group", "app", asg)
    if c.auto_scaling_group:
        doc.add(
            "aws_autoscaling_policy",
            "cpu",
            {
                "name": "${local.name}-cpu",
                "autoscaling_group_name": ref("aws_autoscaling_group.app", "name"),
                "policy_type": "TargetTrackingScaling",
                "target_tracking_configuration": {
                    "predefined_metric_specification": {"predefined_metric_type": "ASGAverageCPUUtilization"},
                    "target_value": c.target_cpu_utilization,
                },
            },
        )


def _load_balancer(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    c, sec = spec.compute, spec.security
    names = spec.subnet_names()
    public = [n for n, s in zip(names, spec.vpc.subnets, strict=False) if s.public]
    doc.add(
        "aws_lb",
        "app",
        {
            "name": "${local.name}",
            "load_balancer_type": "application",
            "internal": False,
            "security_groups": [ref("aws_security_group.lb")],
            "subnets": [ref(f"aws_subnet.{n}") for n in public],
            "drop_invalid_header_fields": True,
        },
    )
    doc.add(
        "aws_lb_target_group",
        "app",
        {
            "name_prefix": "app-",
            "port": c.app_port,
            "protocol": "HTTP",
            "vpc_id": ref("aws_vpc.main"),
            "target_type": "instance",
            "health_check": {
                "path": c.health_check_path,
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            "lifecycle": {"create_before_destroy": True},
        },
    )
    forward = [{"type": "forward", "target_group_arn": ref("aws_lb_target_group.app", "arn")}]
    if sec.encryption_in_transit:
        doc.var("certificate_arn", "string", "ACM certificate ARN of the HTTPS listener")
        doc.add(
            "aws_lb_listener",
            "https",
            {
                "load_balancer_arn": ref("aws_lb.app", "arn"),
                "port": 443,
                "protocol": "HTTPS",
                "ssl_policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "certificate_arn": "${var.certificate_arn}",
                "default_action": forward,
            },
        )
        doc.add(
            "aws_lb_listener",
            "http",
            {
                "load_balancer_arn": ref("aws_lb.app", "arn"),
                "port": 80,
                "protocol": "HTTP",
                "default_action": [
                    {
                        "type": "redirect",
                        "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
                    }
                ],
            },
        )
    else:
        doc.add(
            "aws_lb_listener",
            "http",
            {
                "load_balancer_arn": ref("aws_lb.app", "arn"),
                "port": 80,
                "protocol": "HTTP",
                "default_action": forward,
            },
        )


def _bucket(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    st, sec = spec.storage, spec.security
    doc.var("bucket_name", "string", "Name of the S3 bucket (globally unique)", st.s3_bucket)
    doc.add("aws_s3_bucket", "data", {"bucket": "${var.bucket_name}", "tags": {"Name": "${var.bucket_name}"}})
    bucket = ref("aws_s3_bucket.data")
    doc.add(
        "aws_s3_bucket_versioning",
        "data",
        {"bucket": bucket, "versioning_configuration": {"status": "Enabled"}},
    )
    default = (
        {"sse_algorithm": "aws:kms", "kms_master_key_id": ref("aws_kms_key.main", "arn")}
        if sec.encryption_at_rest
        else {"sse_algorithm": "AES256"}
    )
    doc.add(
        "aws_s3_bucket_server_side_encryption_configuration",
        "data",
        {
            "bucket": bucket,
            "rule": [{"apply_server_side_encryption_by_default": default, "bucket_key_enabled": True}],
        },
    )
    doc.add(
        "aws_s3_bucket_public_access_block",
        "data",
        {
            "bucket": bucket,
            "block_public_acls": True,
            "block_public_policy": True,
            "ignore_public_acls": True,
            "restrict_public_buckets": True,
        },
    )
    if sec.encryption_in_transit:
        arn = ref("aws_s3_bucket.data", "arn")
        doc.add_data(
            "aws_iam_policy_document",
            "tls_only",
            {
                "statement": [
                    {
                        "sid": "DenyInsecureTransport",
                        "effect": "Deny",
                        "principals": [{"type": "*", "identifiers": ["*"]}],
                        "actions": ["s3:*"],
                        "resources": [arn, arn + "/*"],
                        "condition": [
                            {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
                        ],
                    }
                ]
            },
        )
        doc.add(
            "aws_s3_bucket_policy",
            "tls_only",
            {
                "bucket": bucket,
                "policy": "${data.aws_iam_policy_document.tls_only.json}",
                "depends_on": ["aws_s3_bucket_public_access_block.data"],
            },
        )
    if st.archive_after_days:
        doc.add(
            "aws_s3_bucket_lifecycle_configuration",
            "data",
            {
                "bucket": bucket,
                "rule": [
                    {
                        "id": "archive",
                        "status": "Enabled",
                        "filter": {"prefix": ""},
                        "transition": [{"days": st.archive_after_days, "storage_class": "STANDARD_IA"}],
                        "noncurrent_version_expiration": {"noncurrent_days": 90},
                    }
                ],
            },
        )


def _backup(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    st = spec.storage
    vault: dict = {"name": "${local.name}-backups"}
    if spec.security.encryption_at_rest:
        vault["kms_key_arn"] = ref("aws_kms_key.main", "arn")
    doc.add("aws_backup_vault", "main", vault)
    schedule = "cron(0 5 * * ? *)" if st.backup_strategy == "daily" else "cron(0 5 ? * SUN *)"
    doc.add(
        "aws_backup_plan",
        "main",
        {
            "name": f"${{local.name}}-{st.backup_strategy}",
            "rule": [
                {
                    "rule_name": st.backup_strategy,
                    "target_vault_name": ref("aws_backup_vault.main", "name"),
                    "schedule": schedule,
                    "lifecycle": {"delete_after": st.retention_days},
                }
            ],
        },
    )
    assume = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    doc.add(
        "aws_iam_role", "backup", {"name": "${local.name}-backup", "assume_role_policy": json.dumps(assume)}
    )
    doc.add(
        "aws_iam_role_policy_attachment",
        "backup",
        {
            "role": ref("aws_iam_role.backup", "name"),
            "policy_arn": "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
        },
    )
    resources = []
    if st.efs_volume:
        resources.append(ref("aws_efs_file_system.data", "arn"))
    if st.s3_bucket:
        resources.append(ref("aws_s3_bucket.data", "arn"))
        doc.add(
            "aws_iam_role_policy_attachment",
            "backup_s3",
            {
                "role": ref("aws_iam_role.backup", "name"),
                "policy_arn": "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Backup",
            },
        )
    doc.add(
        "aws_backup_selection",
        "main",
        {
            "name": "${local.name}-data",
            "plan_id": ref("aws_backup_plan.main"),
            "iam_role_arn": ref("aws_iam_role.backup", "arn"),
            "resources": resources,
        },
    )


def _outputs(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    doc.out("vpc_id", ref("aws_vpc.main"), "ID of the VPC")
    doc.out(
        "subnet_ids",
        "${[" + ", ".join(f"aws_subnet.{n}.id" for n in spec.subnet_names()) + "]}",
        "IDs of the subnets",
    )
    doc.out(
        "autoscaling_group_name", ref("aws_autoscaling_group.app", "name"), "Name of the auto scaling group"
    )
    if spec.compute.load_balancer:
        doc.out("load_balancer_dns_name", ref("aws_lb.app", "dns_name"), "DNS name of the load balancer")
    if spec.storage.s3_bucket:
        doc.out("bucket_name", ref("aws_s3_bucket.data"), "Name of the S3 bucket")
    if spec.storage.efs_volume:
        doc.out("efs_id", ref("aws_efs_file_system.data"), "ID of the EFS file system")
