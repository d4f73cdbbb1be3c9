"""The infrastructure format: parse a dict (Python, YAML or JSON) into frozen models, checked in full.

:func:`parse_infrastructure` never stops at the first problem. It checks the shape of every
section (unknown keys, types) with pydantic, then what pydantic cannot know: CIDRs are valid
networks, subnets lie inside the VPC and do not overlap, availability zones belong to the
region, the instance type exists for the provider (with a did-you-mean), the bucket name is
legal for the provider, sizes such as ``100Gi`` parse. It raises one
:class:`~geo_infer_ops.errors.ConfigError` listing every problem with its path
(``vpc.subnets[1].cidr``) and a fix.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._validation import validate_into
from ..errors import ConfigError, Problem, short_repr
from .pricing import PriceTable, load_prices

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
Provider = Literal["aws", "gcp", "azure"]

# ---------------------------------------------------------------------------
# regions and zones (the ones we validate; an unknown region is a problem with a did-you-mean)

AWS_ZONES: dict[str, str] = {
    "us-east-1": "abcdef",
    "us-east-2": "abc",
    "us-west-1": "abc",
    "us-west-2": "abcd",
    "ca-central-1": "abd",
    "eu-west-1": "abc",
    "eu-west-2": "abc",
    "eu-west-3": "abc",
    "eu-central-1": "abc",
    "eu-north-1": "abc",
    "ap-south-1": "abc",
    "ap-southeast-1": "abc",
    "ap-southeast-2": "abc",
    "ap-northeast-1": "acd",
    "sa-east-1": "abc",
}
GCP_ZONES: dict[str, str] = {
    "us-central1": "abcf",
    "us-east1": "bcd",
    "us-east4": "abc",
    "us-west1": "abc",
    "us-west2": "abc",
    "europe-west1": "bcd",
    "europe-west2": "abc",
    "europe-west3": "abc",
    "europe-west4": "abc",
    "asia-east1": "abc",
    "asia-northeast1": "abc",
    "asia-southeast1": "abc",
    "australia-southeast1": "abc",
}
AZURE_REGIONS: tuple[str, ...] = (
    "eastus",
    "eastus2",
    "centralus",
    "southcentralus",
    "westus2",
    "westus3",
    "northeurope",
    "westeurope",
    "uksouth",
    "francecentral",
    "germanywestcentral",
    "japaneast",
    "southeastasia",
    "australiaeast",
)
AZURE_ZONES = ("1", "2", "3")


def zones_of(provider: str, region: str) -> list[str]:
    """The availability zones we know for a region (empty for an unknown region)."""
    if provider == "aws":
        return [region + c for c in AWS_ZONES.get(region, "")]
    if provider == "gcp":
        return [f"{region}-{c}" for c in GCP_ZONES.get(region, "")]
    return list(AZURE_ZONES) if region in AZURE_REGIONS else []


def regions_of(provider: str) -> list[str]:
    return list({"aws": AWS_ZONES, "gcp": GCP_ZONES}.get(provider, AZURE_REGIONS))


# ---------------------------------------------------------------------------
# sizes

_UNITS = {
    "": None,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "p": 1000**5,
    "pb": 1000**5,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
    "pi": 1024**5,
    "pib": 1024**5,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
GIB = 1024**3


def parse_size(value: Any) -> int:
    """``'100Gi'`` -> bytes. Units: Ki Mi Gi Ti Pi (binary), K M G T P / KB MB GB TB PB (decimal).

    A bare number is refused (bytes or GiB? nobody agrees), as is a negative or zero size.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a size must be a string such as '100Gi', got {value!r}")
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size such as '100Gi' or '500GB'")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit not in _UNITS:
        raise ValueError(
            f"{value!r}: unknown unit {match.group(2)!r}; use Ki, Mi, Gi, Ti, Pi, KB, MB, GB, TB"
        )
    if _UNITS[unit] is None:
        raise ValueError(
            f"{value!r} has no unit; write it as '{match.group(1)}Gi' (GiB) or with another unit"
        )
    size = int(number * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"{value!r} must be larger than zero")
    return size


def size_gib(value: str | None) -> float:
    return parse_size(value) / GIB if value else 0.0


# ---------------------------------------------------------------------------
# names

_IP_LIKE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


def bucket_name_problems(name: str, provider: str) -> list[str]:
    """Every rule a bucket (AWS S3, GCS) or blob container (Azure) name breaks."""
    broken: list[str] = []
    if provider == "azure":
        if not 3 <= len(name) <= 63:
            broken.append(f"must be 3-63 characters long (is {len(name)})")
        if not re.fullmatch(r"[a-z0-9-]*", name):
            broken.append("may contain only lowercase letters, digits and hyphens")
        if name[:1] and not name[0].isalnum():
            broken.append("must start with a letter or digit")
        if "--" in name:
            broken.append("must not contain two hyphens in a row")
        return broken
    if not 3 <= len(name) <= 63:
        broken.append(f"must be 3-63 characters long (is {len(name)})")
    allowed = r"[a-z0-9.\-_]*" if provider == "gcp" else r"[a-z0-9.\-]*"
    if not re.fullmatch(allowed, name):
        what = "lowercase letters, digits, dots, hyphens and underscores"
        broken.append(
            f"may contain only {what if provider == 'gcp' else 'lowercase letters, digits, dots and hyphens'}"
        )
    if name and not (re.match(r"[a-z0-9]", name[0]) and re.match(r"[a-z0-9]", name[-1])):
        broken.append("must start and end with a lowercase letter or digit")
    if ".." in name:
        broken.append("must not contain two dots in a row")
    if _IP_LIKE.match(name):
        broken.append("must not look like an IP address")
    if provider == "aws":
        for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
            if name.startswith(prefix):
                broken.append(f"must not start with {prefix!r}")
        for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3"):
            if name.endswith(suffix):
                broken.append(f"must not end with {suffix!r}")
    if provider == "gcp" and (name.startswith("goog") or "google" in name):
        broken.append("must not start with 'goog' or contain 'google'")
    return broken


def azure_storage_account_name(bucket: str) -> str:
    """Azure storage account names are 3-24 lowercase letters and digits: derived from the bucket name."""
    return re.sub(r"[^a-z0-9]", "", bucket.lower())[:24]


# ---------------------------------------------------------------------------
# models


class Subnet(BaseModel):
    """``vpc.subnets[i]``: one subnet. ``public`` subnets route to the internet gateway."""

    model_config = _STRICT

    cidr: str
    availability_zone: str | None = None
    public: bool = True
    name: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,40}$")


class Vpc(BaseModel):
    """``vpc``: the network. ``nat_gateway`` gives private subnets a way out (one NAT, billed hourly)."""

    model_config = _STRICT

    cidr: str
    subnets: tuple[Subnet, ...] = Field(min_length=1)
    nat_gateway: bool = False


class Compute(BaseModel):
    """``compute``: one group of identical instances behind an optional load balancer."""

    model_config = _STRICT

    instance_type: str
    auto_scaling_group: bool = True
    load_balancer: bool = True
    min_instances: int = Field(default=2, ge=0, le=1000)
    max_instances: int | None = Field(default=None, ge=1, le=1000)
    desired_instances: int | None = Field(default=None, ge=0, le=1000)
    disk_size: str = "50Gi"
    app_port: int = Field(default=8080, ge=1, le=65535)
    health_check_path: str = Field(default="/healthz", pattern=r"^/")
    image: str | None = None
    target_cpu_utilization: float = Field(default=60.0, gt=0, le=100)

    @property
    def desired(self) -> int:
        return self.desired_instances if self.desired_instances is not None else self.min_instances

    @property
    def maximum(self) -> int:
        if not self.auto_scaling_group:
            return self.desired
        return self.max_instances if self.max_instances is not None else max(self.min_instances, 10)


class Storage(BaseModel):
    """``storage``: an object bucket, a shared file system and their backups."""

    model_config = _STRICT

    s3_bucket: str | None = None
    s3_size: str | None = None
    efs_volume: str | None = None
    backup_strategy: Literal["none", "daily", "weekly"] = "none"
    backup_retention_days: int | None = Field(default=None, ge=1, le=36500)
    archive_after_days: int | None = Field(default=None, ge=30, le=3650)

    @field_validator("efs_volume", "s3_bucket", "s3_size", mode="before")
    @classmethod
    def _false_is_none(cls, value: object) -> object:
        return None if value is False else value

    @field_validator("backup_strategy", mode="before")
    @classmethod
    def _none_strategy(cls, value: object) -> object:
        return "none" if value in (None, False) else value

    @property
    def retention_days(self) -> int:
        if self.backup_retention_days is not None:
            return self.backup_retention_days
        return 90 if self.backup_strategy == "weekly" else 35


class Security(BaseModel):
    """``security``: private endpoints, encryption and who may reach the load balancer."""

    model_config = _STRICT

    vpc_endpoints: bool = False
    encryption_at_rest: bool = True
    encryption_in_transit: bool = True
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)


class _Header(BaseModel):
    model_config = _STRICT

    cloud_provider: Provider
    region: str
    name: str = Field(default="geo-infer", pattern=r"^[a-z][a-z0-9-]{0,30}$")
    environment: str = Field(default="production", pattern=r"^[a-z][a-z0-9_-]{0,30}$")
    tags: dict[str, str] = Field(default_factory=dict)
    output_dir: str | None = None
    project_id: str | None = None
    vpc: dict[str, Any]
    compute: dict[str, Any]
    storage: dict[str, Any] = Field(default_factory=dict)
    security: dict[str, Any] = Field(default_factory=dict)
    modules: dict[str, Any] = Field(default_factory=dict)


class InfrastructureSpec(BaseModel):
    """A validated infrastructure spec. ``infrastructure_id`` is ``<name>-<hash of the content>``."""

    model_config = ConfigDict(frozen=True)

    cloud_provider: Provider
    region: str
    name: str = "geo-infer"
    environment: str = "production"
    tags: dict[str, str] = Field(default_factory=dict)
    output_dir: str | None = None
    project_id: str | None = None
    vpc: Vpc
    compute: Compute
    storage: Storage = Field(default_factory=Storage)
    security: Security = Field(default_factory=Security)
    modules: dict[str, Any] = Field(default_factory=dict)
    definition: dict[str, Any] = Field(default_factory=dict)

    @property
    def infrastructure_id(self) -> str:
        content = {k: v for k, v in self.definition.items() if k != "output_dir"}
        digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.name}-{digest[:10]}"

    @property
    def zones(self) -> list[str]:
        """The distinct availability zones of the subnets, in order of first use."""
        seen: list[str] = []
        for s in self.vpc.subnets:
            if s.availability_zone and s.availability_zone not in seen:
                seen.append(s.availability_zone)
        return seen

    def subnet_names(self) -> list[str]:
        return [s.name or f"subnet_{i + 1}" for i, s in enumerate(self.vpc.subnets)]


# ---------------------------------------------------------------------------
# loading


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON infrastructure file into a dict (errors name the file and line)."""
    from ..errors import WorkflowSpecError
    from ..orchestration.spec import load_workflow_file

    try:
        data = load_workflow_file(path)
    except WorkflowSpecError as exc:
        raise ConfigError(exc.problems, exc.source) from None
    return data


def as_spec_dict(source: Mapping[str, Any] | str | Path | InfrastructureSpec) -> tuple[Any, str]:
    if isinstance(source, (str, Path)):
        return load_spec_file(source), str(source)
    if isinstance(source, InfrastructureSpec):
        return source.definition, ""
    return source, ""


# ---------------------------------------------------------------------------
# parsing


def _network(value: str, path: str, problems: list[Problem]) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            problems.append(
                Problem(path, f"{value!r} is not an IPv4 CIDR block ({exc})", "write it as 10.0.0.0/16")
            )
            return None
        problems.append(Problem(path, f"{value!r} has host bits set", f"did you mean {str(loose)!r}?"))
        return None


def _did_you_mean(value: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(value, choices, n=3, cutoff=0.5)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def _check_region(h: _Header, problems: list[Problem]) -> bool:
    regions = regions_of(h.cloud_provider)
    if h.region in regions:
        return True
    hint = _did_you_mean(h.region, regions)
    for other in ("aws", "gcp", "azure"):
        if other != h.cloud_provider and h.region in regions_of(other):
            hint = f"{h.region!r} is an {other} region; " + (hint or f"use one of: {', '.join(regions)}")
    problems.append(
        Problem(
            "region",
            f"unknown {h.cloud_provider} region {h.region!r}",
            hint or f"use one of: {', '.join(regions)}",
        )
    )
    return False


def _zone_region(provider: str, zone: str) -> str | None:
    for region in regions_of(provider):
        if zone in zones_of(provider, region):
            return region
    return None


def _check_vpc(spec: _Header, vpc: Vpc, region_ok: bool, problems: list[Problem]) -> None:
    provider, region = spec.cloud_provider, spec.region
    net = _network(vpc.cidr, "vpc.cidr", problems)
    if net is not None and provider == "aws" and not 16 <= net.prefixlen <= 28:
        problems.append(
            Problem(
                "vpc.cidr",
                f"an AWS VPC block must be /16 to /28, got /{net.prefixlen}",
                "use e.g. 10.0.0.0/16",
            )
        )
    subnets: list[tuple[int, ipaddress.IPv4Network]] = []
    names: dict[str, int] = {}
    for i, s in enumerate(vpc.subnets):
        path = f"vpc.subnets[{i}]"
        if s.name:
            if s.name in names:
                problems.append(
                    Problem(
                        f"{path}.name",
                        f"name {s.name!r} is also used by vpc.subnets[{names[s.name]}]",
                        "give each subnet its own name",
                    )
                )
            names[s.name] = i
        sub = _network(s.cidr, f"{path}.cidr", problems)
        if sub is not None:
            smallest = {"aws": 28, "gcp": 29, "azure": 29}[provider]
            if sub.prefixlen > smallest or (provider == "aws" and sub.prefixlen < 16):
                problems.append(
                    Problem(
                        f"{path}.cidr",
                        f"/{sub.prefixlen} is not a usable {provider} subnet size",
                        f"use a prefix between /16 and /{smallest}",
                    )
                )
            if net is not None and not sub.subnet_of(net):
                problems.append(
                    Problem(
                        f"{path}.cidr",
                        f"{s.cidr} is outside the VPC {vpc.cidr}",
                        f"pick a block inside {vpc.cidr}",
                    )
                )
            for j, other in subnets:
                if sub.overlaps(other):
                    problems.append(
                        Problem(
                            f"{path}.cidr",
                            f"{s.cidr} overlaps vpc.subnets[{j}] ({other})",
                            "give each subnet its own block",
                        )
                    )
            subnets.append((i, sub))
        _check_zone(spec, s, path, region_ok, problems)
    zones = {s.availability_zone for s in vpc.subnets if s.public and s.availability_zone}
    if provider == "aws" and len(zones) < 2 and spec.compute.get("load_balancer", True) is not False:
        problems.append(
            Problem(
                "vpc.subnets",
                "an AWS application load balancer needs public subnets in at least two availability zones",
                f"add a public subnet in another zone of {region}",
            )
        )
    if not any(s.public for s in vpc.subnets):
        problems.append(
            Problem(
                "vpc.subnets",
                "no public subnet: the load balancer and the NAT need one",
                "set public: true on at least one subnet",
            )
        )
    if vpc.nat_gateway and all(s.public for s in vpc.subnets):
        problems.append(
            Problem(
                "vpc.nat_gateway",
                "a NAT gateway is useless without a private subnet",
                "add a subnet with public: false or drop nat_gateway",
            )
        )


def _check_zone(spec: _Header, s: Subnet, path: str, region_ok: bool, problems: list[Problem]) -> None:
    provider, region = spec.cloud_provider, spec.region
    az = s.availability_zone
    if az is None:
        if provider == "aws":
            problems.append(
                Problem(
                    f"{path}.availability_zone",
                    "missing: an AWS subnet lives in one availability zone",
                    f"add e.g. availability_zone: {region}a",
                )
            )
        return
    if not region_ok:
        return
    known = zones_of(provider, region)
    if az in known:
        return
    owner = _zone_region(provider, az)
    if owner:
        problems.append(
            Problem(
                f"{path}.availability_zone",
                f"{az!r} belongs to region {owner}, not {region}",
                f"use one of: {', '.join(known)}",
            )
        )
    else:
        hint = _did_you_mean(az, known)
        problems.append(
            Problem(
                f"{path}.availability_zone",
                f"{az!r} is not an availability zone of {region}",
                hint or f"use one of: {', '.join(known)}",
            )
        )


def _check_compute(spec: _Header, compute: Compute, prices: PriceTable, problems: list[Problem]) -> None:
    provider = spec.cloud_provider
    known = prices.instance_types(provider)
    if compute.instance_type not in known:
        hint = _did_you_mean(compute.instance_type, known)
        for other in ("aws", "gcp", "azure"):
            if other != provider and compute.instance_type in prices.instance_types(other):
                hint = f"{compute.instance_type!r} is an {other} type; " + (
                    hint or f"use one of: {', '.join(known)}"
                )
        problems.append(
            Problem(
                "compute.instance_type",
                f"unknown {provider} instance type {compute.instance_type!r}",
                hint or f"use one of: {', '.join(known)}",
            )
        )
    if compute.max_instances is not None and compute.max_instances < compute.min_instances:
        problems.append(
            Problem(
                "compute.max_instances",
                f"{compute.max_instances} is below min_instances ({compute.min_instances})",
                "raise max_instances or lower min_instances",
            )
        )
    if (
        compute.desired_instances is not None
        and not compute.min_instances <= compute.desired_instances <= compute.maximum
    ):
        problems.append(
            Problem(
                "compute.desired_instances",
                f"{compute.desired_instances} is outside min_instances..max_instances "
                f"({compute.min_instances}..{compute.maximum})",
                "pick a value in that range",
            )
        )
    try:
        if parse_size(compute.disk_size) < GIB:
            problems.append(
                Problem("compute.disk_size", f"{compute.disk_size!r} is below 1Gi", "use at least 8Gi")
            )
    except ValueError as exc:
        problems.append(Problem("compute.disk_size", str(exc), "write a size such as '50Gi'"))


def _check_storage(spec: _Header, storage: Storage, problems: list[Problem]) -> None:
    provider = spec.cloud_provider
    if storage.s3_bucket is not None:
        broken = bucket_name_problems(storage.s3_bucket, provider)
        if broken:
            problems.append(
                Problem(
                    "storage.s3_bucket",
                    f"illegal bucket name {storage.s3_bucket!r}: " + "; ".join(broken),
                    "use 3-63 lowercase letters, digits and hyphens, e.g. 'geo-infer-data'",
                )
            )
        elif provider == "azure" and len(azure_storage_account_name(storage.s3_bucket)) < 3:
            problems.append(
                Problem(
                    "storage.s3_bucket",
                    "the Azure storage account name derived from it is shorter than 3 characters",
                    "use more letters or digits",
                )
            )
    for key in ("s3_size", "efs_volume"):
        value = getattr(storage, key)
        if value is not None:
            try:
                parse_size(value)
            except ValueError as exc:
                problems.append(Problem(f"storage.{key}", str(exc), "write a size such as '100Gi'"))
    if storage.s3_size is not None and storage.s3_bucket is None:
        problems.append(
            Problem("storage.s3_size", "s3_size without s3_bucket", "add s3_bucket or drop s3_size")
        )
    if storage.backup_strategy != "none" and storage.efs_volume is None and storage.s3_bucket is None:
        problems.append(
            Problem(
                "storage.backup_strategy",
                f"{storage.backup_strategy!r} backups but nothing to back up",
                "add efs_volume or s3_bucket, or set backup_strategy: none",
            )
        )


def _check_security(security: Security, problems: list[Problem]) -> None:
    for i, cidr in enumerate(security.allowed_cidrs):
        _network(cidr, f"security.allowed_cidrs[{i}]", problems)


def parse_infrastructure(
    data: Any, *, source: str = "", prices: PriceTable | None = None
) -> InfrastructureSpec:
    """Validate an infrastructure dict; return an :class:`InfrastructureSpec` or raise one ConfigError."""
    if isinstance(data, InfrastructureSpec):
        return data
    prices = prices or load_prices()
    if not isinstance(data, Mapping):
        raise ConfigError(
            [
                Problem(
                    "",
                    f"an infrastructure spec must be a mapping, got {short_repr(data)}",
                    "write it as a dict / YAML mapping",
                )
            ],
            source,
        )
    problems: list[Problem] = []
    header: _Header | None = validate_into(_Header, dict(data), "", problems)
    if header is None:
        # still check the sections that can be read, so that one run reports everything
        provider = (
            data.get("cloud_provider") if data.get("cloud_provider") in ("aws", "gcp", "azure") else None
        )
        if provider is None or not isinstance(data.get("region"), str):
            raise ConfigError(problems, source)
        safe = {k: data[k] for k in ("cloud_provider", "region") if k in data}
        safe.update(
            {
                k: data[k]
                for k in ("vpc", "compute", "storage", "security")
                if isinstance(data.get(k), Mapping)
            }
        )
        safe.setdefault("vpc", {})
        safe.setdefault("compute", {})
        header = _Header.modelvalidate_into(safe)
    region_ok = _check_region(header, problems)
    vpc = validate_into(Vpc, header.vpc, "vpc", problems)
    compute = validate_into(Compute, header.compute, "compute", problems)
    storage = validate_into(Storage, header.storage, "storage", problems)
    security = validate_into(Security, header.security, "security", problems)
    if vpc is not None:
        _check_vpc(header, vpc, region_ok, problems)
    if compute is not None:
        _check_compute(header, compute, prices, problems)
    if storage is not None:
        _check_storage(header, storage, problems)
    if security is not None:
        _check_security(security, problems)
    if problems:
        raise ConfigError(problems, source)
    fields = header.model_dump(exclude={"vpc", "compute", "storage", "security"})
    return InfrastructureSpec(
        **fields,
        vpc=vpc,
        compute=compute,
        storage=storage,
        security=security,
        definition=json.loads(json.dumps(dict(data), default=str)),
    )
