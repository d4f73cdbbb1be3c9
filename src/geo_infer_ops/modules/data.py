"""DATA: load sensor tables from files or named sources, and validate them.

Actions:

- ``DATA.load_sensor_data`` / ``DATA.load_environmental_data``: read a file (CSV, Parquet,
  GeoParquet, GeoJSON) or named sources (the bundled ``sensors``, ``weather``, ``satellite``,
  ``co2`` and any added with :func:`register_data_source`), filter by time, bounding box and
  variables, and return the sensor table as a GeoDataFrame (points, EPSG:4326).
- ``DATA.validate_sensor_data``: range checks, missing values, duplicates, out-of-order
  timestamps, invalid or (0, 0) coordinates and stuck sensors; returns the cleaned table and
  a quality report whose ``data_quality_score`` is also reported as a metric.

Heavy libraries are imported inside the functions (see ``_common``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from geo_infer_ops import action

from ._common import NON_VARIABLE_COLUMNS, SENSOR_COLUMNS, find_input, to_geodataframe, variables_of

__all__ = [
    "DEFAULT_RANGES",
    "available_data_sources",
    "load_environmental_data",
    "load_sensor_data",
    "read_sensor_file",
    "register_data_source",
    "to_sensor_table",
    "unregister_data_source",
    "validate_sensor_data",
]

# --------------------------------------------------------------------------------------------
# Named sources
# --------------------------------------------------------------------------------------------

_USER_SOURCES: dict[str, tuple[Any, dict[str, str] | None]] = {}
_SOURCES_LOCK = threading.Lock()


def _bundled_sources() -> dict[str, Path]:
    from ..data import list_sources

    return list_sources()


def available_data_sources() -> list[str]:
    """Names usable in ``data_sources``: the bundled ones and those registered in this process."""
    with _SOURCES_LOCK:
        user = set(_USER_SOURCES)
    return sorted(set(_bundled_sources()) | user)


def register_data_source(
    name: str,
    path_or_loader: str | Path | Callable[[], Any],
    *,
    columns: Mapping[str, str] | None = None,
    replace: bool = False,
) -> None:
    """Make ``name`` usable in ``data_sources`` of ``DATA.load_sensor_data``.

    ``path_or_loader`` is a file (CSV, Parquet, GeoParquet, GeoJSON), read on every load, or a
    callable with no arguments that returns a (Geo)DataFrame. ``columns`` maps the file's
    column names to the sensor-table names, as for the ``columns`` parameter of the load
    actions. A name of a bundled source can only be taken with ``replace=True``.

    Registrations live in the current process: register in a module that workflows import
    (``--import`` / ``GEO_INFER_OPS_IMPORTS``) so process steps and workers see them too.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        raise ValueError(f"register_data_source: name must be letters, digits, '_', '.', '-'; got {name!r}")
    if not callable(path_or_loader):
        if not isinstance(path_or_loader, (str, Path)):
            raise ValueError(
                "register_data_source: path_or_loader must be a file path or a callable returning a "
                f"DataFrame; got {type(path_or_loader).__name__}"
            )
        path_or_loader = Path(path_or_loader).expanduser()
    with _SOURCES_LOCK:
        taken = name in _USER_SOURCES or name in _bundled_sources()
        if taken and not replace:
            raise ValueError(f"data source {name!r} already exists; pass replace=True to register over it")
        _USER_SOURCES[name] = (path_or_loader, dict(columns) if columns else None)


def unregister_data_source(name: str) -> None:
    """Forget a source added with :func:`register_data_source` (bundled ones stay)."""
    with _SOURCES_LOCK:
        _USER_SOURCES.pop(name, None)


def _load_named_source(name: str) -> Any:
    with _SOURCES_LOCK:
        user = _USER_SOURCES.get(name)
    if user is not None:
        target, columns = user
        if callable(target):
            table = target()
            if not hasattr(table, "columns"):
                raise ValueError(
                    f"the loader of data source {name!r} returned {type(table).__name__}, not a DataFrame"
                )
            return to_sensor_table(table, columns=columns, origin=f"data source {name!r}")
        return read_sensor_file(target, columns=columns)
    bundled = _bundled_sources()
    if name in bundled:
        import pandas as pd

        return to_sensor_table(pd.read_parquet(bundled[name]), origin=f"data source {name!r}")
    raise ValueError(
        f"data_sources: unknown source {name!r}; available: {', '.join(available_data_sources())} "
        "(add your own with geo_infer_ops.modules.data.register_data_source(name, path_or_loader))"
    )


# --------------------------------------------------------------------------------------------
# Reading files and normalising to the sensor-table contract
# --------------------------------------------------------------------------------------------

_ALIASES: dict[str, tuple[str, ...]] = {
    "sensor_id": (
        "sensor_id",
        "sensor",
        "station_id",
        "station",
        "station_code",
        "device_id",
        "device",
        "site_id",
        "site",
        "id",
        "origin",
    ),
    "timestamp": (
        "timestamp",
        "time",
        "datetime",
        "date_time",
        "time_hour",
        "date",
        "ts",
        "observed_at",
        "measured_at",
    ),
    "latitude": ("latitude", "lat", "y"),
    "longitude": ("longitude", "lon", "lng", "long", "x"),
}

_TABLE_SUFFIXES = {
    ".csv",
    ".txt",
    ".tsv",
    ".parquet",
    ".geoparquet",
    ".pq",
    ".geojson",
    ".json",
    ".jsonl",
    ".ndjson",
    ".gpkg",
    ".shp",
}


def read_sensor_file(path: str | Path, *, columns: Mapping[str, str] | None = None) -> Any:
    """Read CSV / Parquet / GeoParquet / GeoJSON / JSON records into a sensor-table GeoDataFrame."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"path: no such file: {path}")
    return to_sensor_table(read_raw_table(path), columns=columns, origin=str(path))


def read_raw_table(path: Path) -> Any:
    """A file as a (Geo)DataFrame, by its suffix; column names untouched."""
    import pandas as pd

    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in {".gz", ".bz2", ".zip", ".xz", ".zst"} and len(suffixes) > 1:
        suffix = suffixes[-2]
    if suffix in {".csv", ".txt"}:
        return pd.read_csv(path)
    if suffix == ".tsv":
        return pd.read_csv(path, sep="\t")
    if suffix in {".parquet", ".geoparquet", ".pq"}:
        import pyarrow.parquet as pq

        metadata = pq.read_schema(path).metadata or {}
        if b"geo" in metadata:
            import geopandas as gpd

            return gpd.read_parquet(path)
        return pd.read_parquet(path)
    if suffix in {".jsonl", ".ndjson"}:
        return pd.read_json(path, lines=True, convert_dates=False)
    if suffix in {".geojson", ".json"}:
        import json

        with path.open("rb") as fh:
            payload = json.load(fh)
        return records_to_frame(payload)
    if suffix in {".gpkg", ".shp"}:
        import geopandas as gpd

        return gpd.read_file(path)
    raise ValueError(
        f"path: cannot read {path.name!r}: unknown file type {suffix or '(none)'}; "
        "accepted: .csv, .tsv, .parquet, .geoparquet, .geojson, .json, .jsonl"
    )


def records_to_frame(payload: Any, records_key: str | None = None) -> Any:
    """JSON (a list of records, one record, ``{records_key: [...]}`` or a FeatureCollection) as a frame."""
    import pandas as pd

    if records_key:
        node = payload
        for part in records_key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                keys = sorted(node) if isinstance(node, Mapping) else type(node).__name__
                raise ValueError(f"records_key {records_key!r}: no key {part!r} in the JSON (it has {keys})")
            node = node[part]
        payload = node
    if isinstance(payload, Mapping) and payload.get("type") in {"FeatureCollection", "Feature"}:
        import geopandas as gpd

        features = payload["features"] if payload["type"] == "FeatureCollection" else [payload]
        if not features:
            return pd.DataFrame()
        crs = None
        named = (
            (payload.get("crs") or {}).get("properties", {}).get("name")
            if isinstance(payload.get("crs"), Mapping)
            else None
        )
        if named:
            crs = named
        return gpd.GeoDataFrame.from_features(features, crs=crs or "EPSG:4326")
    if isinstance(payload, Mapping):
        if any(k in payload for k in ("sensor_id", "timestamp", "time", "latitude", "lat")):
            payload = [payload]
        else:
            lists = [k for k, v in payload.items() if isinstance(v, list)]
            if len(lists) == 1:
                payload = payload[lists[0]]
            else:
                raise ValueError(
                    f"records_key: the JSON is an object with keys {sorted(payload)}; say which key holds "
                    "the list of readings with records_key"
                )
    if not isinstance(payload, list):
        raise ValueError(f"expected a JSON list of readings, got {type(payload).__name__}")
    if not payload:
        return pd.DataFrame()
    if not all(isinstance(r, Mapping) for r in payload):
        raise ValueError("expected a JSON list of objects (one per reading)")
    return pd.json_normalize(payload)


def _apply_column_mapping(frame: Any, columns: Mapping[str, str] | None) -> Any:
    if not columns:
        return frame
    if not isinstance(columns, Mapping):
        raise ValueError(
            "columns must be a mapping {file_column: sensor_table_column}, "
            "e.g. {'station': 'sensor_id', 'time': 'timestamp'}"
        )
    present = set(frame.columns)
    rename: dict[str, str] = {}
    for key, value in columns.items():
        if key in present and value not in present:
            rename[key] = value  # {file column: our name}, as in DataFrame.rename
        elif value in present and key not in present:
            if key in SENSOR_COLUMNS and value not in SENSOR_COLUMNS:
                rename[value] = key  # the reverse, {our name: file column}, is accepted too
            # otherwise the data already uses the target name: nothing to rename
        elif key in present and value in present:
            continue
        elif {key, value} & {"latitude", "longitude"} and "geometry" in present:
            continue  # the positions come from the geometry
        else:
            raise ValueError(
                f"columns[{key!r}]: neither {key!r} nor {value!r} is a column of the data; "
                f"its columns are {sorted(map(str, present))}"
            )
    return frame.rename(columns=rename)


def _epoch_to_datetime(values: Any) -> Any:
    import pandas as pd

    numeric = pd.to_numeric(values, errors="coerce")
    largest = float(numeric.abs().max()) if numeric.notna().any() else 0.0
    unit = "s" if largest < 1e11 else "ms" if largest < 1e14 else "us" if largest < 1e17 else "ns"
    return pd.to_datetime(numeric, unit=unit, utc=True)


def to_sensor_table(frame: Any, *, columns: Mapping[str, str] | None = None, origin: str = "the data") -> Any:
    """Any table of readings -> the sensor-table GeoDataFrame (points, EPSG:4326), sorted.

    ``columns`` renames first; the usual spellings (``lat``, ``lon``, ``time``, ``station``...)
    are recognised; point geometries give latitude/longitude when those columns are absent.
    """
    import geopandas as gpd
    import pandas as pd

    frame = _apply_column_mapping(frame, columns)
    frame = frame.copy()
    lower = {str(c).lower(): c for c in frame.columns}
    rename: dict[Any, str] = {}
    for target, aliases in _ALIASES.items():
        if target in frame.columns:
            continue
        for alias in aliases:
            original = lower.get(alias)
            if original is not None and original not in rename and original not in _ALIASES:
                rename[original] = target
                break
    frame = frame.rename(columns=rename)

    geometry_name = frame.geometry.name if isinstance(frame, gpd.GeoDataFrame) else None
    if geometry_name is not None and not {"latitude", "longitude"} <= set(frame.columns):
        geo = frame
        if geo.crs is not None and not geo.crs.equals("EPSG:4326"):
            geo = geo.to_crs("EPSG:4326")
        geom = geo.geometry
        if not (geom.geom_type.dropna() == "Point").all():
            geom = geom.representative_point()
        frame = pd.DataFrame(frame.drop(columns=geometry_name))
        frame["longitude"] = geom.x.to_numpy()
        frame["latitude"] = geom.y.to_numpy()
    elif geometry_name is not None:
        frame = pd.DataFrame(frame.drop(columns=geometry_name))
    elif "geometry" in frame.columns:
        frame = frame.drop(columns="geometry")

    missing = [c for c in SENSOR_COLUMNS if c not in frame.columns]
    if missing and len(frame.columns):
        raise ValueError(
            f"{origin} has no column for {missing}; its columns are {sorted(map(str, frame.columns))}. "
            "Map them with columns={'<your column>': '<sensor_id|timestamp|latitude|longitude>'}"
        )
    if missing:  # an empty frame without columns: an empty sensor table
        frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in SENSOR_COLUMNS})

    sensor = frame["sensor_id"]
    if pd.api.types.is_float_dtype(sensor) and (sensor.dropna() % 1 == 0).all():
        sensor = sensor.astype("Int64")  # ids read as 101.0 because of a gap stay "101"
    frame["sensor_id"] = sensor.astype(object).where(sensor.notna(), None).astype(str)
    ts = frame["timestamp"]
    if pd.api.types.is_datetime64_any_dtype(ts):
        ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(ts):
        ts = _epoch_to_datetime(ts)
    else:
        try:
            ts = pd.to_datetime(ts, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            try:
                ts = pd.to_datetime(ts, utc=True, format="mixed")
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"{origin}: column 'timestamp' has values that are not times: {exc}"
                ) from None
    frame["timestamp"] = ts.astype("datetime64[ns, UTC]")
    for c in ("latitude", "longitude"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    # Values that arrived as text ("12.5") become numbers; real text columns stay text.
    for c in frame.columns:
        if c in NON_VARIABLE_COLUMNS or pd.api.types.is_numeric_dtype(frame[c]):
            continue
        if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c]):
            converted = pd.to_numeric(frame[c], errors="coerce")
            if converted.notna().sum() == frame[c].notna().sum() and frame[c].notna().any():
                frame[c] = converted
    for c in frame.columns:
        if pd.api.types.is_bool_dtype(frame[c]):
            continue
        if c not in NON_VARIABLE_COLUMNS and pd.api.types.is_integer_dtype(frame[c]):
            frame[c] = frame[c].astype("float64")
    ordered = [*SENSOR_COLUMNS, *[c for c in frame.columns if c not in SENSOR_COLUMNS]]
    frame = frame[ordered].sort_values(["sensor_id", "timestamp"], kind="stable").reset_index(drop=True)
    return to_geodataframe(frame)


# --------------------------------------------------------------------------------------------
# Filters: time range, bounding box, variables
# --------------------------------------------------------------------------------------------

_TIME_RANGE_FORMS = (
    "'all', 'last_N_hours|days|weeks|months|years' (e.g. 'last_30_days', 'last_24_hours'; "
    "relative to the newest reading), or ISO 'start/end' such as '2024-01-01/2024-03-31' "
    "(either side may be empty: '2024-01-01/')"
)
_RELATIVE = re.compile(r"^last_(?:(\d+)_)?(hour|day|week|month|year)s?$")


def parse_time_range(time_range: str | None) -> tuple[str, Any, Any]:
    """('all', None, None) | ('relative', DateOffset, None) | ('absolute', start|None, end|None).

    An absolute end given as a date alone includes that whole day.
    """
    import pandas as pd

    if time_range is None:
        return ("all", None, None)
    if not isinstance(time_range, str):
        raise ValueError(f"time_range must be a string: {_TIME_RANGE_FORMS}; got {time_range!r}")
    text = time_range.strip().lower()
    if text in {"all", "", "*"}:
        return ("all", None, None)
    match = _RELATIVE.match(text)
    if match:
        count = int(match.group(1) or 1)
        if count < 1:
            raise ValueError(
                f"time_range {time_range!r}: N must be at least 1; accepted: {_TIME_RANGE_FORMS}"
            )
        unit = match.group(2)
        offset = {
            "hour": pd.DateOffset(hours=count),
            "day": pd.DateOffset(days=count),
            "week": pd.DateOffset(weeks=count),
            "month": pd.DateOffset(months=count),
            "year": pd.DateOffset(years=count),
        }[unit]
        return ("relative", offset, None)
    if "/" in text and text.count("/") == 1:
        raw_start, raw_end = (part.strip() for part in time_range.split("/"))
        try:
            start = pd.Timestamp(raw_start) if raw_start else None
            end = pd.Timestamp(raw_end) if raw_end else None
        except (ValueError, TypeError):
            raise ValueError(
                f"time_range {time_range!r} is not understood; accepted: {_TIME_RANGE_FORMS}"
            ) from None
        if start is None and end is None:
            return ("all", None, None)
        start = (
            None
            if start is None
            else (start.tz_localize("UTC") if start.tz is None else start.tz_convert("UTC"))
        )
        if end is not None:
            end = end.tz_localize("UTC") if end.tz is None else end.tz_convert("UTC")
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw_end):
                end = end + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
        if start is not None and end is not None and start > end:
            raise ValueError(f"time_range {time_range!r}: the start is after the end")
        return ("absolute", start, end)
    raise ValueError(f"time_range {time_range!r} is not understood; accepted: {_TIME_RANGE_FORMS}")


def _filter_time(table: Any, parsed: tuple[str, Any, Any]) -> Any:
    kind, a, b = parsed
    if kind == "all" or table.empty:
        return table
    ts = table["timestamp"]
    if kind == "relative":
        newest = ts.max()
        mask = ts > newest - a
    else:
        mask = ts.notna()
        if a is not None:
            mask &= ts >= a
        if b is not None:
            mask &= ts <= b
    return table[mask.to_numpy()]


def _parse_bbox(bbox: Any) -> tuple[float, float, float, float] | None:
    if bbox is None:
        return None
    if isinstance(bbox, Mapping):
        try:
            bbox = [bbox[k] for k in ("min_lon", "min_lat", "max_lon", "max_lat")]
        except KeyError:
            raise ValueError("bbox as a mapping needs min_lon, min_lat, max_lon, max_lat") from None
    if isinstance(bbox, str):
        bbox = [p for p in re.split(r"[,\s]+", bbox.strip()) if p]
    try:
        values = [float(v) for v in bbox]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4:
        raise ValueError(f"bbox must be [min_lon, min_lat, max_lon, max_lat] in WGS84 degrees; got {bbox!r}")
    min_lon, min_lat, max_lon, max_lat = values
    if not (
        -180 <= min_lon <= 180 and -180 <= max_lon <= 180 and -90 <= min_lat <= 90 and -90 <= max_lat <= 90
    ):
        raise ValueError(
            f"bbox {values}: longitudes must be within -180..180 and latitudes within -90..90 "
            "(order: [min_lon, min_lat, max_lon, max_lat])"
        )
    if min_lat > max_lat or min_lon > max_lon:
        raise ValueError(
            f"bbox {values}: min must not exceed max (order: [min_lon, min_lat, max_lon, max_lat])"
        )
    return (min_lon, min_lat, max_lon, max_lat)


def _describe_span(table: Any) -> str:
    if table.empty or table["timestamp"].isna().all():
        return "the data has no readings"
    return (
        f"the data spans {table['timestamp'].min().isoformat()} .. {table['timestamp'].max().isoformat()} "
        f"({len(table)} readings)"
    )


def _load(
    *,
    path: str | None,
    data_sources: str | Sequence[str] | None,
    time_range: str | None,
    bbox: Any,
    variables: str | Sequence[str] | None,
    columns: Mapping[str, str] | None,
    sensor_ids: Sequence[str] | None,
    ctx: Any,
) -> Any:
    import pandas as pd

    parsed = parse_time_range(time_range)
    box = _parse_bbox(bbox)
    if isinstance(variables, str):
        variables = [variables]
    if isinstance(data_sources, str):
        data_sources = [data_sources]
    if data_sources is not None and (
        not isinstance(data_sources, Sequence) or not all(isinstance(s, str) for s in data_sources)
    ):
        raise ValueError(f"data_sources must be a list of source names; got {data_sources!r}")
    if isinstance(sensor_ids, str):
        sensor_ids = [sensor_ids]
    if columns is not None and not isinstance(columns, Mapping):
        raise ValueError("columns must be a mapping {file_column: sensor_table_column}")

    parts: list[tuple[str, Any]] = []
    if path:
        file = Path(path).expanduser()
        parts.append((file.stem.split(".")[0], read_sensor_file(file, columns=columns)))
    if data_sources:
        for name in dict.fromkeys(data_sources):
            table = _load_named_source(name)
            if columns:
                table = to_sensor_table(_apply_column_mapping(table, columns), origin=f"data source {name!r}")
            parts.append((name, table))
    if not parts:
        parts.append(("sensors", _load_named_source("sensors")))

    kept: list[Any] = []
    spans: list[str] = []
    for name, table in parts:
        spans.append(f"{name}: {_describe_span(table)}")
        # Relative ranges count back from each source's own newest reading.
        table = _filter_time(table, parsed)
        if box is not None and not table.empty:
            lon, lat = table["longitude"], table["latitude"]
            inside = lat.between(box[1], box[3]) & lon.between(box[0], box[2])
            table = table[inside.to_numpy()]
        if sensor_ids:
            table = table[table["sensor_id"].isin(list(sensor_ids)).to_numpy()]
        table = table.copy()
        table["source"] = name
        kept.append(table)

    if variables:
        available = {v for t in kept for v in variables_of(t)}
        unknown = [v for v in variables if v not in available]
        if unknown:
            raise ValueError(f"variables: {unknown} not found; the loaded data has {sorted(available)}")
        selected = []
        for table in kept:
            present = [v for v in variables if v in table.columns]
            if not present:
                continue
            others = [
                c
                for c in table.columns
                if c not in NON_VARIABLE_COLUMNS
                and c not in variables
                and pd.api.types.is_numeric_dtype(table[c])
            ]
            table = table.drop(columns=others)
            selected.append(table[table[present].notna().any(axis=1).to_numpy()])
        kept = selected

    kept = [t for t in kept if not t.empty]
    if not kept:
        what = []
        if parsed[0] != "all":
            what.append(f"time_range {time_range!r}")
        if box is not None:
            what.append(f"bbox {list(box)}")
        if sensor_ids:
            what.append(f"sensor_ids {list(sensor_ids)}")
        raise ValueError(f"{' and '.join(what) or 'the selection'} left no readings; " + "; ".join(spans))
    if len(kept) == 1:
        result = kept[0]
    else:
        result = pd.concat(kept, ignore_index=True, sort=False)
        ordered = [*SENSOR_COLUMNS, *[c for c in result.columns if c not in SENSOR_COLUMNS]]
        result = result[ordered]
    result = result.reset_index(drop=True)
    result = to_geodataframe(result)
    if ctx is not None:
        ctx.log.info(
            "loaded %d readings from %d sensors (%s), %s .. %s",
            len(result),
            result["sensor_id"].nunique(),
            ", ".join(n for n, _ in parts),
            result["timestamp"].min(),
            result["timestamp"].max(),
        )
    return result


@action("DATA", "load_environmental_data")
@action("DATA", "load_sensor_data")
def load_sensor_data(
    path: str | None = None,
    data_sources: list[str] | str | None = None,
    time_range: str | None = None,
    bbox: list[float] | None = None,
    variables: list[str] | str | None = None,
    columns: dict[str, str] | None = None,
    sensor_ids: list[str] | None = None,
    ctx: Any = None,
) -> Any:
    """Load sensor readings from a file or named sources as a GeoDataFrame (points, EPSG:4326).

    path: CSV, Parquet, GeoParquet, GeoJSON or JSON file. data_sources: names of bundled or
    registered sources ('sensors', 'weather', 'satellite', 'co2', ...); several are concatenated
    with a ``source`` column. Neither given: the 'sensors' source. time_range: 'all',
    'last_N_hours|days|weeks|months|years' (relative to the newest reading of each source) or
    ISO 'start/end'. bbox: [min_lon, min_lat, max_lon, max_lat]. variables: columns to keep.
    columns: {file_column: sensor_id|timestamp|latitude|longitude|variable} renames.
    sensor_ids: keep only these sensors.
    """
    return _load(
        path=path,
        data_sources=data_sources,
        time_range=time_range,
        bbox=bbox,
        variables=variables,
        columns=columns,
        sensor_ids=sensor_ids,
        ctx=ctx,
    )


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

# Plausible physical ranges [lo, hi] per variable, in the units of the bundled data (None: open).
DEFAULT_RANGES: dict[str, tuple[float | None, float | None]] = {
    "pm10": (0.0, 2000.0),  # µg/m³ (dust storms reach ~1000-2000)
    "pm25": (0.0, 1000.0),  # µg/m³
    "pm2_5": (0.0, 1000.0),
    "pm1": (0.0, 1000.0),
    "no2": (0.0, 2000.0),  # µg/m³
    "so2": (0.0, 5000.0),  # µg/m³
    "co": (0.0, 100.0),  # mg/m³
    "ozone": (0.0, 1000.0),  # µg/m³ or ppb at the ground; Dobson units for column ozone
    "o3": (0.0, 1000.0),
    "co2": (250.0, 10000.0),  # ppm (outdoor ~280-450, indoor up to a few thousand)
    "temperature": (-90.0, 60.0),  # °C (world records -89.2 / 56.7)
    "temp": (-90.0, 60.0),
    "dewpoint": (-90.0, 40.0),  # °C
    "dewp": (-90.0, 40.0),
    "humidity": (0.0, 100.0),  # % relative humidity
    "relative_humidity": (0.0, 100.0),
    "pressure": (500.0, 1100.0),  # hPa (sea-level records 870 / 1084; stations up to ~5 km)
    "wind_speed": (0.0, 120.0),  # m/s (record gust 113 m/s)
    "wind_gust": (0.0, 120.0),
    "wind_dir": (0.0, 360.0),  # degrees
    "wind_direction": (0.0, 360.0),
    "precip": (0.0, 2000.0),  # mm per reading (daily record ~1825 mm)
    "precipitation": (0.0, 2000.0),
    "rain": (0.0, 2000.0),
    "visib": (0.0, 200.0),  # visibility, miles or km
    "visibility": (0.0, 200.0),
    "solar_radiation": (0.0, 1500.0),  # W/m²
    "uv_index": (0.0, 20.0),
    "noise": (0.0, 200.0),  # dB
    "soil_moisture": (0.0, 100.0),  # %
}

# Values a variable can legitimately keep for a long time, not counted as "stuck":
# 'zero' (no rain, no sun at night), 'max' (the sensor's reporting cap, e.g. visibility 10 miles),
# or a number (humidity 100 % in fog).
_PLATEAUS: dict[str, tuple[Any, ...]] = {
    "precip": ("zero",),
    "precipitation": ("zero",),
    "rain": ("zero",),
    "snow": ("zero",),
    "snowfall": ("zero",),
    "solar_radiation": ("zero",),
    "uv_index": ("zero",),
    "visib": ("max",),
    "visibility": ("max",),
    "humidity": (100.0,),
    "relative_humidity": (100.0,),
    "wind_speed": ("zero",),
}
_MAX_LISTED_RUNS = 50


def _parse_ranges(ranges: Any, variables: list[str]) -> dict[str, tuple[float | None, float | None]]:
    used = {v: DEFAULT_RANGES[v] for v in variables if v in DEFAULT_RANGES}
    if ranges is None:
        return used
    if not isinstance(ranges, Mapping):
        raise ValueError("ranges must be a mapping {variable: [lo, hi]}, e.g. {'pm10': [0, 500]}")
    for var, bounds in ranges.items():
        if var not in variables:
            raise ValueError(
                f"ranges[{var!r}]: the table has no variable {var!r}; its variables: {variables}"
            )
        if bounds is None:
            used.pop(var, None)  # no range check for this variable
            continue
        if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
            raise ValueError(f"ranges[{var!r}] must be [lo, hi] (null for an open side); got {bounds!r}")
        try:
            lo = None if bounds[0] is None else float(bounds[0])
            hi = None if bounds[1] is None else float(bounds[1])
        except (TypeError, ValueError):
            raise ValueError(f"ranges[{var!r}] must be two numbers [lo, hi]; got {bounds!r}") from None
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"ranges[{var!r}]: lo {lo} is greater than hi {hi}")
        used[var] = (lo, hi)
    return used


def _stuck_mask(table: Any, var: str, min_run: int) -> tuple[Any, Any]:
    """Boolean mask of values in runs of >= min_run identical readings of one sensor, and run ids."""
    import numpy as np

    values = table[var].to_numpy(dtype="float64")
    sensors = table["sensor_id"].to_numpy()
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64)
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (values[1:] != values[:-1]) | (sensors[1:] != sensors[:-1])
    new_run |= np.isnan(values)
    run_id = np.cumsum(new_run)
    run_length = np.bincount(run_id)[run_id]
    mask = (run_length >= min_run) & ~np.isnan(values)
    plateaus = _PLATEAUS.get(var.lower(), ())
    if mask.any() and plateaus:
        exempt = np.zeros(n, dtype=bool)
        for plateau in plateaus:
            if plateau == "zero":
                exempt |= values == 0
            elif plateau == "max":
                exempt |= values == table.groupby("sensor_id", sort=False)[var].transform("max").to_numpy()
            else:
                exempt |= values == float(plateau)
        mask &= ~exempt
    return mask, run_id


@action("DATA", "validate_sensor_data")
def validate_sensor_data(
    path: str | None = None,
    ranges: dict[str, list[float | None]] | None = None,
    stuck_readings: int = 24,
    data: Any = None,
    ctx: Any = None,
) -> dict[str, Any]:
    """Check and clean a sensor table: ranges, missing values, duplicates, order, coordinates, stuck sensors.

    Input: the upstream sensor table (or ``path``, or ``data`` in Python calls). ranges:
    {variable: [lo, hi]} overriding the plausible defaults (``null`` disables a check).
    stuck_readings: a value repeated this many consecutive readings of one sensor is stuck
    (0 disables). Returns {"data": cleaned GeoDataFrame, "quality": report}; the report's
    ``data_quality_score`` (share of expected measured values kept) is reported as a metric.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(stuck_readings, int) or isinstance(stuck_readings, bool) or stuck_readings < 0:
        raise ValueError(
            f"stuck_readings must be a whole number >= 2 (0 disables the check); got {stuck_readings!r}"
        )
    if stuck_readings == 1:
        raise ValueError("stuck_readings must be >= 2 (0 disables the check); 1 would flag every reading")

    if data is None and path:
        data = read_sensor_file(path)
    elif isinstance(data, (str, Path)):
        data = read_sensor_file(data)
    if data is None:
        if ctx is None:
            raise ValueError(
                "validate_sensor_data needs a sensor table: pass path=..., data=..., "
                "or run it as a workflow step after a step that loads data"
            )
        data = find_input(ctx)
    if isinstance(data, Mapping) and "data" in data:
        data = data["data"]
    if "geometry" in getattr(data, "columns", []) and not {"latitude", "longitude"} <= set(data.columns):
        data = to_sensor_table(data)
    missing_cols = [c for c in SENSOR_COLUMNS if c not in data.columns]
    if missing_cols:
        raise ValueError(f"the table to validate has no {missing_cols} columns; it has {list(data.columns)}")
    if len(data) == 0:
        raise ValueError("there are no readings to validate (the input table is empty)")

    table = pd.DataFrame(data.drop(columns=[c for c in ("geometry", "quality_flag") if c in data.columns]))
    table = table.reset_index(drop=True)
    if not pd.api.types.is_datetime64_any_dtype(table["timestamp"]):
        table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True, errors="coerce", format="mixed")
    variables = variables_of(table)
    used_ranges = _parse_ranges(ranges, variables)
    rows_in = len(table)

    # Measured values expected: per source (when the table mixes sources), the variables it measures.
    groups = (
        table.groupby("source", sort=False, dropna=False) if "source" in table.columns else [(None, table)]
    )
    expected_vars: dict[Any, list[str]] = {}
    values_expected = 0
    for key, part in groups:
        measured = [v for v in variables if part[v].notna().any()]
        expected_vars[key] = measured
        values_expected += len(part) * len(measured)
    missing_by_var = {v: int(table[v].isna().sum()) for v in variables}
    if "source" in table.columns:
        missing_by_var = {v: 0 for v in variables}
        for key, part in table.groupby("source", sort=False, dropna=False):
            for v in expected_vars[key]:
                missing_by_var[v] += int(part[v].isna().sum())

    # 1. rows without a sensor or a time
    keys_missing = table["sensor_id"].isna() | table["timestamp"].isna()
    # 2. coordinates: not numbers, out of range, or exactly (0, 0)
    lat, lon = table["latitude"], table["longitude"]
    invalid = lat.isna() | lon.isna() | ~lat.between(-90, 90) | ~lon.between(-180, 180)
    zero = (lat == 0) & (lon == 0)
    n_missing_keys = int(keys_missing.sum())
    n_invalid = int((invalid & ~keys_missing).sum())
    n_zero = int((zero & ~invalid & ~keys_missing).sum())
    table = table[~(keys_missing | invalid | zero).to_numpy()]

    # 3. timestamps out of order: earlier than the previous reading of the same sensor, as received
    previous = table.groupby("sensor_id", sort=False)["timestamp"].shift()
    n_out_of_order = int((table["timestamp"] < previous).sum())

    # 4. duplicates (sensor_id, timestamp): keep the last one received
    dup = table.duplicated(["sensor_id", "timestamp"], keep="last")
    n_duplicates = int(dup.sum())
    n_conflicting = 0
    if n_duplicates:
        dupes_all = table[table.duplicated(["sensor_id", "timestamp"], keep=False).to_numpy()]
        distinct = dupes_all.drop_duplicates(subset=["sensor_id", "timestamp", *variables])
        n_conflicting = int(len(distinct) - dupes_all[["sensor_id", "timestamp"]].drop_duplicates().shape[0])
        table = table[~dup.to_numpy()]
    table = table.sort_values(["sensor_id", "timestamp"], kind="stable").reset_index(drop=True)

    flags = np.full(len(table), "", dtype=object)
    out_of_range_by_var: dict[str, int] = {}
    for var, (lo, hi) in used_ranges.items():
        values = table[var]
        bad = pd.Series(False, index=table.index)
        if lo is not None:
            bad |= values < lo
        if hi is not None:
            bad |= values > hi
        count = int(bad.sum())
        out_of_range_by_var[var] = count
        if count:
            table[var] = values.mask(bad)
            flags = flags + np.where(bad.to_numpy(), f"out_of_range:{var};", "")

    stuck_by_var: dict[str, int] = {}
    stuck_runs: list[dict[str, Any]] = []
    n_runs = 0
    if stuck_readings:
        for var in variables:
            mask, run_id = _stuck_mask(table, var, stuck_readings)
            count = int(mask.sum())
            stuck_by_var[var] = count
            if not count:
                continue
            runs = table.loc[mask, ["sensor_id", "timestamp", var]].rename(columns={var: "value"})
            runs.insert(0, "run", run_id[mask])
            summary = runs.groupby("run", sort=False).agg(
                sensor_id=("sensor_id", "first"),
                start=("timestamp", "min"),
                end=("timestamp", "max"),
                length=("value", "size"),
                value=("value", "first"),
            )
            n_runs += len(summary)
            for row in summary.itertuples(index=False):
                if len(stuck_runs) >= _MAX_LISTED_RUNS:
                    break
                stuck_runs.append(
                    {
                        "sensor_id": str(row.sensor_id),
                        "variable": var,
                        "start": pd.Timestamp(row.start).isoformat(),
                        "end": pd.Timestamp(row.end).isoformat(),
                        "length": int(row.length),
                        "value": float(row.value),
                    }
                )
            table[var] = table[var].mask(mask)
            flags = flags + np.where(mask, f"stuck:{var};", "")

    # Readings left without any valid value are dropped.
    empty = table[variables].isna().all(axis=1).to_numpy() if variables else np.zeros(len(table), dtype=bool)
    n_empty = int(empty.sum())
    table = table[~empty]
    flags = flags[~empty]
    table["quality_flag"] = pd.Series([f.rstrip(";") for f in flags], index=table.index, dtype=str)
    table = table.reset_index(drop=True)

    if "source" in table.columns:
        values_kept = 0
        for key, part in table.groupby("source", sort=False, dropna=False):
            values_kept += int(part[expected_vars.get(key, variables)].notna().to_numpy().sum())
    else:
        values_kept = int(table[variables].notna().to_numpy().sum()) if variables else len(table)
        if not variables:
            values_expected = rows_in
    score = float(values_kept / values_expected) if values_expected else 0.0

    cleaned = to_geodataframe(table)
    quality: dict[str, Any] = {
        "data_quality_score": round(score, 6),
        "readings_in": rows_in,
        "readings_out": len(cleaned),
        "values_expected": int(values_expected),
        "values_kept": int(values_kept),
        "sensors": int(cleaned["sensor_id"].nunique()),
        "variables": variables,
        "missing_keys": n_missing_keys,
        "invalid_coordinates": n_invalid,
        "zero_coordinates": n_zero,
        "duplicates": n_duplicates,
        "conflicting_duplicates": n_conflicting,
        "out_of_order": n_out_of_order,
        "out_of_range": int(sum(out_of_range_by_var.values())),
        "out_of_range_by_variable": out_of_range_by_var,
        "missing_values": int(sum(missing_by_var.values())),
        "missing_values_by_variable": missing_by_var,
        "stuck_values": int(sum(stuck_by_var.values())),
        "stuck_values_by_variable": stuck_by_var,
        "stuck_runs": n_runs,
        "stuck_run_list": stuck_runs,
        "empty_readings": n_empty,
        "ranges": {v: [lo, hi] for v, (lo, hi) in used_ranges.items()},
        "unchecked_variables": [v for v in variables if v not in used_ranges],
        "stuck_readings": stuck_readings,
    }
    if ctx is not None:
        ctx.metric("data_quality_score", score)
        ctx.log.info(
            "validated %d readings: kept %d, quality score %.4f (duplicates %d, out of order %d, "
            "invalid/zero coordinates %d/%d, out of range %d, stuck %d, missing %d)",
            rows_in,
            len(cleaned),
            score,
            n_duplicates,
            n_out_of_order,
            n_invalid,
            n_zero,
            quality["out_of_range"],
            quality["stuck_values"],
            quality["missing_values"],
        )
    return {"data": cleaned, "quality": quality}


load_environmental_data = load_sensor_data  # the spec uses both names for one action
