"""The price table: list prices per provider, region, instance type and storage class.

The table ships with the package (``prices.json``, its source and date stated inside) and
can be replaced by passing another file or dict. A region missing from the table is priced
with the provider's first region and says so (``price_region``), never silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class RegionPrices:
    """Prices of one region; ``region`` is where they come from, ``requested`` what was asked."""

    provider: str
    region: str
    requested: str
    data: Mapping[str, Any]

    @property
    def fallback(self) -> bool:
        return self.region != self.requested

    def instance_hourly(self, instance_type: str) -> float | None:
        value = self.data.get("instance_hourly", {}).get(instance_type)
        return None if value is None else float(value)

    def storage_gb_month(self, storage_class: str) -> float:
        return float(self.data.get("storage_gb_month", {}).get(storage_class, 0.0))

    def get(self, key: str) -> float:
        return float(self.data.get(key, 0.0))


class PriceTable:
    """Read access to a price table (the shipped ``prices.json`` by default)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data

    @property
    def source(self) -> str:
        return str(self.data.get("source", "unknown"))

    @property
    def as_of(self) -> str:
        return str(self.data.get("as_of", "unknown"))

    @property
    def hours_per_month(self) -> float:
        return float(self.data.get("hours_per_month", HOURS_PER_MONTH))

    def provider(self, provider: str) -> Mapping[str, Any]:
        return self.data.get("providers", {}).get(provider, {})

    def instance_types(self, provider: str) -> list[str]:
        return list(self.provider(provider).get("instance_types", {}))

    def instance_info(self, provider: str, instance_type: str) -> dict[str, Any]:
        return dict(self.provider(provider).get("instance_types", {}).get(instance_type, {}))

    def reserved_discount(self, provider: str) -> float:
        return float(self.provider(provider).get("reserved_discount", 0.0))

    def region(self, provider: str, region: str) -> RegionPrices:
        regions = self.provider(provider).get("regions", {})
        if region in regions:
            return RegionPrices(provider, region, region, regions[region])
        first = next(iter(regions), region)
        return RegionPrices(provider, first, region, regions.get(first, {}))

    def family_sizes(self, provider: str, instance_type: str) -> list[str]:
        """Types of the same family (``t3``, ``n2-standard``, ``D..s_v3``), by vCPU then memory."""
        family = _family(provider, instance_type)
        types = self.provider(provider).get("instance_types", {})
        same = [t for t in types if _family(provider, t) == family]
        return sorted(same, key=lambda t: (types[t].get("vcpu", 0), types[t].get("memory_gib", 0)))

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "as_of": self.as_of, "currency": self.data.get("currency", "USD")}


def _family(provider: str, instance_type: str) -> str:
    if provider == "aws":
        return instance_type.split(".", 1)[0]
    if provider == "gcp":
        parts = instance_type.split("-")
        return parts[0] if parts[0] == "e2" else "-".join(parts[:2])
    # Azure: Standard_D2s_v3 -> D..s_v3
    core = instance_type.removeprefix("Standard_")
    letters = "".join(c for c in core.split("_")[0] if not c.isdigit())
    return letters + "_" + "_".join(core.split("_")[1:])


@lru_cache(maxsize=4)
def _load_file(path: str) -> PriceTable:
    return PriceTable(json.loads(Path(path).read_text(encoding="utf-8")))


def load_prices(source: str | Path | Mapping[str, Any] | PriceTable | None = None) -> PriceTable:
    """The shipped table, or a table from a file, a dict or an existing :class:`PriceTable`."""
    if isinstance(source, PriceTable):
        return source
    if isinstance(source, Mapping):
        return PriceTable(source)
    return _load_file(str(source or PRICES_FILE))
