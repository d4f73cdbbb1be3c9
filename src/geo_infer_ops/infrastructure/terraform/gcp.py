"""Google Cloud (hashicorp/google v6): network, managed instance group, HTTP(S) load balancer, storage.

What a spec becomes:

- ``vpc`` -> ``google_compute_network.main`` (custom mode) and one ``google_compute_subnetwork`` per
  subnet (GCP subnets are regional; ``availability_zone`` picks the instance group's zones), with
  Private Google Access when ``vpc_endpoints``; firewall rules for the load balancer's health checks
  and proxies; a Cloud Router + NAT with ``nat_gateway``.
- ``compute`` -> ``google_compute_instance_template.app`` (Debian 12, pd-balanced boot disk),
  ``google_compute_region_instance_group_manager.app`` with auto-healing, and
  ``google_compute_region_autoscaler.app`` when ``auto_scaling_group``.
- ``load_balancer`` -> a global external application load balancer: health check, backend service,
  URL map, target HTTP(S) proxy (certificate from ``var.ssl_certificate`` when
  ``encryption_in_transit``), global address and forwarding rule.
- ``s3_bucket`` -> ``google_storage_bucket.data`` (uniform access, public access prevention,
  versioning, a lifecycle rule with ``archive_after_days``); ``efs_volume`` -> ``google_filestore_instance``
  (BASIC_HDD, at least 1 TiB). Data at rest is always encrypted by Google-managed keys.
"""

from __future__ import annotations

import math

from ..spec import GIB, InfrastructureSpec, parse_size
from ._doc import TerraformDoc, ref

HEALTH_CHECK_RANGES = ["130.211.0.0/22", "35.191.0.0/16"]


def render(spec: InfrastructureSpec) -> TerraformDoc:
    doc = TerraformDoc("gcp")
    c, st, sec = spec.compute, spec.storage, spec.security
    doc.terraform = {
        "required_version": ">= 1.5",
        "required_providers": {"google": {"source": "hashicorp/google", "version": "~> 6.0"}},
    }
    doc.provider = {
        "google": {
            "project": "${var.project_id}",
            "region": "${var.region}",
            "default_labels": {
                "project": spec.name,
                "environment": spec.environment,
                "managed-by": "geo-infer-ops",
            },
        }
    }
    if spec.project_id:
        doc.var("project_id", "string", "Google Cloud project ID", spec.project_id)
    else:
        doc.var("project_id", "string", "Google Cloud project ID")
    doc.var("region", "string", "Google Cloud region", spec.region)
    doc.var("name", "string", "Prefix of every resource name", spec.name)
    doc.var("machine_type", "string", "Machine type of the instance group", c.instance_type)
    doc.var(
        "allowed_cidrs",
        "list(string)",
        "CIDR blocks allowed to reach the instances directly",
        list(sec.allowed_cidrs),
    )
    doc.locals = {"name": "${var.name}"}

    doc.add("google_compute_network", "main", {"name": "${local.name}", "auto_create_subnetworks": False})
    names = spec.subnet_names()
    for name, s in zip(names, spec.vpc.subnets, strict=False):
        doc.add(
            "google_compute_subnetwork",
            name,
            {
                "name": f"${{local.name}}-{name.replace('_', '-')}",
                "ip_cidr_range": s.cidr,
                "region": "${var.region}",
                "network": ref("google_compute_network.main"),
                "private_ip_google_access": sec.vpc_endpoints or not s.public,
            },
        )
    doc.add(
        "google_compute_firewall",
        "health_checks",
        {
            "name": "${local.name}-allow-health-checks",
            "network": ref("google_compute_network.main"),
            "direction": "INGRESS",
            "source_ranges": HEALTH_CHECK_RANGES,
            "target_tags": ["${local.name}-app"],
            "allow": [{"protocol": "tcp", "ports": [str(c.app_port)]}],
        },
    )
    if not c.load_balancer:
        doc.add(
            "google_compute_firewall",
            "app",
            {
                "name": "${local.name}-allow-app",
                "network": ref("google_compute_network.main"),
                "direction": "INGRESS",
                "source_ranges": "${var.allowed_cidrs}",
                "target_tags": ["${local.name}-app"],
                "allow": [{"protocol": "tcp", "ports": [str(c.app_port)]}],
            },
        )
    if spec.vpc.nat_gateway:
        doc.add(
            "google_compute_router",
            "main",
            {
                "name": "${local.name}",
                "region": "${var.region}",
                "network": ref("google_compute_network.main"),
            },
        )
        doc.add(
            "google_compute_router_nat",
            "main",
            {
                "name": "${local.name}",
                "router": ref("google_compute_router.main", "name"),
                "region": "${var.region}",
                "nat_ip_allocate_option": "AUTO_ONLY",
                "source_subnetwork_ip_ranges_to_nat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
            },
        )

    placement = names[0]
    doc.add(
        "google_compute_instance_template",
        "app",
        {
            "name_prefix": "${local.name}-app-",
            "machine_type": "${var.machine_type}",
            "tags": ["${local.name}-app"],
            "disk": [
                {
                    "source_image": c.image or "debian-cloud/debian-12",
                    "auto_delete": True,
                    "boot": True,
                    "disk_type": "pd-balanced",
                    "disk_size_gb": max(10, round(parse_size(c.disk_size) / GIB)),
                }
            ],
            "network_interface": [{"subnetwork": ref(f"google_compute_subnetwork.{placement}")}],
            "shielded_instance_config": {"enable_secure_boot": True},
            "lifecycle": {"create_before_destroy": True},
        },
    )
    doc.add(
        "google_compute_health_check",
        "app",
        {
            "name": "${local.name}-app",
            "check_interval_sec": 15,
            "timeout_sec": 5,
            "http_health_check": {"port": c.app_port, "request_path": c.health_check_path},
        },
    )
    zones = spec.zones
    mig: dict = {
        "name": "${local.name}-app",
        "base_instance_name": "${local.name}-app",
        "region": "${var.region}",
        "version": [{"instance_template": ref("google_compute_instance_template.app", "self_link_unique")}],
        "named_port": [{"name": "http", "port": c.app_port}],
        "auto_healing_policies": {
            "health_check": ref("google_compute_health_check.app"),
            "initial_delay_sec": 300,
        },
    }
    if zones:
        mig["distribution_policy_zones"] = zones
    if not c.auto_scaling_group:
        mig["target_size"] = c.desired
    doc.add("google_compute_region_instance_group_manager", "app", mig)
    if c.auto_scaling_group:
        doc.add(
            "google_compute_region_autoscaler",
            "app",
            {
                "name": "${local.name}-app",
                "region": "${var.region}",
                "target": ref("google_compute_region_instance_group_manager.app"),
                "autoscaling_policy": {
                    "min_replicas": c.min_instances,
                    "max_replicas": c.maximum,
                    "cooldown_period": 120,
                    "cpu_utilization": {"target": c.target_cpu_utilization / 100},
                },
            },
        )
    if c.load_balancer:
        _load_balancer(doc, spec)
    if st.s3_bucket:
        doc.var("bucket_name", "string", "Name of the Cloud Storage bucket (globally unique)", st.s3_bucket)
        bucket: dict = {
            "name": "${var.bucket_name}",
            "location": spec.region.upper(),
            "uniform_bucket_level_access": True,
            "public_access_prevention": "enforced",
            "versioning": {"enabled": True},
            "force_destroy": False,
        }
        if st.archive_after_days:
            bucket["lifecycle_rule"] = [
                {
                    "condition": {"age": st.archive_after_days},
                    "action": {"type": "SetStorageClass", "storage_class": "NEARLINE"},
                }
            ]
        doc.add("google_storage_bucket", "data", bucket)
        doc.out("bucket_name", ref("google_storage_bucket.data", "name"), "Name of the bucket")
    if st.efs_volume:
        capacity = max(1024, math.ceil(parse_size(st.efs_volume) / GIB))
        doc.add(
            "google_filestore_instance",
            "data",
            {
                "name": "${local.name}-data",
                "location": zones[0] if zones else f"{spec.region}-b",
                "tier": "BASIC_HDD",
                "file_shares": {"name": "data", "capacity_gb": capacity},
                "networks": [{"network": ref("google_compute_network.main", "name"), "modes": ["MODE_IPV4"]}],
            },
        )
        doc.out(
            "filestore_ip",
            "${google_filestore_instance.data.networks[0].ip_addresses[0]}",
            "IP of the file share",
        )
    if st.backup_strategy != "none":
        doc.notes.append(
            f"backup_strategy {st.backup_strategy!r} is not rendered for gcp: "
            "bucket versioning keeps old objects; "
            "schedule Filestore backups with Cloud Scheduler or use the AWS renderer"
        )
    doc.out("network_id", ref("google_compute_network.main"), "ID of the VPC network")
    doc.out(
        "instance_group",
        ref("google_compute_region_instance_group_manager.app", "instance_group"),
        "Instance group",
    )
    return doc


def _load_balancer(doc: TerraformDoc, spec: InfrastructureSpec) -> None:
    tls = spec.security.encryption_in_transit
    doc.add(
        "google_compute_backend_service",
        "app",
        {
            "name": "${local.name}-app",
            "protocol": "HTTP",
            "port_name": "http",
            "load_balancing_scheme": "EXTERNAL_MANAGED",
            "timeout_sec": 30,
            "health_checks": [ref("google_compute_health_check.app")],
            "backend": [
                {
                    "group": ref("google_compute_region_instance_group_manager.app", "instance_group"),
                    "balancing_mode": "UTILIZATION",
                    "capacity_scaler": 1.0,
                }
            ],
        },
    )
    doc.add(
        "google_compute_url_map",
        "app",
        {"name": "${local.name}-app", "default_service": ref("google_compute_backend_service.app")},
    )
    doc.add("google_compute_global_address", "lb", {"name": "${local.name}-lb"})
    if tls:
        doc.var("ssl_certificate", "string", "Self link of the SSL certificate of the HTTPS proxy")
        doc.add(
            "google_compute_target_https_proxy",
            "app",
            {
                "name": "${local.name}-app",
                "url_map": ref("google_compute_url_map.app"),
                "ssl_certificates": ["${var.ssl_certificate}"],
            },
        )
        target, port = ref("google_compute_target_https_proxy.app"), "443"
    else:
        doc.add(
            "google_compute_target_http_proxy",
            "app",
            {"name": "${local.name}-app", "url_map": ref("google_compute_url_map.app")},
        )
        target, port = ref("google_compute_target_http_proxy.app"), "80"
    doc.add(
        "google_compute_global_forwarding_rule",
        "app",
        {
            "name": "${local.name}-app",
            "target": target,
            "port_range": port,
            "ip_address": ref("google_compute_global_address.lb", "address"),
            "load_balancing_scheme": "EXTERNAL_MANAGED",
        },
    )
    doc.out("load_balancer_ip", ref("google_compute_global_address.lb", "address"), "IP of the load balancer")
