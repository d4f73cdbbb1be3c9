"""What the built-in geospatial modules share: the sensor-table contract and finding inputs.

The full contract between the modules (result keys, parameters, rules) is docs/modules/README.md.

The sensor table: one row per reading, columns ``sensor_id``, ``timestamp`` (UTC),
``latitude``, ``longitude`` (WGS84), then one numeric column per measured variable
(``pm10``, ``temperature``, ``co2``...). As a GeoDataFrame it carries point geometries in
EPSG:4326.

Steps hand each other either a sensor table or a dict whose ``"data"`` entry is one
(plus other named tables: ``"trends"``, ``"forecast"``, ``"anomalies"``...). An action
finds what it needs among its inputs, then among all upstream steps (``ctx.ancestors``),
so the spec's workflows work whatever the exact wiring between them.

Heavy libraries (pandas, geopandas) are imported inside functions: importing a module
file only registers its actions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SENSOR_COLUMNS = ("sensor_id", "timestamp", "latitude", "longitude")
NON_VARIABLE_COLUMNS = frozenset(
    {*SENSOR_COLUMNS, "geometry", "source", "cluster", "h3_cell", "station_name", "quality_flag"}
)


class InputNotFoundError(LookupError):
    """A geospatial action found no upstream result of the kind it needs."""


def is_sensor_table(value: Any) -> bool:
    columns = getattr(value, "columns", None)
    return columns is not None and {"sensor_id", "timestamp"} <= set(columns)


def variables_of(table: Any, requested: Iterable[str] | None = None) -> list[str]:
    """The measured-variable columns of a sensor table (numeric, not part of the contract)."""
    import pandas as pd

    numeric = [
        c for c in table.columns if c not in NON_VARIABLE_COLUMNS and pd.api.types.is_numeric_dtype(table[c])
    ]
    if requested is None:
        return numeric
    wanted = list(requested)
    missing = [v for v in wanted if v not in numeric]
    if missing:
        raise ValueError(f"variables {missing} are not numeric columns of the table; it has {numeric}")
    return wanted


def _candidates(value: Any, key: str) -> Iterable[Any]:
    if key == "data" and is_sensor_table(value):
        yield value
    if isinstance(value, Mapping) and key in value:
        yield value[key]


def find_input(ctx: Any, key: str = "data", *, required: bool = True) -> Any:
    """The nearest upstream result called ``key`` (``"data"``: the sensor table).

    Direct inputs win over further ancestors; among ancestors the latest step wins, so a
    cleaned table from a validation step is preferred over the raw one it came from.
    """
    for source in (ctx.inputs, ctx.ancestors):
        for name in reversed(list(source)):
            for found in _candidates(source[name], key):
                return found
    if required:
        upstream = sorted(set(ctx.ancestors))
        raise InputNotFoundError(
            f"step {ctx.step!r} needs an upstream result with {key!r} "
            f"({'a sensor table' if key == 'data' else 'a table of that name'}); upstream steps: {upstream}. "
            "Add a dependency on the step that produces it."
        )
    return None


def to_geodataframe(table: Any) -> Any:
    """A sensor table as a GeoDataFrame of points in EPSG:4326 (no copy if it is one already)."""
    import geopandas as gpd

    if isinstance(table, gpd.GeoDataFrame) and table.crs is not None:
        return table
    return gpd.GeoDataFrame(
        table, geometry=gpd.points_from_xy(table["longitude"], table["latitude"]), crs="EPSG:4326"
    )
