"""AI: forecasts of environmental conditions per sensor, their fallback, and anomaly detection.

Actions (the contract is docs/modules/README.md; methods and parameters: docs/modules/ai.md):

- ``AI.predict_environmental_conditions`` (alias ``AI.predict_conditions``): a forecast per sensor
  and variable ``prediction_horizon`` days ahead with 80 % and 95 % prediction intervals
  (statsmodels ETS by default, SARIMAX on request), and a hold-out backtest reported as the
  ``model_accuracy`` metric.
- ``AI.use_simple_regression``: the spec's fallback, a linear trend plus a mean seasonal profile;
  it always succeeds on valid data, even three readings.
- ``AI.detect_environmental_anomalies``: robust z-scores of STL residuals plus an IsolationForest
  across sensors; one row per anomalous reading with its point geometry.

Heavy libraries are imported inside the functions.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from geo_infer_ops import action

from ._common import find_input, to_geodataframe, variables_of

MODELS = ("ets", "sarimax", "simple_regression")
FORECAST_COLUMNS = (
    "sensor_id",
    "variable",
    "timestamp",
    "step",
    "mean",
    "lower_80",
    "upper_80",
    "lower_95",
    "upper_95",
    "model",
    "latitude",
    "longitude",
)
BACKTEST_COLUMNS = (
    "sensor_id",
    "variable",
    "model",
    "n_train",
    "n_test",
    "mae",
    "rmse",
    "mape",
    "wape",
    "accuracy",
)
ANOMALY_COLUMNS = (
    "sensor_id",
    "timestamp",
    "variable",
    "value",
    "expected",
    "residual",
    "robust_z",
    "score",
    "method",
    "latitude",
    "longitude",
)
Z80 = 1.2815515655446004
Z95 = 1.959963984540054
MAD_TO_Z = 0.6745
MIN_FIT_OBSERVATIONS = 10  # ETS/SARIMAX are not fitted on fewer points than this (backtest training part)


# --------------------------------------------------------------------------- sampling frequency


@dataclass(frozen=True)
class Frequency:
    """The regular sampling step of a sensor table, inferred from its median sampling interval."""

    name: str  # 'hourly', 'daily', 'weekly', 'monthly' or e.g. '10min' / '2D'
    seconds: float  # the step (monthly: 30.44 days, for unit conversions only)
    monthly: bool
    period: int | None  # seasonal period in steps (24 hourly, 7 daily, 52 weekly, 12 monthly)
    bucket: str | None  # seasonal-profile bucket of simple regression: hour, dayofyear, week, month
    default_history_days: float

    def steps(self, days: float) -> int:
        return max(1, math.ceil(days * 86400.0 / self.seconds - 1e-9))


def infer_frequency(table: Any) -> Frequency:
    """Median sampling interval over the sensors, snapped to hourly/daily/weekly/monthly when close."""
    import numpy as np

    medians = []
    for _, ts in table.groupby("sensor_id", sort=False)["timestamp"]:
        values = np.unique(ts.to_numpy(dtype="datetime64[ns]").astype("int64"))
        if len(values) >= 2:
            medians.append(float(np.median(np.diff(values))) / 1e9)
    seconds = float(np.median(medians)) if medians else 86400.0
    day = 86400.0
    if 27 * day <= seconds <= 32 * day:
        return Frequency("monthly", 30.436875 * day, True, 12, "month", 7300.0)
    for name, step, period, bucket, history in (
        ("hourly", 3600.0, 24, "hour", 60.0),
        ("daily", day, 7, "dayofyear", 730.0),
        ("weekly", 7 * day, 52, "week", 3650.0),
    ):
        if abs(seconds - step) <= 0.1 * step:
            return Frequency(name, step, False, period, bucket, history)
    seconds = max(1.0, round(seconds))
    if seconds < day:
        per_day = day / seconds
        period = round(per_day) if abs(per_day - round(per_day)) < 1e-6 and per_day >= 2 else None
        name = f"{int(seconds // 60)}min" if seconds % 60 == 0 else f"{int(seconds)}s"
        return Frequency(name, seconds, False, period, "hour", max(7.0, 1440 * seconds / day))
    return Frequency(f"{seconds / day:g}D", seconds, False, None, None, 730 * seconds / day)


def _positions(ts: Any, origin: Any, freq: Frequency) -> Any:
    """Integer grid positions of UTC timestamps relative to ``origin`` (rounded to the nearest step)."""
    import numpy as np

    if freq.monthly:
        return ((ts.dt.year - origin.year) * 12 + (ts.dt.month - origin.month)).to_numpy(dtype=np.int64)
    delta = (ts - origin).dt.total_seconds().to_numpy()
    return np.rint(delta / freq.seconds).astype(np.int64)


def _timestamps(origin: Any, positions: Any, freq: Frequency) -> Any:
    import numpy as np
    import pandas as pd

    positions = np.asarray(positions, dtype=np.int64)
    if freq.monthly:
        start = pd.Timestamp(year=origin.year, month=origin.month, day=1, tz="UTC")
        return pd.DatetimeIndex([start + pd.DateOffset(months=int(p)) for p in positions])
    return pd.DatetimeIndex(origin + pd.to_timedelta(positions * freq.seconds, unit="s"))


def _buckets(stamps: Any, kind: str | None) -> tuple[Any, int, int]:
    """Seasonal bucket of each timestamp, number of buckets, and the smoothing window in buckets."""
    import numpy as np

    stamps = _as_index(stamps)
    if kind == "hour":
        return stamps.hour.to_numpy(), 24, 1
    if kind == "dayofyear":
        return np.minimum(stamps.dayofyear.to_numpy(), 365) - 1, 365, 15
    if kind == "week":
        return np.minimum(stamps.isocalendar().week.to_numpy(dtype=np.int64), 52) - 1, 52, 1
    if kind == "month":
        return stamps.month.to_numpy() - 1, 12, 1
    return np.zeros(len(stamps), dtype=np.int64), 1, 1


def _as_index(stamps: Any) -> Any:
    import pandas as pd

    return stamps if isinstance(stamps, pd.DatetimeIndex) else pd.DatetimeIndex(stamps)


CYCLE_STEPS = {"hour": 86400.0, "dayofyear": 365.25 * 86400, "week": 364.0 * 86400, "month": 365.25 * 86400}


# --------------------------------------------------------------------------- series extraction


@dataclass
class Series:
    sensor_id: str
    variable: str
    origin: Any  # Timestamp of grid position 0 (the first reading of the window)
    values: Any  # float array on the regular grid, NaN where no reading
    latitude: float
    longitude: float
    nonnegative: bool


def _sensor_table(ctx: Any) -> Any:
    if ctx is None:
        raise ValueError("this action needs the step context (ctx) to find its input sensor table")
    return find_input(ctx)


def _clean(table: Any, variables: list[str] | None) -> tuple[Any, list[str]]:
    import pandas as pd

    missing = [c for c in ("sensor_id", "timestamp", "latitude", "longitude") if c not in table.columns]
    if missing:
        raise ValueError(f"the sensor table lacks the columns {missing}; it has {list(table.columns)}")
    names = variables_of(table, variables)
    if not names:
        raise ValueError(f"the sensor table has no numeric variable column to work on: {list(table.columns)}")
    df = pd.DataFrame(table[["sensor_id", "timestamp", "latitude", "longitude", *names]])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df["sensor_id"] = df["sensor_id"].astype(str)
    df = df.dropna(subset=["timestamp"]).sort_values(["sensor_id", "timestamp"], kind="stable")
    if df[names].notna().to_numpy().sum() == 0:
        raise ValueError(f"the sensor table has no reading of {names}")
    return df, names


def _extract(df: Any, names: list[str], freq: Frequency, history_days: float | None) -> list[Series]:
    """One regular-grid series per sensor and variable: the last ``history_days`` of its readings."""
    import numpy as np

    out = []
    for sensor_id, group in df.groupby("sensor_id", sort=True):
        lat = float(group["latitude"].iloc[-1])
        lon = float(group["longitude"].iloc[-1])
        for var in names:
            sub = group[["timestamp", var]].dropna()
            if sub.empty:
                continue
            if history_days is not None:
                sub = sub[sub["timestamp"] > sub["timestamp"].iloc[-1] - _days(history_days)]
            origin = sub["timestamp"].iloc[0]
            pos = _positions(sub["timestamp"], origin, freq)
            pos -= pos.min()
            vals = sub[var].to_numpy(dtype=float)
            n = int(pos.max()) + 1
            sums = np.bincount(pos, weights=vals, minlength=n)
            counts = np.bincount(pos, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
            out.append(Series(str(sensor_id), var, origin, grid, lat, lon, bool((vals >= 0).all())))
    return out


def _days(days: float) -> Any:
    import pandas as pd

    return pd.Timedelta(days=float(days))


def _fill_short_gaps(values: Any, limit: int) -> Any:
    """Linear interpolation of NaN runs of at most ``limit`` steps; longer gaps stay NaN."""
    import numpy as np

    y = values.copy()
    isnan = np.isnan(y)
    if not isnan.any() or limit <= 0:
        return y
    idx = np.arange(len(y))
    ok = ~isnan
    interp = np.interp(idx, idx[ok], y[ok])
    # run lengths of NaN
    edges = np.diff(np.concatenate(([0], isnan.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for s, e in zip(starts, ends, strict=True):
        if e - s <= limit and s > 0 and e < len(y):
            y[s:e] = interp[s:e]
    return y


# --------------------------------------------------------------------------- models


def _line(t: Any, y: Any) -> tuple[float, float]:
    import numpy as np

    if len(y) >= 2 and np.ptp(t) > 0:
        slope, intercept = np.polyfit(t, y, 1)
        return float(slope), float(intercept)
    return 0.0, float(np.mean(y))


def _profile(buckets: Any, resid: Any, n_buckets: int, window: int) -> Any:
    """Mean residual per bucket, smoothed over ``window`` neighbouring buckets (circular)."""
    import numpy as np

    sums = np.bincount(buckets, weights=resid, minlength=n_buckets)
    counts = np.bincount(buckets, minlength=n_buckets).astype(float)
    if window > 1:
        kernel = np.ones(window)
        pad = window // 2
        sums = np.convolve(np.concatenate((sums[-pad:], sums, sums[:pad])), kernel, "valid")
        counts = np.convolve(np.concatenate((counts[-pad:], counts, counts[:pad])), kernel, "valid")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1e-12), 0.0)


def _simple_fit(t: Any, y: Any, buckets: Any, n_buckets: int, window: int, seasonal: bool) -> dict[str, Any]:
    """OLS line + (smoothed, circular) mean seasonal profile, fitted jointly by backfitting.

    The residual standard deviation is corrected for the degrees of freedom used.
    """
    import numpy as np

    n = len(y)
    slope, intercept = _line(t, y)
    profile = np.zeros(n_buckets)
    k = min(2, n)
    if seasonal and n_buckets > 1:
        used = math.ceil(int((np.bincount(buckets, minlength=n_buckets) > 0).sum()) / window)
        if n - k - used >= 2:
            for _ in range(8):  # backfitting converges to the joint least-squares fit
                profile = _profile(buckets, y - (intercept + slope * t), n_buckets, window)
                profile -= profile[buckets].mean()
                slope, intercept = _line(t, y - profile[buckets])
            k += used
    resid = y - (intercept + slope * t) - profile[buckets]
    dof = n - k
    sigma = float(np.sqrt(np.sum(resid**2) / dof)) if dof > 0 else float(np.std(y))
    return {"slope": slope, "intercept": intercept, "profile": profile, "sigma": sigma}


def _simple_forecast(series: Series, freq: Frequency, h: int, train_end: int) -> tuple[Any, Any]:
    """Fit simple regression on grid positions < train_end; mean and sigma for the next h positions."""
    import numpy as np

    y = series.values[:train_end]
    ok = ~np.isnan(y)
    t = np.flatnonzero(ok).astype(float)
    stamps_all = _timestamps(series.origin, np.arange(train_end + h), freq)
    buckets, n_buckets, window = _buckets(stamps_all, freq.bucket)
    span_seconds = (t[-1] - t[0]) * freq.seconds if len(t) else 0.0
    cycle = CYCLE_STEPS.get(freq.bucket or "", math.inf)
    seasonal = span_seconds >= 2 * cycle - freq.seconds
    fit = _simple_fit(t, y[ok], buckets[:train_end][ok], n_buckets, window, seasonal)
    future = np.arange(train_end, train_end + h, dtype=float)
    mean = fit["intercept"] + fit["slope"] * future + fit["profile"][buckets[train_end:]]
    return mean, np.full(h, fit["sigma"])


def _ets_model(y: Any, period: int | None, seasonal: bool) -> Any:
    import pandas as pd
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel

    use_season = bool(seasonal and period and 2 <= period <= 60 and len(y) >= 2 * period + 10)
    return ETSModel(
        pd.Series(y),
        error="add",
        trend="add",
        damped_trend=True,
        seasonal="add" if use_season else None,
        seasonal_periods=period if use_season else None,
        initialization_method="heuristic",
    )


def _sarimax_model(y: Any, period: int | None, seasonal: bool) -> Any:
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    use_season = bool(seasonal and period and 2 <= period <= 24 and len(y) >= 3 * period)
    return SARIMAX(
        y,
        order=(1, 1, 1),
        seasonal_order=(1, 0, 0, period) if use_season else (0, 0, 0, 0),
        enforce_stationarity=False,
        enforce_invertibility=False,
    )


def _predict(results: Any, kind: str, n: int, h: int) -> tuple[Any, Any, Any, Any, Any]:
    import numpy as np

    if kind == "ets":
        pred = results.get_prediction(start=n, end=n + h - 1)
        mean = np.asarray(pred.predicted_mean, dtype=float)
        lo80, hi80 = (np.asarray(c, dtype=float) for c in np.asarray(pred.pred_int(0.2)).T)
        lo95, hi95 = (np.asarray(c, dtype=float) for c in np.asarray(pred.pred_int(0.05)).T)
        return mean, lo80, hi80, lo95, hi95
    fc = results.get_forecast(h)
    mean = np.asarray(fc.predicted_mean, dtype=float)
    c80, c95 = np.asarray(fc.conf_int(alpha=0.2)), np.asarray(fc.conf_int(alpha=0.05))
    return mean, c80[:, 0], c80[:, 1], c95[:, 0], c95[:, 1]


def _fit_statistical(kind: str, y: Any, h: int, freq: Frequency, seasonal: bool) -> tuple[Any, Any]:
    """Fit on y[:-h] (backtest forecast), re-filter all of y with the same parameters (forecast)."""
    import numpy as np

    make = _ets_model if kind == "ets" else _sarimax_model
    train = y[:-h] if len(y) - h >= MIN_FIT_OBSERVATIONS else y
    model = make(train, freq.period, seasonal)
    res = model.fit(disp=False) if kind == "ets" else model.fit(disp=False, maxiter=50)
    backtest = None
    if train is not y:
        backtest = _predict(res, kind, len(train), h)[0]
        full = make(y, freq.period, seasonal)
        if full.param_names != model.param_names:  # seasonal switched on by the extra points
            res = full.fit(disp=False) if kind == "ets" else full.fit(disp=False, maxiter=50)
        else:
            res = (
                full.smooth(np.asarray(res.params)) if kind == "ets" else full.filter(np.asarray(res.params))
            )
    return backtest, _predict(res, kind, len(y), h)


# --------------------------------------------------------------------------- forecasting


def forecast_table(
    table: Any,
    *,
    prediction_horizon: float = 7,
    confidence_intervals: bool = True,
    model: str = "ets",
    variables: list[str] | None = None,
    history_days: float | None = None,
    max_gap_steps: int = 3,
    min_observations: int = 14,
    max_staleness_days: float | None = None,
    seasonal: bool = True,
) -> dict[str, Any]:
    """Forecast every sensor and variable of a sensor table (the work behind the forecasting actions)."""
    import warnings

    import numpy as np
    import pandas as pd

    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}; got {model!r}")
    if (
        not isinstance(prediction_horizon, int | float)
        or isinstance(prediction_horizon, bool)
        or not (prediction_horizon > 0)
    ):
        raise ValueError(f"prediction_horizon must be a positive number of days; got {prediction_horizon!r}")
    if history_days is not None and not history_days > 0:
        raise ValueError(f"history_days must be a positive number of days or null; got {history_days!r}")
    if max_gap_steps < 0:
        raise ValueError(f"max_gap_steps must be >= 0; got {max_gap_steps!r}")
    if min_observations < 1:
        raise ValueError(f"min_observations must be >= 1; got {min_observations!r}")

    started = time.perf_counter()
    df, names = _clean(table, variables)
    freq = infer_frequency(df)
    h = freq.steps(prediction_horizon)
    history = float(history_days) if history_days is not None else freq.default_history_days
    staleness = float(max_staleness_days) if max_staleness_days is not None else history / 10
    latest = df["timestamp"].max()
    all_series = _extract(df, names, freq, history)

    rows, backtests, skipped, fallback_series = [], [], [], []
    fitted = 0
    for s in all_series:
        last_pos = len(s.values) - 1
        last_time = _timestamps(s.origin, [last_pos], freq)[0]
        if (latest - last_time).total_seconds() > staleness * 86400 + 1e-6:
            skipped.append(
                {
                    "sensor_id": s.sensor_id,
                    "variable": s.variable,
                    "reason": f"stale: last reading {last_time.isoformat()}",
                }
            )
            continue
        if model == "simple_regression":
            y = s.values
            n_obs = int(np.isfinite(y).sum())
        else:
            filled = _fill_short_gaps(s.values, max_gap_steps)
            nan = np.flatnonzero(np.isnan(filled))
            start = int(nan[-1]) + 1 if len(nan) else 0
            y = filled[start:]
            observed = np.isfinite(s.values[start:])
            n_obs = len(y)
            if n_obs < min_observations:
                skipped.append(
                    {
                        "sensor_id": s.sensor_id,
                        "variable": s.variable,
                        "reason": f"too little recent data: {n_obs} consecutive steps "
                        f"(< min_observations={min_observations})",
                    }
                )
                continue
        used = model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                if model == "simple_regression":
                    bt_mean = None
                    n_total = len(y)
                    if int(np.isfinite(y[: n_total - h]).sum()) >= 2 and n_total - h > 0:
                        bt_mean = _simple_forecast(s, freq, h, n_total - h)[0]
                    mean, sigma = _simple_forecast(s, freq, h, n_total)
                    bands = (mean - Z80 * sigma, mean + Z80 * sigma, mean - Z95 * sigma, mean + Z95 * sigma)
                    actual = s.values[n_total - h :] if bt_mean is not None else None
                    origin, offset = s.origin, 0
                else:
                    bt_mean, (mean, *bands) = _fit_statistical(model, y, h, freq, seasonal)
                    if not np.all(np.isfinite(mean)):
                        raise FloatingPointError("non-finite forecast")
                    actual = np.where(observed[-h:], y[-h:], np.nan) if bt_mean is not None else None
                    origin, offset = s.origin, start
            except Exception as exc:
                used = "simple_regression"
                fallback_series.append(
                    {
                        "sensor_id": s.sensor_id,
                        "variable": s.variable,
                        "error": f"{type(exc).__name__}: {exc}"[:200],
                    }
                )
                n_total = len(s.values)
                mean, sigma = _simple_forecast(s, freq, h, n_total)
                bands = (mean - Z80 * sigma, mean + Z80 * sigma, mean - Z95 * sigma, mean + Z95 * sigma)
                bt_mean, actual, origin, offset = None, None, s.origin, 0
                y = s.values
        fitted += 1
        lo80, hi80, lo95, hi95 = (np.asarray(b, dtype=float) for b in bands)
        if s.nonnegative:
            mean, lo80, hi80, lo95, hi95 = (np.maximum(a, 0.0) for a in (mean, lo80, hi80, lo95, hi95))
        # guarantee nesting whatever rounding did
        lo80, hi80 = np.minimum(lo80, mean), np.maximum(hi80, mean)
        lo95, hi95 = np.minimum(lo95, lo80), np.maximum(hi95, hi80)
        if not confidence_intervals:
            lo80 = hi80 = lo95 = hi95 = np.full(h, np.nan)
        stamps = _timestamps(origin, np.arange(offset + len(y), offset + len(y) + h), freq)
        rows.append(
            pd.DataFrame(
                {
                    "sensor_id": s.sensor_id,
                    "variable": s.variable,
                    "timestamp": stamps,
                    "step": np.arange(1, h + 1),
                    "mean": mean,
                    "lower_80": lo80,
                    "upper_80": hi80,
                    "lower_95": lo95,
                    "upper_95": hi95,
                    "model": used,
                    "latitude": s.latitude,
                    "longitude": s.longitude,
                }
            )
        )
        if bt_mean is not None and actual is not None:
            backtests.append(_scores(s, used, len(y) - h, actual, bt_mean))

    if not rows:
        reasons = sorted({r["reason"].split(":")[0] for r in skipped})
        raise ValueError(
            f"no series could be forecast with model={model!r}: all {len(skipped)} were skipped "
            f"({', '.join(reasons)}); "
            "lower min_observations / raise history_days, or use the fallback AI.use_simple_regression"
        )
    elapsed_ms = (time.perf_counter() - started) * 1000.0
    forecast = pd.concat(rows, ignore_index=True)[list(FORECAST_COLUMNS)]
    backtest = pd.DataFrame(backtests, columns=list(BACKTEST_COLUMNS))
    accuracy = float(backtest["accuracy"].mean()) if backtest["accuracy"].notna().any() else float("nan")
    return {
        "forecast": forecast,
        "backtest": backtest,
        "model": model,
        "horizon_days": math.ceil(prediction_horizon),
        "summary": {
            "model": model,
            "frequency": freq.name,
            "seasonal_period": freq.period,
            "horizon_steps": h,
            "history_days": history,
            "series": len(all_series),
            "forecast_series": fitted,
            "skipped": skipped,
            "skipped_sensors": sorted({r["sensor_id"] for r in skipped}),
            "fallback_series": fallback_series,
            "model_accuracy": accuracy,
            "prediction_latency_ms": elapsed_ms / max(fitted, 1),
            "elapsed_s": elapsed_ms / 1000.0,
            "confidence_intervals": bool(confidence_intervals),
        },
    }


def _scores(s: Series, model: str, n_train: int, actual: Any, predicted: Any) -> dict[str, Any]:
    import numpy as np

    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    if s.nonnegative:
        predicted = np.maximum(predicted, 0.0)
    ok = np.isfinite(actual) & np.isfinite(predicted)
    row: dict[str, Any] = {
        "sensor_id": s.sensor_id,
        "variable": s.variable,
        "model": model,
        "n_train": int(n_train),
        "n_test": int(ok.sum()),
    }
    if not ok.any():
        return {**row, "mae": np.nan, "rmse": np.nan, "mape": np.nan, "wape": np.nan, "accuracy": np.nan}
    a, p = actual[ok], predicted[ok]
    err = np.abs(a - p)
    nz = np.abs(a) > 0
    mape = float(np.mean(err[nz] / np.abs(a[nz]))) if nz.any() else np.nan
    denom = float(np.sum(np.abs(a)))
    wape = float(np.sum(err) / denom) if denom > 0 else np.nan
    accuracy = float(min(1.0, max(0.0, 1.0 - wape))) if np.isfinite(wape) else np.nan
    return {
        **row,
        "mae": float(err.mean()),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mape": mape,
        "wape": wape,
        "accuracy": accuracy,
    }


def _report(ctx: Any, result: dict[str, Any]) -> None:
    summary = result["summary"]
    if ctx is None:
        return
    if math.isfinite(summary["model_accuracy"]):
        ctx.metric("model_accuracy", summary["model_accuracy"])
    ctx.metric("prediction_latency", summary["prediction_latency_ms"])
    ctx.log.info(
        "%s forecast of %d series (%s, %d steps ahead), %d skipped, accuracy %.3f, %.1f ms per series",
        result["model"],
        summary["forecast_series"],
        summary["frequency"],
        summary["horizon_steps"],
        len(summary["skipped"]),
        summary["model_accuracy"],
        summary["prediction_latency_ms"],
    )


@action("AI", "predict_conditions")
@action("AI", "predict_environmental_conditions")
def predict_environmental_conditions(
    prediction_horizon: float = 7,
    confidence_intervals: bool = True,
    model: str = "ets",
    variables: list[str] | None = None,
    history_days: float | None = None,
    max_gap_steps: int = 3,
    min_observations: int = 14,
    max_staleness_days: float | None = None,
    seasonal: bool = True,
    ctx: Any = None,
) -> dict[str, Any]:
    """Forecast each sensor and variable `prediction_horizon` days ahead, with 80/95 % intervals and backtest.

    Input: the nearest upstream sensor table. Per sensor and variable the readings are put on the
    table's regular step (median sampling interval: hourly, daily, weekly, monthly), gaps of at most
    ``max_gap_steps`` are interpolated, and the model is fitted on the consecutive readings of the
    last ``history_days`` after the last longer gap (default 60 days hourly, 730 daily, 3650 weekly,
    7300 monthly). Series with fewer than ``min_observations`` such steps, or whose last reading is
    more than ``max_staleness_days`` (default ``history_days / 10``) older than the table's newest,
    are skipped and listed in ``summary["skipped"]``.

    ``model``: ``ets`` (statsmodels ETSModel, additive error, damped additive trend, additive
    seasonality of one day / one week / one year when there are two cycles, analytic intervals),
    ``sarimax`` (SARIMAX(1,1,1), slower) or ``simple_regression``. The backtest holds out the last
    ``prediction_horizon`` days: mae, rmse, mape, wape and accuracy = max(0, 1 - wape).
    Metrics: ``model_accuracy`` (mean backtest accuracy), ``prediction_latency`` (ms per series).
    """
    table = _sensor_table(ctx)
    result = forecast_table(
        table,
        prediction_horizon=prediction_horizon,
        confidence_intervals=confidence_intervals,
        model=model,
        variables=variables,
        history_days=history_days,
        max_gap_steps=max_gap_steps,
        min_observations=min_observations,
        max_staleness_days=max_staleness_days,
        seasonal=seasonal,
    )
    _report(ctx, result)
    return result


@action("AI", "use_simple_regression")
def use_simple_regression(
    prediction_horizon: float = 7,
    confidence_intervals: bool = True,
    variables: list[str] | None = None,
    history_days: float | None = None,
    max_staleness_days: float | None = None,
    ctx: Any = None,
) -> dict[str, Any]:
    """Fallback forecast: OLS linear trend + mean seasonal profile; always succeeds on valid data.

    Same result keys as AI.predict_environmental_conditions with model ``simple_regression``.
    Per sensor and variable, over the last ``history_days``: an OLS line through the readings (a
    constant for one reading), plus the mean residual per hour of day (sub-daily data), day of year
    (daily, smoothed over 15 days), ISO week (weekly) or month (monthly) when the readings span two
    cycles. Intervals: normal approximation with the residual standard deviation (degrees of freedom
    corrected). Gaps need no filling; no minimum length. Accepts the parameters of the step it replaces.
    """
    table = _sensor_table(ctx)
    result = forecast_table(
        table,
        prediction_horizon=prediction_horizon,
        confidence_intervals=confidence_intervals,
        model="simple_regression",
        variables=variables,
        history_days=history_days,
        max_staleness_days=max_staleness_days,
    )
    _report(ctx, result)
    return result


# --------------------------------------------------------------------------- anomalies


def _robust_z(resid: Any) -> Any:
    import numpy as np

    med = np.nanmedian(resid)
    mad = np.nanmedian(np.abs(resid - med))
    if not mad > 0:  # half the residuals equal (zero-inflated, e.g. precipitation): z is undefined
        return np.zeros_like(resid)
    return MAD_TO_Z * (resid - med) / mad


def _log_scale(values: Any) -> bool:
    """Concentration-like data (non-negative, right-skewed) are decomposed on the log1p scale."""
    import numpy as np

    v = values[np.isfinite(values)]
    if len(v) < 3 or v.min() < 0 or not v.std() > 0:
        return False
    skew = float(np.mean(((v - v.mean()) / v.std()) ** 3))
    return skew > 1.0


def _stl_jumps(period: int, seasonal: int = 7) -> dict[str, int]:
    """R's stl() defaults: evaluate each loess every ceil(window / 10) points and interpolate (faster)."""

    def odd(x: float) -> int:
        n = math.ceil(x)
        return n if n % 2 else n + 1

    trend = odd(1.5 * period / (1 - 1.5 / seasonal))
    low_pass = odd(period + 1)
    return {
        "seasonal_jump": math.ceil(seasonal / 10),
        "trend_jump": math.ceil(trend / 10),
        "low_pass_jump": math.ceil(low_pass / 10),
    }


def _residuals(values: Any, period: int | None, robust: bool) -> tuple[Any, Any]:
    """(residual, expected) at the readings: STL on a regular grid with interpolated gaps.

    Series too short for STL: deviation from a centred rolling median. Right-skewed non-negative
    series are decomposed on the log1p scale; ``expected`` is always in the data's units.
    """
    import numpy as np
    import pandas as pd
    from statsmodels.tsa.seasonal import STL

    ok = np.isfinite(values)
    log = _log_scale(values)
    x = np.log1p(values) if log else values
    if period is not None and period >= 2 and ok.sum() >= 2 * period + 1 and len(x) >= 2 * period + 1:
        idx = np.arange(len(x))
        filled = np.interp(idx, idx[ok], x[ok])
        res = STL(filled, period=period, robust=robust, **_stl_jumps(period)).fit()
        resid = res.resid
    elif ok.sum() >= 5:
        window = max(3, min(int(ok.sum()) // 2 * 2 + 1, 2 * (period or 3) + 1))
        trend = pd.Series(x).rolling(window, center=True, min_periods=1).median().to_numpy()
        resid = x - trend
    else:
        resid = x - np.nanmedian(x)
    fitted = x - resid
    expected = np.expm1(fitted) if log else fitted
    return np.where(ok, resid, np.nan), np.where(ok, expected, np.nan)


def detect_anomalies_table(
    table: Any,
    *,
    z_threshold: float = 3.5,
    contamination: float | str = 0.01,
    variables: list[str] | None = None,
    period: int | None = None,
    use_isolation_forest: bool = True,
    robust: bool = False,
) -> dict[str, Any]:
    """Anomalous readings of a sensor table (the work behind AI.detect_environmental_anomalies)."""
    import warnings

    import numpy as np
    import pandas as pd

    if not (isinstance(z_threshold, int | float) and z_threshold > 0):
        raise ValueError(f"z_threshold must be a positive number; got {z_threshold!r}")
    if contamination != "auto" and not (
        isinstance(contamination, int | float)
        and not isinstance(contamination, bool)
        and 0 < contamination <= 0.5
    ):
        raise ValueError(f"contamination must be 'auto' or a number in (0, 0.5]; got {contamination!r}")
    if period is not None and period < 2:
        raise ValueError(f"period must be >= 2 steps or null (inferred); got {period!r}")

    started = time.perf_counter()
    df, names = _clean(table, variables)
    freq = infer_frequency(df)
    stl_period = period if period is not None else freq.period
    series = _extract(df, names, freq, None)

    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for s in series:
            ok = np.flatnonzero(np.isfinite(s.values))
            resid, expected = _residuals(s.values, stl_period, robust)
            z = _robust_z(resid)
            parts.append(
                pd.DataFrame(
                    {
                        "sensor_id": s.sensor_id,
                        "variable": s.variable,
                        "pos": ok,
                        "timestamp": _timestamps(s.origin, ok, freq),
                        "value": s.values[ok],
                        "expected": expected[ok],
                        "robust_z": z[ok],
                        "latitude": s.latitude,
                        "longitude": s.longitude,
                    }
                )
            )
    readings = pd.concat(parts, ignore_index=True)
    readings["residual"] = readings["value"] - readings["expected"]
    readings["z_flag"] = np.abs(readings["robust_z"]) > z_threshold
    readings["z_norm"] = np.abs(readings["robust_z"]) / z_threshold
    readings["if_flag"] = False
    readings["if_norm"] = 0.0

    if_used = False
    if use_isolation_forest:
        from sklearn.ensemble import IsolationForest

        for _var, idx in readings.groupby("variable").groups.items():
            sub = readings.loc[idx]
            if len(sub) < 50:
                continue
            network = sub.groupby("timestamp")["value"].transform("median")
            features = np.column_stack([sub["value"], sub["residual"], sub["value"] - network])
            features = np.nan_to_num(features)
            forest = IsolationForest(n_estimators=100, contamination=contamination, random_state=0)
            forest.fit(features)
            raw = -forest.score_samples(features)  # 0..1, higher = more isolated
            threshold = -forest.offset_
            readings.loc[idx, "if_flag"] = raw > threshold
            readings.loc[idx, "if_norm"] = raw / threshold if threshold > 0 else raw
            if_used = True

    flagged = readings[readings["z_flag"] | readings["if_flag"]].copy()
    flagged["method"] = np.select(
        [flagged["z_flag"] & flagged["if_flag"], flagged["z_flag"]], ["both", "robust_z"], "isolation_forest"
    )
    flagged["score"] = np.maximum(flagged["z_norm"], flagged["if_norm"])
    flagged = flagged.sort_values(["score", "sensor_id", "timestamp"], ascending=[False, True, True])
    flagged = flagged[list(ANOMALY_COLUMNS)].reset_index(drop=True)
    anomalies = to_geodataframe(flagged)
    counts = flagged["method"].value_counts()
    summary = {
        "n_readings": len(readings),
        "n_series": len(series),
        "n_anomalies": len(flagged),
        "anomaly_rate": float(len(flagged) / max(len(readings), 1)),
        "by_method": {m: int(counts.get(m, 0)) for m in ("robust_z", "isolation_forest", "both")},
        "by_variable": {str(k): int(v) for k, v in flagged["variable"].value_counts().items()},
        "by_sensor": {str(k): int(v) for k, v in flagged["sensor_id"].value_counts().head(20).items()},
        "frequency": freq.name,
        "stl_period": stl_period,
        "z_threshold": float(z_threshold),
        "contamination": contamination,
        "isolation_forest": if_used,
        "robust_stl": bool(robust),
        "elapsed_s": time.perf_counter() - started,
    }
    return {"anomalies": anomalies, "summary": summary}


@action("AI", "detect_environmental_anomalies")
def detect_environmental_anomalies(
    z_threshold: float = 3.5,
    contamination: float | str = 0.01,
    variables: list[str] | None = None,
    period: int | None = None,
    use_isolation_forest: bool = True,
    robust: bool = False,
    ctx: Any = None,
) -> dict[str, Any]:
    """Flag anomalous readings: robust z-score of STL residuals plus an IsolationForest across sensors.

    Per sensor and variable, on the table's regular step: STL residuals (``period`` steps, default 24
    hourly / 7 daily / 52 weekly / 12 monthly; on the log1p scale for non-negative right-skewed
    variables such as PM10; ``robust`` switches on STL's robust loop, which for heavy-tailed data
    flags far more) -> robust z = 0.6745 (r - median) / MAD, flagged when |z| > ``z_threshold``
    (no z when MAD = 0, e.g. precipitation). Per variable across all sensors: an IsolationForest
    (``contamination``, random_state 0) on (value, residual, deviation from the network median at
    the same time). ``score`` = max(|z| / z_threshold, forest score / forest threshold), >= 1 for every
    flagged reading; ``method`` is robust_z, isolation_forest or both. Result: ``anomalies``
    (GeoDataFrame, points EPSG:4326, highest score first) and ``summary``; metric ``anomaly_count``.
    """
    table = _sensor_table(ctx)
    result = detect_anomalies_table(
        table,
        z_threshold=z_threshold,
        contamination=contamination,
        variables=variables,
        period=period,
        use_isolation_forest=use_isolation_forest,
        robust=robust,
    )
    ctx.metric("anomaly_count", result["summary"]["n_anomalies"])
    ctx.log.info(
        "%d anomalies in %d readings (%s)",
        result["summary"]["n_anomalies"],
        result["summary"]["n_readings"],
        result["summary"]["by_method"],
    )
    return result


predict_conditions = predict_environmental_conditions  # the spec uses both names for one action
