"""SPACE: spatial analysis of sensor tables (DBSCAN clustering, H3 aggregation, Gi* hot spots, IDW).

Actions (``docs/modules/space.md`` has the full description):

- ``SPACE.analyze_spatial_patterns`` (alias ``SPACE.spatial_analysis``) with ``analysis_type``
  ``clustering`` | ``hotspots`` | ``h3_aggregate`` | ``interpolation``.

Clustering runs on the unique sensor locations (one point per ``sensor_id``), never on every
reading, and the labels are mapped back onto the readings: a million readings from a thousand
sensors cost one DBSCAN over a thousand points. H3 cells are likewise computed once per unique
location. Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import math
from typing import Any

from geo_infer_ops import action

from ._common import find_input, to_geodataframe, variables_of

ANALYSIS_TYPES = ("clustering", "hotspots", "h3_aggregate", "interpolation")
EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG); 1 degree of arc = 111.195 km
KM_PER_DEGREE = EARTH_RADIUS_KM * math.pi / 180.0


# -- input -----------------------------------------------------------------------------------
def load_table(data: Any, ctx: Any) -> Any:
    """The sensor table to work on: ``data`` (a table, a bundled source name or a file) or upstream."""
    import pandas as pd

    from ._common import is_sensor_table

    if data is None:
        if ctx is None:
            raise ValueError(
                "no input: pass data= (a sensor table, a bundled source name or a file path) "
                "or run the action as a workflow step after a step that produces a sensor table"
            )
        return find_input(ctx)
    if isinstance(data, dict) and "data" in data:
        data = data["data"]
    if is_sensor_table(data):
        return data
    if isinstance(data, str):
        from pathlib import Path

        from ..data import list_sources, load_source

        if data in list_sources():
            return load_source(data)
        path = Path(data).expanduser()
        if not path.is_file():
            raise ValueError(
                f"data={data!r} is neither a bundled source ({', '.join(list_sources())}) "
                "nor an existing file"
            )
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq", ".geoparquet"):
            table = pd.read_parquet(path)
        elif suffix == ".csv":
            table = pd.read_csv(path)
        elif suffix in (".geojson", ".json", ".gpkg", ".shp"):
            import geopandas as gpd

            table = gpd.read_file(path)
        else:
            raise ValueError(
                f"data={data!r}: unsupported file type {suffix!r}; use .parquet, .csv or .geojson"
            )
        if "timestamp" in table.columns:
            table["timestamp"] = pd.to_datetime(table["timestamp"], utc=True)
        if not is_sensor_table(table):
            raise ValueError(f"data={data!r} has no sensor_id/timestamp columns: {list(table.columns)}")
        return table
    raise ValueError(
        f"data must be a sensor table (sensor_id, timestamp, latitude, longitude, ...), a bundled "
        f"source name or a file path, not {type(data).__name__}"
    )


# -- helpers (public for tests and the benchmark) --------------------------------------------
def resolution_to_eps_km(spatial_resolution: float, eps_km: float | None = None) -> float:
    """DBSCAN radius in km: ``eps_km`` if given, else ``spatial_resolution`` degrees x 111.195 km."""
    if eps_km is not None:
        return float(eps_km)
    return float(spatial_resolution) * KM_PER_DEGREE


def h3_resolution_for_km(km: float) -> int:
    """The H3 resolution (0..15) whose average hexagon edge length is closest to ``km``."""
    import h3

    return min(range(16), key=lambda r: abs(h3.average_hexagon_edge_length(r, unit="km") - km))


def dbscan_locations(lat: Any, lon: Any, eps_km: float, min_samples: int) -> Any:
    """DBSCAN labels (-1 = noise) of points given in degrees, haversine metric, ball tree."""
    import numpy as np
    from sklearn.cluster import DBSCAN

    coords = np.radians(np.column_stack([np.asarray(lat, float), np.asarray(lon, float)]))
    if len(coords) == 0:
        return np.empty(0, dtype=int)
    model = DBSCAN(
        eps=eps_km / EARTH_RADIUS_KM, min_samples=min_samples, metric="haversine", algorithm="ball_tree"
    )
    return model.fit_predict(coords)


def haversine_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> Any:
    """Great-circle distance in km (numpy broadcasting)."""
    import numpy as np

    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def idw(
    lat: Any, lon: Any, values: Any, query_lat: Any, query_lon: Any, power: float = 2.0, chunk: int = 4096
) -> Any:
    """Inverse-distance-weighted values at the query points (haversine distances).

    A query point that coincides with a sample (distance < 1 mm) takes that sample's value, so
    the interpolant reproduces the data; every result lies within [min(values), max(values)].
    """
    import numpy as np

    lat, lon, values = (np.asarray(a, float) for a in (lat, lon, values))
    qlat, qlon = np.asarray(query_lat, float).ravel(), np.asarray(query_lon, float).ravel()
    out = np.empty(len(qlat))
    for start in range(0, len(qlat), chunk):
        sl = slice(start, start + chunk)
        d = haversine_km(qlat[sl, None], qlon[sl, None], lat[None, :], lon[None, :])
        exact = d < 1e-6
        with np.errstate(divide="ignore"):
            w = 1.0 / d**power
        w[exact] = 0.0
        res = (w @ values) / w.sum(axis=1)
        hit = exact.any(axis=1)
        if hit.any():
            res[hit] = values[exact[hit].argmax(axis=1)]
        out[sl] = res
    return out


def getis_ord_gi_star(cells: list[str], values: Any, k: int = 1) -> tuple[Any, Any]:
    """Getis-Ord Gi* z-scores and two-sided normal p-values of ``values`` on H3 ``cells``.

    Binary weights: w_ij = 1 when j is in ``h3.grid_disk(i, k)`` and occupied (the cell itself
    included: the 'star'), else 0. Gi* = (sum_j w_ij x_j - xbar W_i) /
    (S sqrt((n sum_j w_ij^2 - W_i^2) / (n - 1))), with xbar and S the mean and (population)
    standard deviation of all n values (Getis & Ord 1992; Ord & Getis 1995).
    """
    import h3
    import numpy as np
    from scipy.stats import norm

    x = np.asarray(values, float)
    n = len(x)
    z = np.full(n, np.nan)
    if n < 2:
        return z, np.full(n, np.nan)
    index = {c: i for i, c in enumerate(cells)}
    xbar = x.mean()
    s = math.sqrt(max((x**2).mean() - xbar**2, 0.0))
    for i, cell in enumerate(cells):
        nb = [index[c] for c in h3.grid_disk(cell, k) if c in index]
        w = len(nb)
        denom_sq = (n * w - w * w) / (n - 1)
        if s == 0 or denom_sq <= 0:
            z[i] = 0.0
            continue
        z[i] = (x[nb].sum() - xbar * w) / (s * math.sqrt(denom_sq))
    p = 2.0 * norm.sf(np.abs(z))
    return z, p


def unique_locations(lat: Any, lon: Any) -> tuple[Any, Any, Any]:
    """(code per row, -1 where a coordinate is missing; unique latitudes; unique longitudes)."""
    import numpy as np
    import pandas as pd

    lat = np.asarray(lat, float)
    lon = np.asarray(lon, float)
    valid = ~(np.isnan(lat) | np.isnan(lon))
    codes = np.full(len(lat), -1, dtype=np.intp)
    found, uniques = pd.factorize(lat[valid] + 1j * lon[valid], sort=False)  # complex: one fast hash
    codes[valid] = found
    return codes, np.real(uniques).astype(float), np.imag(uniques).astype(float)


def _hex_polygons(cells: Any) -> list[Any]:
    import h3
    from shapely.geometry import Polygon

    return [Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in cells]


# -- the action ------------------------------------------------------------------------------
def _check(
    analysis_type: str,
    spatial_resolution: float,
    eps_km: float | None,
    min_samples: int,
    h3_resolution: int | None,
    k_ring: int,
    alpha: float,
    power: float,
    grid_size: int,
) -> None:
    if analysis_type not in ANALYSIS_TYPES:
        raise ValueError(f"analysis_type={analysis_type!r} is not one of {', '.join(ANALYSIS_TYPES)}")
    if not isinstance(spatial_resolution, (int, float)) or spatial_resolution <= 0:
        raise ValueError(
            f"spatial_resolution must be a positive number of degrees, not {spatial_resolution!r}"
        )
    if eps_km is not None and (not isinstance(eps_km, (int, float)) or eps_km <= 0):
        raise ValueError(f"eps_km must be a positive number of kilometres, not {eps_km!r}")
    if not isinstance(min_samples, int) or min_samples < 1:
        raise ValueError(f"min_samples must be an integer >= 1, not {min_samples!r}")
    if h3_resolution is not None and (not isinstance(h3_resolution, int) or not 0 <= h3_resolution <= 15):
        raise ValueError(f"h3_resolution must be an integer 0..15, not {h3_resolution!r}")
    if not isinstance(k_ring, int) or k_ring < 1:
        raise ValueError(f"k_ring must be an integer >= 1, not {k_ring!r}")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (exclusive), not {alpha!r}")
    if not isinstance(power, (int, float)) or power <= 0:
        raise ValueError(f"power must be a positive number, not {power!r}")
    if not isinstance(grid_size, int) or grid_size < 2:
        raise ValueError(f"grid_size must be an integer >= 2, not {grid_size!r}")


@action("SPACE", "spatial_analysis")
@action("SPACE", "analyze_spatial_patterns")
def analyze_spatial_patterns(
    analysis_type: str = "clustering",
    spatial_resolution: float = 0.01,
    eps_km: float | None = None,
    min_samples: int = 3,
    h3_resolution: int | None = None,
    variable: str | None = None,
    variables: list[str] | None = None,
    k_ring: int = 1,
    alpha: float = 0.05,
    power: float = 2.0,
    grid_size: int = 50,
    timestamp: str | None = None,
    data: Any = None,
    ctx: Any = None,
) -> dict[str, Any]:
    """Spatial patterns of sensor readings: DBSCAN clusters, H3 aggregates, Gi* hot spots or IDW grid.

    analysis_type: ``clustering`` (DBSCAN, haversine, on unique sensor locations), ``h3_aggregate``
    (mean/max per H3 cell), ``hotspots`` (Getis-Ord Gi* on the H3 cell means of ``variable``) or
    ``interpolation`` (inverse distance weighting onto a ``grid_size`` x ``grid_size`` grid).
    spatial_resolution: degrees; DBSCAN eps = spatial_resolution x 111.195 km unless ``eps_km`` is
    given, and the H3 resolution is the one whose mean edge length is closest to it unless
    ``h3_resolution`` is given. Every analysis type also clusters, so ``data`` always has a
    ``cluster`` column (-1 = noise).
    Returns {"data", "clusters", "summary"} plus "hexes" (h3_aggregate, hotspots), "hotspots"
    (hotspots) or "grid" (interpolation).
    """
    import time as _time

    import geopandas as gpd
    import numpy as np
    import pandas as pd
    from shapely.geometry import Point

    started = _time.perf_counter()
    _check(
        analysis_type, spatial_resolution, eps_km, min_samples, h3_resolution, k_ring, alpha, power, grid_size
    )
    table = load_table(data, ctx)
    if len(table) == 0:
        raise ValueError("the sensor table is empty: nothing to analyse")
    missing = [c for c in ("latitude", "longitude") if c not in table.columns]
    if missing:
        raise ValueError(f"the sensor table has no {missing} column(s); it has {list(table.columns)}")
    var_list = variables_of(table, variables)
    if variable is not None and variable not in variables_of(table):
        raise ValueError(
            f"variable={variable!r} is not a numeric column of the table; it has {variables_of(table)}"
        )
    log = getattr(ctx, "log", None)

    out = table.copy()
    if "timestamp" in out.columns and not isinstance(out["timestamp"].dtype, pd.DatetimeTZDtype):
        out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True)
    lat = out["latitude"].to_numpy(float)
    lon = out["longitude"].to_numpy(float)
    loc_codes, u_lat, u_lon = unique_locations(lat, lon)
    if isinstance(out, gpd.GeoDataFrame) and out.crs is not None:
        out = to_geodataframe(out)
    else:  # one point object per unique location, shared by its readings: 1M points in milliseconds
        points = gpd.points_from_xy(u_lon, u_lat).take(loc_codes, allow_fill=True)
        out = gpd.GeoDataFrame(out, geometry=points, crs="EPSG:4326")

    # --- clustering on unique sensor locations, labels mapped back to readings -------------
    eps = resolution_to_eps_km(spatial_resolution, eps_km)
    codes, sensor_ids = pd.factorize(out["sensor_id"], sort=False)
    n_sensors_total = len(sensor_ids)
    counts = np.bincount(codes[codes >= 0], minlength=n_sensors_total)
    valid = ~(np.isnan(lat) | np.isnan(lon)) & (codes >= 0)
    lat_sum = np.bincount(codes[valid], weights=lat[valid], minlength=n_sensors_total)
    lon_sum = np.bincount(codes[valid], weights=lon[valid], minlength=n_sensors_total)
    n_valid = np.bincount(codes[valid], minlength=n_sensors_total)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_lat, s_lon = lat_sum / n_valid, lon_sum / n_valid
    located = n_valid > 0
    sensor_labels = np.full(n_sensors_total, -1, dtype=int)
    sensor_labels[located] = dbscan_locations(s_lat[located], s_lon[located], eps, min_samples)
    reading_labels = np.where(codes >= 0, sensor_labels[np.maximum(codes, 0)], -1)
    out["cluster"] = reading_labels

    cluster_ids = sorted(int(c) for c in set(sensor_labels.tolist()) if c >= 0)
    cl = pd.DataFrame({"cluster": sensor_labels, "lat": s_lat, "lon": s_lon, "n_readings": counts})
    cl = cl[cl["cluster"] >= 0]
    agg = cl.groupby("cluster").agg(
        n_sensors=("lat", "size"),
        n_readings=("n_readings", "sum"),
        latitude=("lat", "mean"),
        longitude=("lon", "mean"),
    )
    if var_list:
        means = out.loc[out["cluster"] >= 0].groupby("cluster")[var_list].mean()
        agg = agg.join(means.add_suffix("_mean"))
    agg = agg.reset_index()
    clusters = gpd.GeoDataFrame(
        agg,
        geometry=[Point(x, y) for x, y in zip(agg["longitude"], agg["latitude"], strict=True)],
        crs="EPSG:4326",
    )
    n_noise = int(((sensor_labels < 0) & located).sum())
    summary: dict[str, Any] = {
        "analysis_type": analysis_type,
        "n_clusters": len(cluster_ids),
        "n_noise": n_noise,
        "n_noise_readings": int((reading_labels < 0).sum()),
        "n_sensors": int(n_sensors_total),
        "n_readings": len(out),
        "variables": var_list,
        "parameters": {
            "spatial_resolution": spatial_resolution,
            "eps_km": round(eps, 6),
            "min_samples": min_samples,
        },
    }
    result: dict[str, Any] = {"data": out, "clusters": clusters}
    if log:
        log.info(
            "DBSCAN eps=%.3f km min_samples=%d on %d sensors (%d readings): %d clusters, %d noise sensors",
            eps,
            min_samples,
            n_sensors_total,
            len(out),
            len(cluster_ids),
            n_noise,
        )
        if cluster_ids == [] and n_sensors_total > 1:
            log.warning(
                "all sensors are noise at eps=%.3f km: try a larger eps_km or spatial_resolution", eps
            )

    # --- H3 --------------------------------------------------------------------------------
    if analysis_type in ("h3_aggregate", "hotspots"):
        import h3

        res = h3_resolution if h3_resolution is not None else h3_resolution_for_km(eps)
        uniq_cells = np.array(
            [h3.latlng_to_cell(a, b, res) for a, b in zip(u_lat, u_lon, strict=True)], dtype=object
        )
        cell_of = np.where(loc_codes >= 0, uniq_cells[np.maximum(loc_codes, 0)], None)
        out["h3_cell"] = cell_of
        grouped = out.loc[out["h3_cell"].notna()].groupby("h3_cell", sort=True)
        hex_df = grouped.size().rename("count").to_frame()
        hex_df["n_sensors"] = grouped["sensor_id"].nunique()
        for v in var_list:
            hex_df[f"{v}_mean"] = grouped[v].mean()
            hex_df[f"{v}_max"] = grouped[v].max()
        hex_df = hex_df.reset_index()
        hexes = gpd.GeoDataFrame(hex_df, geometry=_hex_polygons(hex_df["h3_cell"]), crs="EPSG:4326")
        result["hexes"] = hexes
        summary["parameters"]["h3_resolution"] = res
        summary["h3_resolution"] = res
        summary["n_hexes"] = len(hexes)
        summary["h3_edge_km"] = h3.average_hexagon_edge_length(res, unit="km")

        if analysis_type == "hotspots":
            if not var_list:
                raise ValueError("hotspots needs a numeric variable column; the table has none")
            var = variable or var_list[0]
            if var not in var_list:
                hexes[f"{var}_mean"] = grouped[var].mean().to_numpy()
            col = hexes[f"{var}_mean"]
            usable = col.notna().to_numpy()
            hs = hexes.loc[usable, ["h3_cell", "geometry"]].copy()
            hs["value"] = col[usable].to_numpy()
            z, p = getis_ord_gi_star(hs["h3_cell"].tolist(), hs["value"].to_numpy(), k=k_ring)
            hs["gi_z"] = z
            hs["p_value"] = p
            sig = p < alpha
            hs["hotspot"] = np.where(sig & (z > 0), "hot", np.where(sig & (z < 0), "cold", "none"))
            hs = gpd.GeoDataFrame(hs.reset_index(drop=True), geometry="geometry", crs="EPSG:4326")
            result["hotspots"] = hs
            summary["variable"] = var
            summary["parameters"].update({"k_ring": k_ring, "alpha": alpha})
            summary["n_hot"] = int((hs["hotspot"] == "hot").sum())
            summary["n_cold"] = int((hs["hotspot"] == "cold").sum())
            if ctx is not None:
                ctx.metric("hotspots_hot", summary["n_hot"])

    # --- IDW -----------------------------------------------------------------------------------
    if analysis_type == "interpolation":
        if not var_list:
            raise ValueError("interpolation needs a numeric variable column; the table has none")
        ivars = [variable] if variable else var_list
        src = out
        if timestamp is not None:
            try:
                when = pd.Timestamp(timestamp)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"timestamp={timestamp!r} is not a date/time: {exc}") from None
            when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
            src = out.loc[out["timestamp"] == when]
            if len(src) == 0:
                raise ValueError(
                    f"timestamp={timestamp!r}: no readings at that time; the table spans "
                    f"{out['timestamp'].min()} .. {out['timestamp'].max()}"
                )
        per_sensor = (
            src.groupby("sensor_id", sort=False)
            .agg(
                latitude=("latitude", "mean"),
                longitude=("longitude", "mean"),
                **{v: (v, "mean") for v in ivars},
            )
            .dropna(subset=["latitude", "longitude"])
        )
        glat = np.linspace(per_sensor["latitude"].min(), per_sensor["latitude"].max(), grid_size)
        glon = np.linspace(per_sensor["longitude"].min(), per_sensor["longitude"].max(), grid_size)
        qlat, qlon = np.meshgrid(glat, glon, indexing="ij")
        grid = pd.DataFrame({"latitude": qlat.ravel(), "longitude": qlon.ravel()})
        for v in ivars:
            ok = per_sensor[v].notna()
            if not ok.any():
                grid[v] = np.nan
                continue
            s = per_sensor[ok]
            grid[v] = idw(s["latitude"], s["longitude"], s[v], grid["latitude"], grid["longitude"], power)
        result["grid"] = grid
        summary["grid_shape"] = [grid_size, grid_size]
        summary["grid_note"] = (
            "rows are latitude-major: grid[var].to_numpy().reshape(grid_shape) gives an array whose "
            "row i is latitude grid.latitude[i * n_lon] (ascending) and column j longitude j (ascending)"
        )
        summary["interpolated_variables"] = ivars
        summary["n_sources"] = len(per_sensor)
        summary["parameters"].update({"power": power, "grid_size": grid_size, "timestamp": timestamp})

    summary["duration_s"] = round(_time.perf_counter() - started, 4)
    result["summary"] = summary
    if ctx is not None:
        ctx.metric("n_clusters", summary["n_clusters"])
        ctx.metric("n_noise_sensors", n_noise)
    return result
