"""Azure (hashicorp/azurerm provider v4): network, VM scale set, load balancer, storage.

What a spec becomes:

- a resource group; ``vpc`` -> ``azurerm_virtual_network.main`` and one ``azurerm_subnet`` per subnet
  (with the ``Microsoft.Storage`` service endpoint when ``vpc_endpoints``); a network security group
  allowing the app port from ``allowed_cidrs`` and the Azure load balancer probe, associated with
  every subnet; a NAT gateway with ``nat_gateway``.
- ``compute`` -> ``azurerm_linux_virtual_machine_scale_set.app`` (Ubuntu 24.04, SSH key from
  ``var.ssh_public_key``) in the subnets' zones, with ``azurerm_monitor_autoscale_setting.app``
  (CPU-based) when ``auto_scaling_group``.
- ``load_balancer`` -> a Standard public IP and load balancer with a backend pool, an HTTP probe on
  ``health_check_path`` and a rule (443 -> app port when ``encryption_in_transit``, the app then
  terminates TLS, since the Azure load balancer works at layer 4; 80 otherwise).
- ``s3_bucket`` -> a storage account (name derived from the bucket: 3-24 letters and digits, TLS 1.2
  only, HTTPS only, no public blobs, blob versioning) and a private blob container named like the
  bucket; ``efs_volume`` -> an Azure Files share. Data at rest is always encrypted (Microsoft-managed keys).
"""

from __future__ import annotations

import math

from ..spec import GIB, InfrastructureSpec, azure_storage_account_name, parse_size
from ._doc import TerraformDoc, ref


def render(spec: InfrastructureSpec) -> TerraformDoc:
    doc = TerraformDoc("azure")
    c, st, sec = spec.compute, spec.storage, spec.security
    doc.terraform = {
        "required_version": ">= 1.5",
        "required_providers": {"azurerm": {"source": "hashicorp/azurerm", "version": "~> 4.9"}},
    }
    doc.provider = {"azurerm": {"features": {}, "subscription_id": "${var.subscription_id}"}}
    doc.var("subscription_id", "string", "Azure subscription ID")
    doc.var("location", "string", "Azure region", spec.region)
    doc.var("name", "string", "Prefix of every resource name", spec.name)
    doc.var("vm_size", "string", "VM size of the scale set", c.instance_type)
    doc.var("ssh_public_key", "string", "SSH public key of the admin user of the instances")
    doc.var("allowed_cidrs", "list(string)", "CIDR blocks allowed to reach the app", list(sec.allowed_cidrs))
    tags = {"project": spec.name, "environment": spec.environment, "managed-by": "geo-infer-ops", **spec.tags}
    doc.locals = {"name": "${var.name}", "tags": tags}
    rg = {
        "resource_group_name": ref("azurerm_resource_group.main", "name"),
        "location": ref("azurerm_resource_group.main", "location"),
    }

    doc.add(
        "azurerm_resource_group",
        "main",
        {"name": "${local.name}-rg", "location": "${var.location}", "tags": "${local.tags}"},
    )
    doc.add(
        "azurerm_virtual_network",
        "main",
        {"name": "${local.name}-vnet", **rg, "address_space": [spec.vpc.cidr], "tags": "${local.tags}"},
    )
    names = spec.subnet_names()
    doc.add(
        "azurerm_network_security_group",
        "app",
        {"name": "${local.name}-app", **rg, "tags": "${local.tags}"},
    )
    front = 443 if sec.encryption_in_transit else 80
    doc.add(
        "azurerm_network_security_rule",
        "app_in",
        {
            "name": "allow-app",
            "priority": 100,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "Tcp",
            "source_port_range": "*",
            "destination_port_range": str(c.app_port),
            "source_address_prefixes": "${var.allowed_cidrs}",
            "destination_address_prefix": "*",
            "resource_group_name": ref("azurerm_resource_group.main", "name"),
            "network_security_group_name": ref("azurerm_network_security_group.app", "name"),
        },
    )
    doc.add(
        "azurerm_network_security_rule",
        "probe_in",
        {
            "name": "allow-lb-probe",
            "priority": 110,
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "Tcp",
            "source_port_range": "*",
            "destination_port_range": str(c.app_port),
            "source_address_prefix": "AzureLoadBalancer",
            "destination_address_prefix": "*",
            "resource_group_name": ref("azurerm_resource_group.main", "name"),
            "network_security_group_name": ref("azurerm_network_security_group.app", "name"),
        },
    )
    for name, s in zip(names, spec.vpc.subnets, strict=False):
        body: dict = {
            "name": name.replace("_", "-"),
            "resource_group_name": ref("azurerm_resource_group.main", "name"),
            "virtual_network_name": ref("azurerm_virtual_network.main", "name"),
            "address_prefixes": [s.cidr],
        }
        if sec.vpc_endpoints:
            body["service_endpoints"] = ["Microsoft.Storage"]
        doc.add("azurerm_subnet", name, body)
        doc.add(
            "azurerm_subnet_network_security_group_association",
            name,
            {
                "subnet_id": ref(f"azurerm_subnet.{name}"),
                "network_security_group_id": ref("azurerm_network_security_group.app"),
            },
        )
    if spec.vpc.nat_gateway:
        doc.add(
            "azurerm_public_ip",
            "nat",
            {"name": "${local.name}-nat", **rg, "allocation_method": "Static", "sku": "Standard"},
        )
        doc.add("azurerm_nat_gateway", "main", {"name": "${local.name}-nat", **rg, "sku_name": "Standard"})
        doc.add(
            "azurerm_nat_gateway_public_ip_association",
            "main",
            {
                "nat_gateway_id": ref("azurerm_nat_gateway.main"),
                "public_ip_address_id": ref("azurerm_public_ip.nat"),
            },
        )
        for name, s in zip(names, spec.vpc.subnets, strict=False):
            if not s.public:
                doc.add(
                    "azurerm_subnet_nat_gateway_association",
                    name,
                    {
                        "subnet_id": ref(f"azurerm_subnet.{name}"),
                        "nat_gateway_id": ref("azurerm_nat_gateway.main"),
                    },
                )

    if c.load_balancer:
        doc.add(
            "azurerm_public_ip",
            "lb",
            {"name": "${local.name}-lb", **rg, "allocation_method": "Static", "sku": "Standard"},
        )
        doc.add(
            "azurerm_lb",
            "main",
            {
                "name": "${local.name}-lb",
                **rg,
                "sku": "Standard",
                "frontend_ip_configuration": [
                    {"name": "public", "public_ip_address_id": ref("azurerm_public_ip.lb")}
                ],
            },
        )
        doc.add(
            "azurerm_lb_backend_address_pool",
            "app",
            {"name": "app", "loadbalancer_id": ref("azurerm_lb.main")},
        )
        doc.add(
            "azurerm_lb_probe",
            "app",
            {
                "name": "app-health",
                "loadbalancer_id": ref("azurerm_lb.main"),
                "protocol": "Http",
                "port": c.app_port,
                "request_path": c.health_check_path,
                "interval_in_seconds": 15,
            },
        )
        doc.add(
            "azurerm_lb_rule",
            "app",
            {
                "name": "app",
                "loadbalancer_id": ref("azurerm_lb.main"),
                "protocol": "Tcp",
                "frontend_port": front,
                "backend_port": c.app_port,
                "frontend_ip_configuration_name": "public",
                "backend_address_pool_ids": [ref("azurerm_lb_backend_address_pool.app")],
                "probe_id": ref("azurerm_lb_probe.app"),
                "disable_outbound_snat": False,
            },
        )
        doc.out(
            "load_balancer_ip", ref("azurerm_public_ip.lb", "ip_address"), "Public IP of the load balancer"
        )

    placement = next((n for n, s in zip(names, spec.vpc.subnets, strict=False) if not s.public), names[0])
    ip_config: dict = {"name": "internal", "primary": True, "subnet_id": ref(f"azurerm_subnet.{placement}")}
    if c.load_balancer:
        ip_config["load_balancer_backend_address_pool_ids"] = [ref("azurerm_lb_backend_address_pool.app")]
    vmss: dict = {
        "name": "${local.name}-app",
        **rg,
        "sku": "${var.vm_size}",
        "instances": c.desired,
        "admin_username": "geoinfer",
        "admin_ssh_key": [{"username": "geoinfer", "public_key": "${var.ssh_public_key}"}],
        "source_image_reference": {
            "publisher": "Canonical",
            "offer": "ubuntu-24_04-lts",
            "sku": "server",
            "version": "latest",
        },
        "os_disk": {
            "storage_account_type": "StandardSSD_LRS",
            "caching": "ReadWrite",
            "disk_size_gb": max(30, round(parse_size(c.disk_size) / GIB)),
        },
        "network_interface": [{"name": "app", "primary": True, "ip_configuration": [ip_config]}],
        "upgrade_mode": "Manual",
        "tags": "${local.tags}",
    }
    if spec.zones:
        vmss["zones"] = spec.zones
    if c.load_balancer:
        vmss["health_probe_id"] = ref("azurerm_lb_probe.app")
        vmss["depends_on"] = ["azurerm_lb_rule.app"]
    doc.add("azurerm_linux_virtual_machine_scale_set", "app", vmss)
    if c.auto_scaling_group:
        target = ref("azurerm_linux_virtual_machine_scale_set.app")

        def rule(op: str, threshold: float, direction: str) -> dict:
            return {
                "metric_trigger": {
                    "metric_name": "Percentage CPU",
                    "metric_resource_id": target,
                    "time_grain": "PT1M",
                    "statistic": "Average",
                    "time_window": "PT5M",
                    "time_aggregation": "Average",
                    "operator": op,
                    "threshold": threshold,
                },
                "scale_action": {
                    "direction": direction,
                    "type": "ChangeCount",
                    "value": "1",
                    "cooldown": "PT5M",
                },
            }

        high = c.target_cpu_utilization + 15 if c.target_cpu_utilization <= 80 else 95
        low = max(5.0, c.target_cpu_utilization - 30)
        doc.add(
            "azurerm_monitor_autoscale_setting",
            "app",
            {
                "name": "${local.name}-app",
                **rg,
                "target_resource_id": target,
                "profile": [
                    {
                        "name": "cpu",
                        "capacity": {"default": c.desired, "minimum": c.min_instances, "maximum": c.maximum},
                        "rule": [rule("GreaterThan", high, "Increase"), rule("LessThan", low, "Decrease")],
                    }
                ],
            },
        )
    if st.s3_bucket or st.efs_volume:
        account = azure_storage_account_name(st.s3_bucket or f"{spec.name}data")
        doc.var(
            "storage_account_name", "string", "Name of the storage account (3-24 letters and digits)", account
        )
        sa: dict = {
            "name": "${var.storage_account_name}",
            **rg,
            "account_tier": "Standard",
            "account_replication_type": "ZRS",
            "min_tls_version": "TLS1_2",
            "https_traffic_only_enabled": True,
            "allow_nested_items_to_be_public": False,
            "blob_properties": {"versioning_enabled": True},
            "tags": "${local.tags}",
        }
        if sec.vpc_endpoints:
            sa["network_rules"] = {
                "default_action": "Deny",
                "bypass": ["AzureServices"],
                "virtual_network_subnet_ids": [ref(f"azurerm_subnet.{n}") for n in names],
            }
        doc.add("azurerm_storage_account", "data", sa)
        doc.out(
            "storage_account_name", ref("azurerm_storage_account.data", "name"), "Name of the storage account"
        )
    if st.s3_bucket:
        doc.add(
            "azurerm_storage_container",
            "data",
            {
                "name": st.s3_bucket,
                "storage_account_id": ref("azurerm_storage_account.data"),
                "container_access_type": "private",
            },
        )
        if st.archive_after_days:
            doc.add(
                "azurerm_storage_management_policy",
                "data",
                {
                    "storage_account_id": ref("azurerm_storage_account.data"),
                    "rule": [
                        {
                            "name": "archive",
                            "enabled": True,
                            "filters": {"blob_types": ["blockBlob"]},
                            "actions": {
                                "base_blob": {
                                    "tier_to_cool_after_days_since_modification_greater_than": (
                                        st.archive_after_days
                                    )
                                }
                            },
                        }
                    ],
                },
            )
    if st.efs_volume:
        doc.add(
            "azurerm_storage_share",
            "data",
            {
                "name": "data",
                "storage_account_id": ref("azurerm_storage_account.data"),
                "quota": max(1, math.ceil(parse_size(st.efs_volume) / GIB)),
            },
        )
    if st.backup_strategy != "none":
        doc.notes.append(
            f"backup_strategy {st.backup_strategy!r} is not rendered for azure: "
            "blob versioning keeps old objects; "
            "add a Recovery Services vault with azurerm_backup_policy_file_share for the file share"
        )
    doc.out("resource_group", ref("azurerm_resource_group.main", "name"), "Name of the resource group")
    doc.out("scale_set_id", ref("azurerm_linux_virtual_machine_scale_set.app"), "ID of the VM scale set")
    return doc
