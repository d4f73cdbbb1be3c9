"""Write a :class:`~.terraform.TerraformDoc` to a directory, ready for ``terraform init/plan``.

Files: ``versions.tf.json`` (``terraform`` + ``provider``), ``variables.tf.json``, ``main.tf.json``
(``locals``, ``data``, ``resource``), ``outputs.tf.json``; each starts with a ``"//"`` comment
(ignored by Terraform) naming the generator. ``geo-infer-ops.json`` (not read by Terraform)
keeps the spec, the infrastructure id and the cost estimate.

:func:`check_document` is the structural check run before writing (and by the tests): every
``${...}`` reference and every ``depends_on`` entry names a defined resource, data source,
variable or local, and every resource has the keys its type requires.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .terraform import TerraformDoc

FILES = {
    "versions.tf.json": ("terraform", "provider"),
    "variables.tf.json": ("variable",),
    "main.tf.json": ("locals", "data", "resource"),
    "outputs.tf.json": ("output",),
}

# keys every resource of a type must have (what the provider marks required, for the types we render)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "aws_vpc": ("cidr_block",),
    "aws_subnet": ("vpc_id", "cidr_block", "availability_zone"),
    "aws_internet_gateway": ("vpc_id",),
    "aws_route_table": ("vpc_id",),
    "aws_route": ("route_table_id", "destination_cidr_block"),
    "aws_route_table_association": ("subnet_id", "route_table_id"),
    "aws_eip": ("domain",),
    "aws_nat_gateway": ("allocation_id", "subnet_id"),
    "aws_security_group": ("name", "vpc_id"),
    "aws_vpc_security_group_ingress_rule": ("security_group_id", "ip_protocol"),
    "aws_vpc_security_group_egress_rule": ("security_group_id", "ip_protocol"),
    "aws_kms_key": ("description",),
    "aws_kms_alias": ("name", "target_key_id"),
    "aws_launch_template": ("image_id", "instance_type"),
    "aws_autoscaling_group": ("min_size", "max_size", "vpc_zone_identifier", "launch_template"),
    "aws_autoscaling_policy": ("name", "autoscaling_group_name", "policy_type"),
    "aws_lb": ("load_balancer_type", "subnets", "security_groups"),
    "aws_lb_target_group": ("port", "protocol", "vpc_id", "health_check"),
    "aws_lb_listener": ("load_balancer_arn", "port", "protocol", "default_action"),
    "aws_s3_bucket": ("bucket",),
    "aws_s3_bucket_versioning": ("bucket", "versioning_configuration"),
    "aws_s3_bucket_server_side_encryption_configuration": ("bucket", "rule"),
    "aws_s3_bucket_public_access_block": ("bucket",),
    "aws_s3_bucket_policy": ("bucket", "policy"),
    "aws_s3_bucket_lifecycle_configuration": ("bucket", "rule"),
    "aws_efs_file_system": ("encrypted",),
    "aws_efs_mount_target": ("file_system_id", "subnet_id"),
    "aws_backup_vault": ("name",),
    "aws_backup_plan": ("name", "rule"),
    "aws_backup_selection": ("name", "plan_id", "iam_role_arn", "resources"),
    "aws_iam_role": ("assume_role_policy",),
    "aws_iam_role_policy_attachment": ("role", "policy_arn"),
    "aws_vpc_endpoint": ("vpc_id", "service_name", "vpc_endpoint_type"),
    "google_compute_network": ("name",),
    "google_compute_subnetwork": ("name", "ip_cidr_range", "network"),
    "google_compute_firewall": ("name", "network"),
    "google_compute_router": ("name", "network"),
    "google_compute_router_nat": (
        "name",
        "router",
        "nat_ip_allocate_option",
        "source_subnetwork_ip_ranges_to_nat",
    ),
    "google_compute_instance_template": ("machine_type", "disk"),
    "google_compute_health_check": ("name",),
    "google_compute_region_instance_group_manager": ("name", "base_instance_name", "version"),
    "google_compute_region_autoscaler": ("name", "target", "autoscaling_policy"),
    "google_compute_backend_service": ("name",),
    "google_compute_url_map": ("name", "default_service"),
    "google_compute_global_address": ("name",),
    "google_compute_target_http_proxy": ("name", "url_map"),
    "google_compute_target_https_proxy": ("name", "url_map", "ssl_certificates"),
    "google_compute_global_forwarding_rule": ("name", "target"),
    "google_storage_bucket": ("name", "location"),
    "google_filestore_instance": ("name", "tier", "file_shares", "networks"),
    "azurerm_resource_group": ("name", "location"),
    "azurerm_virtual_network": ("name", "resource_group_name", "location", "address_space"),
    "azurerm_subnet": ("name", "resource_group_name", "virtual_network_name", "address_prefixes"),
    "azurerm_network_security_group": ("name", "resource_group_name", "location"),
    "azurerm_network_security_rule": (
        "name",
        "priority",
        "direction",
        "access",
        "protocol",
        "network_security_group_name",
    ),
    "azurerm_subnet_network_security_group_association": ("subnet_id", "network_security_group_id"),
    "azurerm_public_ip": ("name", "resource_group_name", "location", "allocation_method"),
    "azurerm_nat_gateway": ("name", "resource_group_name", "location"),
    "azurerm_nat_gateway_public_ip_association": ("nat_gateway_id", "public_ip_address_id"),
    "azurerm_subnet_nat_gateway_association": ("subnet_id", "nat_gateway_id"),
    "azurerm_lb": ("name", "resource_group_name", "location"),
    "azurerm_lb_backend_address_pool": ("name", "loadbalancer_id"),
    "azurerm_lb_probe": ("name", "loadbalancer_id", "port"),
    "azurerm_lb_rule": (
        "name",
        "loadbalancer_id",
        "protocol",
        "frontend_port",
        "backend_port",
        "frontend_ip_configuration_name",
    ),
    "azurerm_linux_virtual_machine_scale_set": (
        "name",
        "resource_group_name",
        "location",
        "sku",
        "admin_username",
        "network_interface",
        "os_disk",
    ),
    "azurerm_monitor_autoscale_setting": (
        "name",
        "resource_group_name",
        "location",
        "target_resource_id",
        "profile",
    ),
    "azurerm_storage_account": (
        "name",
        "resource_group_name",
        "location",
        "account_tier",
        "account_replication_type",
    ),
    "azurerm_storage_container": ("name",),
    "azurerm_storage_share": ("name", "quota"),
    "azurerm_storage_management_policy": ("storage_account_id",),
}

_TEMPLATE = re.compile(r"(?<!\$)\$\{(.*?)\}")
_TOKEN = re.compile(
    r"(?<![\w.\"])([a-z][a-z0-9_]*)\.([a-zA-Z_][a-zA-Z0-9_-]*)(?:\.([a-zA-Z_][a-zA-Z0-9_-]*))?"
)
_NOT_REFS = {"count", "each", "path", "self", "terraform"}


def _strings(value: Any, path: str):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def references(expression: str) -> list[str]:
    """The addresses an interpolation refers to: ``var.x``, ``local.y``, ``data.t.n``, ``t.n``."""
    found: list[str] = []
    for inner in _TEMPLATE.findall(expression):
        inner = re.sub(r'"[^"]*"', '""', inner)  # string literals inside the expression
        for first, second, third in _TOKEN.findall(inner):
            if first in _NOT_REFS:
                continue
            if first == "data":
                found.append(f"data.{second}.{third}")
            elif first in ("var", "local"):
                found.append(f"{first}.{second}")
            else:
                found.append(f"{first}.{second}")
    return found


def check_document(blocks: dict[str, Any]) -> list[str]:
    """Every structural problem of a Terraform JSON document (empty when it is sound)."""
    problems: list[str] = []
    resources = {f"{t}.{n}" for t, names in blocks.get("resource", {}).items() for n in names}
    data = {f"data.{t}.{n}" for t, names in blocks.get("data", {}).items() for n in names}
    variables = {f"var.{n}" for n in blocks.get("variable", {})}
    local_names = {f"local.{n}" for n in blocks.get("locals", {})}
    defined = resources | data | variables | local_names
    for block in ("provider", "locals", "data", "resource", "output"):
        for path, text in _strings(blocks.get(block, {}), block):
            for address in references(text):
                if address not in defined:
                    problems.append(f"{path}: reference {address!r} is not defined")
    for rtype, names in blocks.get("resource", {}).items():
        required = REQUIRED_KEYS.get(rtype)
        if required is None:
            problems.append(
                f"resource.{rtype}: no required keys known for this type (add it to REQUIRED_KEYS)"
            )
            required = ()
        for name, body in names.items():
            for key in required:
                if key not in body:
                    problems.append(f"resource.{rtype}.{name}: missing required key {key!r}")
            for dep in body.get("depends_on", []):
                if dep not in resources and dep not in data:
                    problems.append(f"resource.{rtype}.{name}.depends_on: {dep!r} is not defined")
    for name, body in blocks.get("variable", {}).items():
        if "type" not in body or "description" not in body:
            problems.append(f"variable.{name}: needs type and description")
    return problems


def document_files(doc: TerraformDoc, header: str) -> dict[str, dict[str, Any]]:
    """File name -> JSON content, each with its ``"//"`` header first."""
    blocks = doc.blocks()
    files: dict[str, dict[str, Any]] = {}
    for filename, keys in FILES.items():
        content = {k: blocks[k] for k in keys if k in blocks}
        if content:
            files[filename] = {"//": header, **content}
    return files


def write_directory(
    files: dict[str, dict[str, Any]], output_dir: Path, metadata: dict[str, Any]
) -> list[Path]:
    """Write the files (and ``geo-infer-ops.json``); remove stale ``*.tf.json`` we wrote before."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in output_dir.glob("*.tf.json"):
        if stale.name not in files:
            try:
                if '"//": "generated by geo-infer-ops' in stale.read_text(encoding="utf-8")[:400]:
                    stale.unlink()
            except OSError:
                pass
    written = []
    for name, content in files.items():
        path = output_dir / name
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(path)
    meta = output_dir / "geo-infer-ops.json"
    meta.write_text(json.dumps(metadata, indent=2, default=str) + "\n", encoding="utf-8")
    written.append(meta)
    return written
