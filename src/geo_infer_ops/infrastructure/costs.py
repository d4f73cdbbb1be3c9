"""The cost model: monthly estimate per resource and per service, and recommendations.

``monthly = hourly x 730`` for everything billed by the hour (instances, load balancers, NAT
gateways); ``GiB x price per GB-month`` for storage. Prices come from the table shipped with the
package (:mod:`.pricing`, list prices, on-demand, Linux, its date inside). Usage-based charges
(requests, data transfer, load balancer capacity units) are left out and said so.

Recommendations:

- **rightsizing** from utilisation history: the average ``cpu_usage`` (percent) in the monitor's
  metric store (``metric_samples`` and, when present, ``metric_rollups``) over the time range. Under
  20 %: the next smaller type of the same family, with the monthly saving; over 80 %: the next larger.
  Without a metric store (or without samples) the report says there is no utilisation history.
- **storage class**: data that is rarely read after ``archive_after_days`` moves to an infrequent-access
  class (priced on the stated assumption that half of it is cold).
- **reserved capacity**: the always-on instances (``min_instances``) under a 1-year commitment.
- **module capacity**: the deployment's modules (replicas x cpu/memory) against the group's capacity.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from .pricing import PriceTable
from .spec import GIB, InfrastructureSpec, parse_size

LOW_CPU, HIGH_CPU = 20.0, 80.0
COLD_SHARE = 0.5

STORAGE_CLASSES = {
    "aws": {
        "object": "S3_STANDARD",
        "cold": "S3_STANDARD_IA",
        "file": "EFS_STANDARD",
        "file_cold": "EFS_IA",
        "disk": "EBS_GP3",
        "backup": "BACKUP_EFS_WARM",
    },
    "gcp": {
        "object": "GCS_STANDARD",
        "cold": "GCS_NEARLINE",
        "file": "FILESTORE_BASIC_HDD",
        "disk": "PD_BALANCED",
    },
    "azure": {
        "object": "BLOB_HOT",
        "cold": "BLOB_COOL",
        "file": "FILES_TRANSACTION_OPTIMIZED",
        "disk": "MANAGED_DISK_STANDARD_SSD",
    },
}
SERVICES = {
    "aws": {
        "compute": "EC2",
        "disk": "EBS",
        "lb": "Elastic Load Balancing",
        "nat": "VPC",
        "object": "S3",
        "file": "EFS",
        "backup": "AWS Backup",
        "kms": "KMS",
        "endpoint": "VPC",
    },
    "gcp": {
        "compute": "Compute Engine",
        "disk": "Compute Engine",
        "lb": "Cloud Load Balancing",
        "nat": "Cloud NAT",
        "object": "Cloud Storage",
        "file": "Filestore",
    },
    "azure": {
        "compute": "Virtual Machines",
        "disk": "Managed Disks",
        "lb": "Load Balancer",
        "nat": "NAT Gateway",
        "object": "Storage",
        "file": "Azure Files",
    },
}
ADDRESSES = {
    "aws": {
        "compute": "aws_autoscaling_group.app",
        "lb": "aws_lb.app",
        "nat": "aws_nat_gateway.main",
        "object": "aws_s3_bucket.data",
        "file": "aws_efs_file_system.data",
        "backup": "aws_backup_plan.main",
        "kms": "aws_kms_key.main",
        "endpoint": "aws_vpc_endpoint.s3",
    },
    "gcp": {
        "compute": "google_compute_region_instance_group_manager.app",
        "lb": "google_compute_global_forwarding_rule.app",
        "nat": "google_compute_router_nat.main",
        "object": "google_storage_bucket.data",
        "file": "google_filestore_instance.data",
    },
    "azure": {
        "compute": "azurerm_linux_virtual_machine_scale_set.app",
        "lb": "azurerm_lb.main",
        "nat": "azurerm_nat_gateway.main",
        "object": "azurerm_storage_account.data",
        "file": "azurerm_storage_share.data",
    },
}
TIME_RANGES = {
    "last_day": 24,
    "last_24_hours": 24,
    "last_week": 168,
    "last_7_days": 168,
    "last_30_days": 720,
    "last_month": 730,
    "last_90_days": 2160,
    "last_quarter": 2190,
    "last_year": 8760,
}


@dataclass(frozen=True)
class CostItem:
    """One priced component of one resource."""

    resource: str
    service: str
    component: str
    quantity: float
    unit: str
    unit_price: float
    monthly: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "monthly": round(self.monthly, 2)}


def _disk_gib(spec: InfrastructureSpec) -> float:
    gib = parse_size(spec.compute.disk_size) / GIB
    return max(gib, {"aws": 1, "gcp": 10, "azure": 30}[spec.cloud_provider])


def estimate(spec: InfrastructureSpec, prices: PriceTable) -> dict[str, Any]:
    """The monthly estimate of one spec: items, total, per service, the price region used and notes."""
    p = spec.cloud_provider
    region = prices.region(p, spec.region)
    hours = prices.hours_per_month
    cls, svc, addr = STORAGE_CLASSES[p], SERVICES[p], ADDRESSES[p]
    items: list[CostItem] = []
    notes: list[str] = []
    c, st, sec = spec.compute, spec.storage, spec.security
    if region.fallback:
        notes.append(f"no prices for {p} region {spec.region} in the table; priced as {region.region}")

    hourly = region.instance_hourly(c.instance_type)
    if hourly is None:
        notes.append(f"no price for {c.instance_type} in {region.region}; counted as 0")
        hourly = 0.0
    n = c.desired
    items.append(
        CostItem(
            addr["compute"],
            svc["compute"],
            f"{n} x {c.instance_type} (on-demand)",
            n * hours,
            "instance-hours",
            hourly,
            n * hourly * hours,
        )
    )
    disk = _disk_gib(spec)
    disk_price = region.storage_gb_month(cls["disk"])
    items.append(
        CostItem(
            addr["compute"],
            svc["disk"],
            f"{n} x {disk:g} GiB root volume ({cls['disk']})",
            n * disk,
            "GB-month",
            disk_price,
            n * disk * disk_price,
        )
    )
    if c.auto_scaling_group and c.maximum > n:
        notes.append(
            f"priced at the desired {n} instance(s); at the maximum {c.maximum} the group costs "
            f"${c.maximum * hourly * hours:,.2f}/month"
        )
    if c.load_balancer:
        lb = region.get("load_balancer_hourly")
        items.append(
            CostItem(
                addr["lb"],
                svc["lb"],
                "load balancer hours (capacity units / data not included)",
                hours,
                "hours",
                lb,
                lb * hours,
            )
        )
    if spec.vpc.nat_gateway:
        nat = region.get("nat_gateway_hourly")
        count = n if p == "gcp" else 1  # Cloud NAT bills per VM using it
        items.append(
            CostItem(
                addr["nat"],
                svc["nat"],
                "NAT gateway hours (data processed not included)",
                count * hours,
                "hours",
                nat,
                count * nat * hours,
            )
        )
    if st.s3_bucket:
        size = parse_size(st.s3_size) / GIB if st.s3_size else 0.0
        price = region.storage_gb_month(cls["object"])
        items.append(
            CostItem(
                addr["object"],
                svc["object"],
                f"{size:g} GiB in {cls['object']}",
                size,
                "GB-month",
                price,
                size * price,
            )
        )
        if not st.s3_size:
            notes.append("bucket priced at 0 GiB: set storage.s3_size to the data you expect to keep")
    if st.efs_volume:
        size = parse_size(st.efs_volume) / GIB
        if p == "gcp":
            size = max(size, 1024.0)  # Filestore basic: 1 TiB minimum
        price = region.storage_gb_month(cls["file"])
        items.append(
            CostItem(
                addr["file"],
                svc["file"],
                f"{size:g} GiB in {cls['file']}",
                size,
                "GB-month",
                price,
                size * price,
            )
        )
    if p == "aws" and st.backup_strategy != "none":
        size = (parse_size(st.efs_volume) / GIB if st.efs_volume else 0.0) + (
            parse_size(st.s3_size) / GIB if st.s3_size else 0.0
        )
        price = region.storage_gb_month(cls["backup"])
        items.append(
            CostItem(
                addr["backup"],
                svc["backup"],
                f"{st.backup_strategy} backups, ~{size:g} GiB kept (incremental)",
                size,
                "GB-month",
                price,
                size * price,
            )
        )
    if p == "aws" and sec.encryption_at_rest:
        kms = region.get("kms_key_monthly")
        items.append(CostItem(addr["kms"], svc["kms"], "1 customer-managed key", 1, "key-month", kms, kms))
    if p == "aws" and sec.vpc_endpoints:
        items.append(
            CostItem(
                addr["endpoint"], svc["endpoint"], "S3 gateway endpoint (no charge)", hours, "hours", 0.0, 0.0
            )
        )
    total = sum(i.monthly for i in items)
    return {
        "infrastructure_id": spec.infrastructure_id,
        "provider": p,
        "region": spec.region,
        "price_region": region.region,
        "monthly": round(total, 2),
        "hourly": round(total / hours, 4),
        "items": [i.to_dict() for i in items],
        "by_service": by_service(items),
        "notes": notes,
    }


def by_service(items: list[CostItem] | list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        d = item.to_dict() if isinstance(item, CostItem) else item
        out[d["service"]] = out.get(d["service"], 0.0) + float(d["monthly"])
    return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


# ---------------------------------------------------------------------------
# utilisation history


def read_cpu_utilisation(
    database_url: str, hours: float, infrastructure_id: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """Average ``cpu_usage`` over the last ``hours`` from the monitor's tables, if they exist.

    Series labelled ``infrastructure_id=<id>`` are used when there are any; otherwise every
    ``cpu_usage`` series (the monitor of the machine that runs the workloads).
    """
    none = {"available": False, "average_cpu": None, "samples": 0, "series": 0}
    if database_url.startswith("sqlite:///"):
        from pathlib import Path

        path = database_url.removeprefix("sqlite:///")
        if path and path != ":memory:" and not Path(path).exists():
            return {**none, "message": "no utilisation history: the monitor has no metric store yet"}
    try:
        from sqlalchemy import create_engine, inspect, text
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return {**none, "message": "no utilisation history: sqlalchemy is missing"}
    since = (now or time.time()) - hours * 3600
    engine = create_engine(database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        if "metric_samples" not in tables:
            return {
                **none,
                "message": "no utilisation history: the monitor has no metric store (table metric_samples)",
            }
        groups: dict[str, list[float]] = {}
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT labels, SUM(value), COUNT(*) FROM metric_samples "
                    "WHERE name = 'cpu_usage' AND ts >= :since GROUP BY labels"
                ),
                {"since": since},
            ).all()
            if "metric_rollups" in tables:
                rows += conn.execute(
                    text(
                        'SELECT labels, SUM("sum"), SUM("count") FROM metric_rollups '
                        "WHERE name = 'cpu_usage' AND bucket >= :since GROUP BY labels"
                    ),
                    {"since": since},
                ).all()
        for labels, total, count in rows:
            acc = groups.setdefault(labels or "{}", [0.0, 0.0])
            acc[0] += float(total or 0.0)
            acc[1] += float(count or 0)
    except Exception as exc:  # a broken or foreign database must not break a cost report
        return {
            **none,
            "message": f"no utilisation history: could not read the metric store ({type(exc).__name__})",
        }
    finally:
        engine.dispose()
    if infrastructure_id:
        mine = {k: v for k, v in groups.items() if _label(k, "infrastructure_id") == infrastructure_id}
        if mine:
            groups = mine
    total = sum(v[0] for v in groups.values())
    count = sum(v[1] for v in groups.values())
    if not count:
        return {
            **none,
            "message": f"no utilisation history: no cpu_usage samples in the last {hours:g} hours",
        }
    return {
        "available": True,
        "average_cpu": round(total / count, 2),
        "samples": int(count),
        "series": len(groups),
        "message": f"average cpu_usage {total / count:.1f}% over {int(count)} samples "
        f"in the last {hours:g} hours",
    }


def _label(labels: str, key: str) -> Any:
    try:
        return json.loads(labels).get(key)
    except (ValueError, AttributeError):
        return None


# ---------------------------------------------------------------------------
# recommendations


def recommendations(
    spec: InfrastructureSpec, prices: PriceTable, utilisation: dict[str, Any]
) -> list[dict[str, Any]]:
    p = spec.cloud_provider
    region = prices.region(p, spec.region)
    hours = prices.hours_per_month
    c, st = spec.compute, spec.storage
    out: list[dict[str, Any]] = []
    addr = ADDRESSES[p]
    current = region.instance_hourly(c.instance_type) or 0.0
    n = c.desired

    avg = utilisation.get("average_cpu")
    if utilisation.get("available") and avg is not None:
        ladder = prices.family_sizes(p, c.instance_type)
        pos = ladder.index(c.instance_type) if c.instance_type in ladder else -1
        if avg < LOW_CPU and pos > 0:
            smaller = ladder[pos - 1]
            price = region.instance_hourly(smaller) or current
            saving = (current - price) * n * hours
            out.append(
                {
                    "kind": "rightsizing",
                    "resource": addr["compute"],
                    "message": f"average CPU {avg:.0f}% on {c.instance_type} -> {smaller} "
                    f"saves ${saving:,.2f}/month",
                    "from": c.instance_type,
                    "to": smaller,
                    "monthly_savings": round(saving, 2),
                }
            )
        elif avg > HIGH_CPU and 0 <= pos < len(ladder) - 1:
            larger = ladder[pos + 1]
            price = region.instance_hourly(larger) or current
            extra = (price - current) * n * hours
            out.append(
                {
                    "kind": "rightsizing",
                    "resource": addr["compute"],
                    "message": f"average CPU {avg:.0f}% on {c.instance_type}: -> {larger} "
                    f"(+${extra:,.2f}/month) "
                    "or raise max_instances",
                    "from": c.instance_type,
                    "to": larger,
                    "monthly_savings": round(-extra, 2),
                }
            )

    cold = STORAGE_CLASSES[p].get("cold")
    if st.s3_bucket and st.s3_size and not st.archive_after_days and cold:
        size = parse_size(st.s3_size) / GIB
        hot_price = region.storage_gb_month(STORAGE_CLASSES[p]["object"])
        saving = size * COLD_SHARE * (hot_price - region.storage_gb_month(cold))
        out.append(
            {
                "kind": "storage_class",
                "resource": addr["object"],
                "message": f"set storage.archive_after_days: 30 to move old objects to {cold}; "
                f"if half of the "
                f"{size:g} GiB is rarely read, saves ${saving:,.2f}/month",
                "monthly_savings": round(saving, 2),
            }
        )
    file_cold = STORAGE_CLASSES[p].get("file_cold")
    if st.efs_volume and not st.archive_after_days and file_cold:
        size = parse_size(st.efs_volume) / GIB
        saving = (
            size
            * COLD_SHARE
            * (region.storage_gb_month(STORAGE_CLASSES[p]["file"]) - region.storage_gb_month(file_cold))
        )
        out.append(
            {
                "kind": "storage_class",
                "resource": addr["file"],
                "message": "set storage.archive_after_days to move files untouched for 30 days "
                f"to {file_cold}; "
                f"if half of the {size:g} GiB is cold, saves ${saving:,.2f}/month",
                "monthly_savings": round(saving, 2),
            }
        )
    always_on = c.min_instances if c.auto_scaling_group else c.desired
    discount = prices.reserved_discount(p)
    if always_on and discount and current:
        saving = always_on * current * hours * discount
        what = {
            "aws": "a 1-year Savings Plan / reserved instances",
            "gcp": "a 1-year committed use discount",
            "azure": "a 1-year reservation",
        }[p]
        out.append(
            {
                "kind": "reserved_capacity",
                "resource": addr["compute"],
                "message": f"{always_on} x {c.instance_type} always on: {what} "
                f"saves about ${saving:,.2f}/month "
                f"({discount:.0%})",
                "monthly_savings": round(saving, 2),
            }
        )
    return out


# ---------------------------------------------------------------------------
# module capacity


def _cpu(value: Any) -> float:
    text = str(value).strip()
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def module_capacity(
    spec: InfrastructureSpec, prices: PriceTable, modules: dict[str, Any]
) -> dict[str, Any] | None:
    """The deployment's modules (``{MODULE: {replicas, resources: {cpu, memory}}}``) against the group."""
    if not modules:
        return None
    p, c = spec.cloud_provider, spec.compute
    info = prices.instance_info(p, c.instance_type)
    vcpu, mem = float(info.get("vcpu", 0)), float(info.get("memory_gib", 0))
    need_cpu = need_mem = 0.0
    rows = []
    for name, m in modules.items():
        m = m or {}
        replicas = int(m.get("replicas", 1))
        res = m.get("resources", {}) or {}
        cpu = _cpu(res.get("cpu", 0)) * replicas
        memory = (parse_size(str(res["memory"])) / GIB if res.get("memory") else 0.0) * replicas
        need_cpu += cpu
        need_mem += memory
        rows.append({"module": name, "replicas": replicas, "cpu": cpu, "memory_gib": round(memory, 2)})
    needed = max(math.ceil(need_cpu / vcpu) if vcpu else 0, math.ceil(need_mem / mem) if mem else 0)
    hourly = prices.region(p, spec.region).instance_hourly(c.instance_type) or 0.0
    result = {
        "modules": rows,
        "cpu": need_cpu,
        "memory_gib": round(need_mem, 2),
        "instance_type": c.instance_type,
        "instances_needed": needed,
        "instances_desired": c.desired,
        "monthly_for_modules": round(needed * hourly * prices.hours_per_month, 2),
    }
    if needed > c.maximum:
        result["message"] = f"the modules need {needed} x {c.instance_type}, above max_instances {c.maximum}"
    elif needed > c.desired:
        result["message"] = f"the modules need {needed} x {c.instance_type}; desired is {c.desired}"
    else:
        result["message"] = f"the modules fit on {needed} of the {c.desired} desired instance(s)"
    return result
