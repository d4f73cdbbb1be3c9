"""SPACE and TIME at scale: 1M readings clustered and H3-aggregated; TIME on 1,000 sensors x 1 year hourly.

What is timed (wall clock, ``time.perf_counter``, one warm-up call first so imports are not counted):

1. ``SPACE.analyze_spatial_patterns`` on 1,000 sensors x 1,000 readings = 1,000,000 readings:
   ``clustering`` (DBSCAN on the 1,000 unique sensor locations, labels mapped back to every
   reading), ``h3_aggregate``, ``hotspots`` (Gi*) and ``interpolation`` (IDW, 50 x 50 grid).
2. Side by side, a straightforward scikit-learn DBSCAN on the readings themselves
   (``DBSCAN(metric='haversine', algorithm='ball_tree')`` on every reading's coordinates, same
   eps and min_samples). It needs memory for every neighbour of every reading, which grows with
   the square of the readings per sensor, so it runs on random subsamples of the same 1M readings
   (10k, 25k, 50k, 100k, 200k by default) and stops growing once one size takes longer than
   ``--naive-limit`` seconds; the table shows how it scales.
3. ``TIME.analyze_temporal_trends`` on 1,000 sensors x 8,760 hourly readings (one year): trends only
   (Theil-Sen + Mann-Kendall), and trends + STL (period 24).

The sensor locations are the 70 real German PM10 stations of the bundled ``sensors`` source, each
copied with a jitter of up to ~30 km to make 1,000 sensors; values are synthetic (log-normal PM10
with a regional gradient; hourly temperature-like series with a diurnal cycle, a trend and noise).

Usage::

    .venv/bin/python bench/geospatial_space_time.py            # full run (a few minutes)
    .venv/bin/python bench/geospatial_space_time.py --quick    # 100 sensors, smoke run

Writes ``bench/results/geospatial_space_time.json`` (``--quick``: ``geospatial_space_time.quick.json``)
and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from geo_infer_ops.data import load_source  # noqa: E402
from geo_infer_ops.modules.space import EARTH_RADIUS_KM, analyze_spatial_patterns  # noqa: E402
from geo_infer_ops.modules.time import analyze_temporal_trends  # noqa: E402

EPS_KM = 25.0
MIN_SAMPLES = 3


def sensor_locations(n: int, seed: int = 0) -> pd.DataFrame:
    real = load_source("sensors").groupby("sensor_id")[["latitude", "longitude"]].first().to_numpy()
    rng = np.random.default_rng(seed)
    base = real[rng.integers(0, len(real), n)]
    lat = base[:, 0] + rng.uniform(-0.27, 0.27, n)
    lon = base[:, 1] + rng.uniform(-0.4, 0.4, n)
    return pd.DataFrame({"sensor_id": [f"S{i:04d}" for i in range(n)], "latitude": lat, "longitude": lon})


def space_readings(n_sensors: int, per_sensor: int, seed: int = 1) -> pd.DataFrame:
    loc = sensor_locations(n_sensors)
    rng = np.random.default_rng(seed)
    idx = np.repeat(np.arange(n_sensors), per_sensor)
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    ts = t0 + pd.to_timedelta(np.tile(np.arange(per_sensor), n_sensors), unit="h")
    level = 15 + 0.8 * (loc["longitude"].to_numpy() - 6)  # PM10 rising towards the east
    pm10 = rng.lognormal(np.log(level[idx]), 0.4).astype("float32")
    return pd.DataFrame({
        "sensor_id": loc["sensor_id"].to_numpy()[idx], "timestamp": ts,
        "latitude": loc["latitude"].to_numpy()[idx], "longitude": loc["longitude"].to_numpy()[idx],
        "pm10": pm10,
    })  # fmt: skip


def hourly_readings(n_sensors: int, hours: int, seed: int = 2) -> pd.DataFrame:
    loc = sensor_locations(n_sensors)
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    diurnal = 4 * np.sin(2 * np.pi * (h - 9) / 24)
    annual = 9 * np.sin(2 * np.pi * (h / 24 - 105) / 365.25)
    trend = rng.normal(0.5, 1.0, n_sensors)[:, None] * h[None, :] / 8766
    values = 10 + annual[None, :] + diurnal[None, :] + trend + rng.normal(0, 1.5, (n_sensors, hours))
    idx = np.repeat(np.arange(n_sensors), hours)
    ts = pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(np.tile(h, n_sensors), unit="h")
    return pd.DataFrame({
        "sensor_id": loc["sensor_id"].to_numpy()[idx], "timestamp": ts,
        "latitude": loc["latitude"].to_numpy()[idx], "longitude": loc["longitude"].to_numpy()[idx],
        "temperature": values.ravel().astype("float32"),
    })  # fmt: skip


def timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive_dbscan(df: pd.DataFrame, n: int, seed: int = 3) -> dict[str, Any]:
    """scikit-learn DBSCAN on n random readings (one point per reading), in a child process for memory."""
    import multiprocessing as mp

    sample = df.sample(n=n, random_state=seed)[["latitude", "longitude"]].to_numpy()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()

    def work() -> None:
        from sklearn.cluster import DBSCAN

        start = time.perf_counter()
        labels = DBSCAN(
            eps=EPS_KM / EARTH_RADIUS_KM, min_samples=MIN_SAMPLES, metric="haversine", algorithm="ball_tree"
        ).fit_predict(np.radians(sample))
        seconds = time.perf_counter() - start
        queue.put({"seconds": seconds, "n_clusters": int(labels.max() + 1), "peak_rss_mb": peak_rss_mb()})

    proc = ctx.Process(target=work)
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return {"readings": n, "error": f"exit code {proc.exitcode} (out of memory?)"}
    return {"readings": n, **queue.get()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 sensors: a smoke run")
    ap.add_argument("--naive-sizes", default="10000,25000,50000,100000,200000")
    ap.add_argument(
        "--naive-limit", type=float, default=60.0, help="stop growing the naive DBSCAN after this"
    )
    ap.add_argument("--output", type=Path)
    args = ap.parse_args()

    n_sensors = 100 if args.quick else 1000
    per_sensor = 1000
    hours = 24 * 60 if args.quick else 8760
    out_path = args.output or ROOT / "bench" / "results" / (
        "geospatial_space_time.quick.json" if args.quick else "geospatial_space_time.json"
    )
    results: dict[str, Any] = {
        "benchmark": "geospatial_space_time",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "parameters": {
            "n_sensors": n_sensors,
            "readings_per_sensor": per_sensor,
            "eps_km": EPS_KM,
            "min_samples": MIN_SAMPLES,
            "time_hours": hours,
        },
        "space": {},
        "naive_sklearn_dbscan": [],
        "time": {},
    }
    rows: list[tuple[str, str, str]] = []

    df = space_readings(n_sensors, per_sensor)
    n = len(df)
    print(f"SPACE: {n:,} readings from {n_sensors} sensors", file=sys.stderr)
    analyze_spatial_patterns(data=df.head(5000), eps_km=EPS_KM)  # warm-up: imports
    for kind, extra in [
        ("clustering", {}),
        ("h3_aggregate", {"spatial_resolution": 0.25}),
        ("hotspots", {"spatial_resolution": 0.25}),
        ("interpolation", {}),
    ]:
        seconds, res = timed(
            analyze_spatial_patterns,
            analysis_type=kind,
            eps_km=EPS_KM,
            min_samples=MIN_SAMPLES,
            data=df,
            **extra,
        )
        s = res["summary"]
        entry = {"seconds": round(seconds, 3), "readings": n, "n_clusters": s["n_clusters"],
                 "n_noise_sensors": s["n_noise"]}  # fmt: skip
        note = f"{s['n_clusters']} clusters, {s['n_noise']} noise sensors"
        if "n_hexes" in s:
            entry.update(h3_resolution=s["h3_resolution"], n_hexes=s["n_hexes"])
            note += f"; {s['n_hexes']} hexes at H3 res {s['h3_resolution']}"
        if kind == "hotspots":
            entry.update(n_hot=s["n_hot"], n_cold=s["n_cold"])
            note += f"; {s['n_hot']} hot / {s['n_cold']} cold"
        results["space"][kind] = entry
        rows.append((f"SPACE {kind}", f"{n:,} readings", f"{seconds:8.2f} s  ({note})"))
        print(rows[-1], file=sys.stderr)
        del res

    # the same clustering, but DBSCAN over every reading (subsamples)
    sizes = [int(x) for x in args.naive_sizes.split(",") if x]
    if args.quick:
        sizes = [s for s in sizes if s <= 25000]
    for size in sizes:
        if size > n:
            break
        entry = naive_dbscan(df, size)
        # our approach on exactly the same subsample, for comparison
        sub = df.sample(n=size, random_state=3)
        ours_s, ours = timed(analyze_spatial_patterns, eps_km=EPS_KM, min_samples=MIN_SAMPLES, data=sub)
        entry["ours_seconds_same_sample"] = round(ours_s, 3)
        entry["ours_n_clusters_same_sample"] = ours["summary"]["n_clusters"]
        results["naive_sklearn_dbscan"].append(entry)
        if "error" in entry:
            rows.append(("sklearn DBSCAN per reading", f"{size:,} readings", entry["error"]))
            break
        rows.append((
            "sklearn DBSCAN per reading", f"{size:,} readings",
            f"{entry['seconds']:8.2f} s  ({entry['n_clusters']} clusters, child peak RSS "
            f"{entry['peak_rss_mb']:.0f} MB; ours on the same sample {ours_s:.2f} s, "
            f"{ours['summary']['n_clusters']} clusters)",
        ))  # fmt: skip
        print(rows[-1], file=sys.stderr)
        if entry["seconds"] > args.naive_limit:
            break

    # TIME
    del df
    gc.collect()
    hdf = hourly_readings(n_sensors, hours)
    print(f"TIME: {len(hdf):,} hourly readings from {n_sensors} sensors", file=sys.stderr)
    analyze_temporal_trends(data=hdf[hdf["sensor_id"] == hdf["sensor_id"].iloc[0]])  # warm-up
    for name, kwargs in [
        ("trends_only", {"trend_analysis": True, "seasonal_decomposition": False}),
        ("trends_and_stl", {"trend_analysis": True, "seasonal_decomposition": True}),
    ]:
        seconds, res = timed(analyze_temporal_trends, data=hdf, **kwargs)
        s = res["summary"]
        results["time"][name] = {
            "seconds": round(seconds, 3), "readings": len(hdf), "series": s["n_series"],
            "decomposed": s["n_decomposed"], "period": res["period"], "frequency": res["frequency"],
            "component_rows": len(res["components"]),
            "median_slope_per_year": float(res["trends"]["slope_per_year"].median()),
            "median_seasonal_amplitude": float(res["trends"]["seasonal_amplitude"].median()),
        }  # fmt: skip
        rows.append((
            f"TIME {name}", f"{len(hdf):,} readings",
            f"{seconds:8.2f} s  ({s['n_series']} series, {s['n_decomposed']} STL, "
            f"{1000 * seconds / s['n_series']:.1f} ms/series)",
        ))  # fmt: skip
        print(rows[-1], file=sys.stderr)
        del res
    results["peak_rss_mb"] = round(peak_rss_mb(), 1)

    width = max(len(r[0]) for r in rows)
    width2 = max(len(r[1]) for r in rows)
    print(f"{'what':<{width}}  {'input':<{width2}}  time")
    for a, b, c in rows:
        print(f"{a:<{width}}  {b:<{width2}}  {c}")
    print(f"peak RSS of this process: {results['peak_rss_mb']:.0f} MB")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
