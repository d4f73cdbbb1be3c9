"""AI actions over 1,000 sensors x 1 year hourly: forecast (ETS, simple regression) and anomalies.

The data are synthetic but shaped like real hourly temperature: per sensor an offset, an annual
and a daily cycle, AR(1) weather noise (phi 0.95), 2 % of readings missing at random, and 50
planted +15 degree spikes (to report the anomaly detector's recall). One variable, 8,760 readings
per sensor, 8.76 million readings in all.

What is timed (wall clock, this machine, one process; the actions themselves are single-threaded):

1. ``model="ets"`` (the default of AI.predict_environmental_conditions) on ``--ets-sensors``
   sensors (default 50): per-series cost, extrapolated to all sensors. Fitting 1,000 ETS models
   takes minutes, so it is measured on a sample unless ``--ets-sensors`` is raised.
2. ``model="simple_regression"`` (AI.use_simple_regression) on all sensors.
3. ``detect_anomalies_table`` (AI.detect_environmental_anomalies) on all sensors.

Usage::

    python bench/geospatial_ai.py [--quick] [--sensors N] [--ets-sensors N] [--output PATH]

Results: ``bench/results/geospatial_ai.json`` (``--quick``: ``geospatial_ai.quick.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "src"))

from geo_infer_ops.modules.ai import detect_anomalies_table, forecast_table  # noqa: E402


def synthetic_sensors(n_sensors: int, hours: int = 8760, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly temperature-like sensor table for ``n_sensors`` over ``hours``, and the planted spikes."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2023-01-01", periods=hours, freq="h", tz="UTC")
    t = np.arange(hours)
    annual = -10 * np.cos(2 * np.pi * t / 8760)
    daily = -4 * np.cos(2 * np.pi * (t % 24) / 24)
    lat = rng.uniform(47.0, 55.0, n_sensors)
    lon = rng.uniform(6.0, 15.0, n_sensors)
    frames = []
    for i in range(n_sensors):
        noise = np.empty(hours)
        eps = rng.normal(0, 0.6, hours)
        noise[0] = eps[0]
        for k in range(1, hours):  # AR(1)
            noise[k] = 0.95 * noise[k - 1] + eps[k]
        values = 10 + rng.normal(0, 2) + annual + daily * rng.uniform(0.7, 1.3) + noise
        values[rng.random(hours) < 0.02] = np.nan
        frames.append(
            pd.DataFrame(
                {
                    "sensor_id": f"S{i:04d}",
                    "timestamp": times,
                    "latitude": lat[i],
                    "longitude": lon[i],
                    "temperature": values.astype("float32"),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True).dropna(subset=["temperature"]).reset_index(drop=True)
    spikes = rng.choice(len(table), size=min(50, len(table) // 100), replace=False)
    table.loc[spikes, "temperature"] += 15
    return table, table.loc[spikes, ["sensor_id", "timestamp"]]


def timed(fn: Any, *args: Any, **kw: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 sensors, 10 ETS series")
    parser.add_argument("--sensors", type=int, default=None, help="sensors (default 1000; quick 100)")
    parser.add_argument(
        "--ets-sensors", type=int, default=None, help="sensors for ETS (default 50; quick 10)"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.sensors or (100 if args.quick else 1000)
    n_ets = min(n, args.ets_sensors or (10 if args.quick else 50))
    output = args.output or ROOT / "results" / (
        "geospatial_ai.quick.json" if args.quick else "geospatial_ai.json"
    )

    (table, spikes), gen_s = timed(synthetic_sensors, n)
    print(f"data: {n} sensors, {len(table):,} hourly readings ({gen_s:.1f} s to generate)", flush=True)
    ets_ids = sorted(table["sensor_id"].unique())[:n_ets]
    sample = table[table["sensor_id"].isin(ets_ids)]

    results: dict[str, Any] = {}
    ets, ets_s = timed(forecast_table, sample, prediction_horizon=7, model="ets")
    per_series = ets_s / ets["summary"]["forecast_series"]
    results["ets"] = {
        "series": ets["summary"]["forecast_series"],
        "wall_s": round(ets_s, 2),
        "ms_per_series": round(per_series * 1000, 1),
        f"extrapolated_{n}_series_s": round(per_series * n, 1),
        "model_accuracy": round(ets["summary"]["model_accuracy"], 4),
        "mean_mae": round(float(ets["backtest"]["mae"].mean()), 3),
        "history_days": ets["summary"]["history_days"],
        "horizon_steps": ets["summary"]["horizon_steps"],
        "seasonal_period": ets["summary"]["seasonal_period"],
    }
    print("ets:", results["ets"], flush=True)

    simple, simple_s = timed(forecast_table, table, prediction_horizon=7, model="simple_regression")
    results["simple_regression"] = {
        "series": simple["summary"]["forecast_series"],
        "wall_s": round(simple_s, 2),
        "ms_per_series": round(simple_s / simple["summary"]["forecast_series"] * 1000, 2),
        "model_accuracy": round(simple["summary"]["model_accuracy"], 4),
        "mean_mae": round(float(simple["backtest"]["mae"].mean()), 3),
    }
    print("simple_regression:", results["simple_regression"], flush=True)

    anomalies, anomaly_s = timed(detect_anomalies_table, table)
    found = anomalies["anomalies"].merge(spikes, on=["sensor_id", "timestamp"])
    summary = anomalies["summary"]
    results["anomalies"] = {
        "readings": summary["n_readings"],
        "series": summary["n_series"],
        "wall_s": round(anomaly_s, 2),
        "us_per_reading": round(anomaly_s / summary["n_readings"] * 1e6, 3),
        "anomalies": summary["n_anomalies"],
        "by_method": summary["by_method"],
        "planted_spikes": len(spikes),
        "planted_found": len(found),
    }
    print("anomalies:", results["anomalies"], flush=True)

    report = {
        "benchmark": "geospatial_ai",
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "data": {"sensors": n, "readings": len(table), "frequency": "hourly", "hours": 8760},
        "results": results,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
