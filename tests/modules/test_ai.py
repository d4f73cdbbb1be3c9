"""AI module: forecasts with intervals and backtest, the simple-regression fallback, anomaly detection."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo_infer_ops import action
from geo_infer_ops.data import load_source
from geo_infer_ops.modules import ai
from geo_infer_ops.modules._common import to_geodataframe

CONTRACT = ["sensor_id", "variable", "timestamp", "mean", "lower_80", "upper_80", "lower_95", "upper_95"]
BACKTEST = ["sensor_id", "variable", "mae", "rmse", "mape", "accuracy"]
# stations of the PM10 data that report until the end (2009-12-31)
RECENT = ["DEBB053", "DEBE032", "DEMV017", "DENI063", "DEUB005"]


class FakeContext(SimpleNamespace):
    """The few StepContext members the AI actions use."""

    def __init__(self, table: Any) -> None:
        super().__init__(
            inputs={"load": table},
            ancestors={},
            step="ai",
            metrics={},
            log=logging.LoggerAdapter(logging.getLogger("test"), {}),
        )

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)


@pytest.fixture(scope="module")
def pm10() -> pd.DataFrame:
    df = load_source("sensors")
    return df[df["sensor_id"].isin(RECENT)].reset_index(drop=True)


def check_forecast(result: dict[str, Any], horizon_steps: int) -> None:
    fc = result["forecast"]
    assert list(fc.columns[: len(CONTRACT) + 1]) == [
        "sensor_id",
        "variable",
        "timestamp",
        "step",
        *CONTRACT[3:],
    ]
    assert set(BACKTEST) <= set(result["backtest"].columns)
    assert str(fc["timestamp"].dt.tz) == "UTC"
    assert fc.groupby(["sensor_id", "variable"]).size().eq(horizon_steps).all()
    tol = 1e-9
    assert (fc["lower_95"] <= fc["lower_80"] + tol).all()
    assert (fc["lower_80"] <= fc["mean"] + tol).all()
    assert (fc["mean"] <= fc["upper_80"] + tol).all()
    assert (fc["upper_80"] <= fc["upper_95"] + tol).all()
    acc = result["backtest"]["accuracy"].dropna()
    assert len(acc) and acc.between(0, 1).all()


def test_forecast_real_pm10_contract_and_metrics(pm10: pd.DataFrame) -> None:
    ctx = FakeContext(to_geodataframe(pm10))
    result = ai.predict_environmental_conditions(prediction_horizon=7, confidence_intervals=True, ctx=ctx)
    assert result["model"] == "ets" and result["horizon_days"] == 7
    check_forecast(result, 7)
    fc = result["forecast"]
    assert set(fc["sensor_id"]) == set(RECENT)
    # the forecast starts the day after the last reading
    assert fc["timestamp"].min() == pd.Timestamp("2010-01-01", tz="UTC")
    assert (fc["lower_95"] >= 0).all()  # PM10 is never negative: intervals are clipped at zero
    assert 0 <= ctx.metrics["model_accuracy"] <= 1
    assert ctx.metrics["prediction_latency"] > 0
    assert result["summary"]["frequency"] == "daily"


def test_skipped_series_are_listed_and_intervals_optional() -> None:
    df = load_source("sensors")
    # DEUB034 has 31 days in 2002: stale at the end of the table; DEMV017 reports to the end
    table = df[df["sensor_id"].isin(["DEUB034", "DEMV017"])]
    result = ai.forecast_table(table, prediction_horizon=3, confidence_intervals=False)
    assert result["summary"]["skipped_sensors"] == ["DEUB034"]
    assert "stale" in result["summary"]["skipped"][0]["reason"]
    fc = result["forecast"]
    assert len(fc) == 3 and fc[["lower_80", "upper_80", "lower_95", "upper_95"]].isna().all().all()
    # nothing recent enough at all -> a clear error (the engine then runs the fallback)
    with pytest.raises(ValueError, match="no series could be forecast"):
        ai.forecast_table(table[table["sensor_id"] == "DEMV017"].tail(10), min_observations=14)


def test_co2_known_answer_trend_continues() -> None:
    co2 = load_source("co2")
    result = ai.forecast_table(co2, prediction_horizon=56)  # 8 weeks
    check_forecast(result, 8)
    fc = result["forecast"]
    assert result["summary"]["frequency"] == "weekly"
    # same 8 weeks one year earlier, plus the ~1.4 ppm/year growth of the late 1990s
    start, end = (
        fc["timestamp"].min() - pd.Timedelta(days=364),
        fc["timestamp"].max() - pd.Timedelta(days=364),
    )
    last_year = co2[
        (co2["timestamp"] >= start - pd.Timedelta(days=3)) & (co2["timestamp"] <= end + pd.Timedelta(days=3))
    ]
    expected = last_year["co2"].mean() + 1.4
    assert abs(fc["mean"].mean() - expected) < 1.5
    # the seasonal rise from January to late February is there (~+1.3 ppm in the data)
    assert fc["mean"].iloc[-1] > fc["mean"].iloc[0]
    assert result["backtest"]["accuracy"].iloc[0] > 0.99


def test_sarimax_model_runs(pm10: pd.DataFrame) -> None:
    one = pm10[pm10["sensor_id"] == "DEMV017"]
    result = ai.forecast_table(one, prediction_horizon=5, model="sarimax", history_days=200)
    assert result["model"] == "sarimax"
    check_forecast(result, 5)


@pytest.mark.parametrize("bad", [{"model": "lstm"}, {"prediction_horizon": 0}, {"history_days": -3}])
def test_bad_parameters_name_the_parameter(pm10: pd.DataFrame, bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        ai.forecast_table(pm10, **bad)


# ---------------------------------------------------------------- simple regression (the fallback)


def _table(times: list[str], values: list[float], sensor: str = "S1") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sensor_id": sensor,
            "timestamp": pd.to_datetime(times, utc=True),
            "latitude": 52.0,
            "longitude": 13.0,
            "pm10": np.asarray(values, dtype="float32"),
        }
    )


@pytest.mark.parametrize(
    ("times", "values"),
    [
        (["2020-01-01"], [5.0]),
        (["2020-01-01", "2020-01-02", "2020-01-03"], [1.0, 2.0, 4.0]),
        (["2020-01-01", "2020-01-02", "2020-01-03"], [3.0, 3.0, 3.0]),
        (
            [
                "2020-01-01",
                "2020-01-02",
                "2020-01-03",
                "2020-02-20",
                "2020-02-21",
                "2020-02-22",
                "2020-06-30",
            ],
            [10.0, 12.0, 11.0, 7.0, 9.0, 8.0, 30.0],
        ),
    ],
)
def test_simple_regression_always_succeeds_on_tiny_and_gappy_series(
    times: list[str], values: list[float]
) -> None:
    ctx = FakeContext(_table(times, values))
    # the fallback also accepts the parameters of the step it replaces
    result = ai.use_simple_regression(prediction_horizon=7, confidence_intervals=True, ctx=ctx)
    assert result["model"] == "simple_regression"
    fc = result["forecast"]
    assert len(fc) == 7 and fc["mean"].notna().all()
    assert (fc["lower_95"] <= fc["lower_80"]).all() and (fc["upper_80"] <= fc["upper_95"]).all()
    assert fc["timestamp"].iloc[0] == pd.Timestamp(times[-1], tz="UTC") + pd.Timedelta(days=1)
    assert "prediction_latency" in ctx.metrics


def test_simple_regression_linear_trend_and_seasonal_profile() -> None:
    # exact line: the forecast continues it
    times = pd.date_range("2021-01-01", periods=30, freq="D").strftime("%Y-%m-%d").tolist()
    fc = ai.forecast_table(
        _table(times, [2.0 * i + 1 for i in range(30)]), model="simple_regression", prediction_horizon=3
    )["forecast"]
    np.testing.assert_allclose(fc["mean"], [61.0, 63.0, 65.0], atol=1e-4)
    # hourly data with a daily cycle, two weeks: the hour-of-day profile is used
    hours = pd.date_range("2021-03-01", periods=24 * 14, freq="h", tz="UTC")
    cycle = 10 + 5 * np.sin(2 * np.pi * hours.hour / 24)
    table = _table(hours.strftime("%Y-%m-%d %H:%M").tolist(), cycle)
    result = ai.forecast_table(table, model="simple_regression", prediction_horizon=1)
    assert result["summary"]["frequency"] == "hourly"
    expected = 10 + 5 * np.sin(2 * np.pi * result["forecast"]["timestamp"].dt.hour / 24)
    np.testing.assert_allclose(result["forecast"]["mean"], expected, atol=1e-3)


def test_simple_regression_on_real_weather_all_variables() -> None:
    weather = load_source("weather")
    result = ai.forecast_table(
        weather, model="simple_regression", prediction_horizon=1, variables=["temperature", "pressure"]
    )
    check_forecast(result, 24)
    assert set(result["forecast"]["variable"]) == {"temperature", "pressure"}


# ---------------------------------------------------------------- anomalies


def test_planted_spikes_in_real_pm10_are_the_top_anomalies(pm10: pd.DataFrame) -> None:
    table = pm10[pm10["timestamp"] >= pd.Timestamp("2008-01-01", tz="UTC")].copy()
    rng = np.random.default_rng(7)
    target = table.index[table["sensor_id"] == "DEMV017"]
    planted = rng.choice(target, size=5, replace=False)
    table.loc[planted, "pm10"] = table.loc[planted, "pm10"] + 150
    ctx = FakeContext(to_geodataframe(table))
    result = ai.detect_environmental_anomalies(ctx=ctx)
    anomalies = result["anomalies"]
    assert anomalies.crs.to_epsg() == 4326 and (anomalies.geom_type == "Point").all()
    assert {"sensor_id", "timestamp", "variable", "value", "score", "method", "geometry"} <= set(
        anomalies.columns
    )
    assert anomalies["score"].is_monotonic_decreasing and (anomalies["score"] >= 1 - 1e-9).all()
    found = anomalies[anomalies["sensor_id"] == "DEMV017"].set_index("timestamp")
    planted_times = table.loc[planted, "timestamp"]
    assert set(planted_times) <= set(found.index)
    assert (found.loc[planted_times, "method"] == "both").all()
    # the planted spikes rank at the very top (next to DEMV017's real 269 ug/m3 day, 2009-03-22)
    assert set(planted_times) <= set(anomalies.head(7)["timestamp"])
    assert ctx.metrics["anomaly_count"] == len(anomalies) == result["summary"]["n_anomalies"]
    assert result["summary"]["anomaly_rate"] < 0.05


def test_clean_series_yields_few_anomalies() -> None:
    co2 = load_source("co2")
    result = ai.detect_anomalies_table(co2)
    assert result["summary"]["anomaly_rate"] < 0.02
    no_forest = ai.detect_anomalies_table(co2, use_isolation_forest=False)
    assert no_forest["summary"]["anomaly_rate"] < 0.005  # 7 of 2,225 weeks
    with pytest.raises(ValueError, match="contamination"):
        ai.detect_anomalies_table(co2, contamination=2)


# ---------------------------------------------------------------- through the engine


def test_workflow_with_failing_prediction_uses_simple_regression(settings: Any, pm10: pd.DataFrame) -> None:
    from geo_infer_ops.orchestration import WorkflowOrchestrator

    subset = pm10[pm10["timestamp"] >= pd.Timestamp("2008-06-01", tz="UTC")]

    @action("TESTDATA", "load_pm10")
    def load_pm10() -> Any:
        """Five real PM10 stations."""
        return to_geodataframe(subset.reset_index(drop=True))

    @action("AI", "predict_environmental_conditions", override=True)
    def broken(prediction_horizon: int = 7, confidence_intervals: bool = True, ctx: Any = None) -> Any:
        """Always fails (the fixture restores the real action)."""
        raise RuntimeError("model server unavailable")

    orchestrator = WorkflowOrchestrator(settings=settings)
    workflow = orchestrator.define_workflow(
        {
            "name": "ai_fallback",
            "steps": [
                {"name": "load", "module": "TESTDATA", "action": "load_pm10"},
                {
                    "name": "anomaly_detection",
                    "module": "AI",
                    "action": "detect_environmental_anomalies",
                    "dependencies": ["load"],
                },
                {
                    "name": "forecast",
                    "module": "AI",
                    "action": "predict_conditions",
                    "dependencies": ["load"],
                    "parameters": {"prediction_horizon": 3},
                },
                {
                    "name": "ai_prediction",
                    "module": "AI",
                    "action": "predict_environmental_conditions",
                    "dependencies": ["load"],
                    "parameters": {"prediction_horizon": 7, "confidence_intervals": True},
                },
            ],
            "error_handling": {
                "retry_failed_steps": True,
                "max_retries": 1,
                "base_delay": 0,
                "fallback_actions": {"ai_prediction": "use_simple_regression"},
            },
        }
    )
    result = orchestrator.execute_workflow(workflow)
    assert result["status"] == "succeeded", result
    step = result["steps"]["ai_prediction"]
    assert step["used_fallback"] is True and step["attempts"] >= 2
    out = result["outputs"]["ai_prediction"]
    assert out["model"] == "simple_regression"
    assert (out["forecast"]["model"] == "simple_regression").all() and len(out["forecast"]) == 7 * len(RECENT)
    assert result["outputs"]["forecast"]["model"] == "ets"
    assert len(result["outputs"]["anomaly_detection"]["anomalies"]) > 0
    debug = orchestrator.debug_workflow_execution(result["workflow_id"], debug_level="verbose")
    names = {(m["step"], m["name"]) for m in debug["metrics"]}
    assert {
        ("forecast", "model_accuracy"),
        ("forecast", "prediction_latency"),
        ("anomaly_detection", "anomaly_count"),
        ("ai_prediction", "prediction_latency"),
    } <= names
