"""TIME: Theil-Sen / Mann-Kendall trends and STL decomposition, on real data with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from geo_infer_ops import action
from geo_infer_ops.data import load_source
from geo_infer_ops.modules.registry import registry
from geo_infer_ops.modules.time import (
    analyze_temporal_trends,
    fill_small_gaps,
    infer_frequency,
    longest_run,
    mann_kendall_p,
    theil_sen,
)
from geo_infer_ops.orchestration import WorkflowOrchestrator

TREND_COLUMNS = ["sensor_id", "variable", "slope_per_year", "p_value", "seasonal_amplitude", "residual_std"]


@pytest.fixture(scope="module")
def co2_result() -> dict:
    return analyze_temporal_trends(data=load_source("co2"))


def test_mauna_loa_co2_trend_and_seasonal_cycle(co2_result: dict) -> None:
    trends = co2_result["trends"]
    assert list(trends.columns[:6]) == TREND_COLUMNS and "n_obs" in trends.columns
    row = trends.iloc[0]
    assert row["sensor_id"] == "MLO" and row["variable"] == "co2"
    assert 1.30 <= row["slope_per_year"] <= 1.38  # ppm/year, 1958-2001
    assert row["p_value"] < 1e-10 and row["trend_direction"] == "increasing"
    assert 5.8 <= row["seasonal_amplitude"] <= 7.0  # ppm peak-to-peak of the mean annual cycle
    assert 0 < row["residual_std"] < 1.0
    assert co2_result["frequency"] == "7D" and co2_result["period"] == 52
    assert co2_result["frequency_name"] == "weekly"


def test_co2_slope_matches_scipy_theilslopes(co2_result: dict) -> None:
    co2 = load_source("co2")
    t = co2["timestamp"].astype("int64").to_numpy() / 1e9 / (365.25 * 86400)
    exact = stats.theilslopes(co2["co2"].to_numpy(), t)[0]
    # the action samples pairs above 1e6 pairs (2225 weekly values = 2.5e6 pairs)
    assert co2_result["trends"].iloc[0]["slope_per_year"] == pytest.approx(exact, abs=0.005)


def test_co2_components_add_up(co2_result: dict) -> None:
    comp = co2_result["components"]
    assert list(comp.columns[:7]) == [
        "sensor_id", "variable", "timestamp", "observed", "trend", "seasonal", "resid",
    ]  # fmt: skip
    np.testing.assert_allclose(comp["trend"] + comp["seasonal"] + comp["resid"], comp["observed"], atol=1e-9)
    assert comp["timestamp"].is_monotonic_increasing
    assert (comp["timestamp"].diff().dropna() == pd.Timedelta(days=7)).all()
    # the seasonal cycle peaks in spring (May) and bottoms out in autumn (Sep/Oct), as at Mauna Loa
    by_month = comp.groupby(comp["timestamp"].dt.month)["seasonal"].mean()
    assert by_month.idxmax() in (4, 5, 6) and by_month.idxmin() in (9, 10)


def test_theil_sen_exact_equals_scipy_and_sampled_is_close() -> None:
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 10, 300))
    y = 0.7 * x + rng.standard_t(2, 300)
    assert theil_sen(x, y) == pytest.approx(stats.theilslopes(y, x)[0], rel=1e-12)
    x2 = np.arange(3000) / 365.0
    y2 = 1.5 * x2 + rng.normal(0, 3, 3000)
    assert theil_sen(x2, y2) == pytest.approx(stats.theilslopes(y2, x2)[0], abs=0.02)


def mann_kendall_reference(y: np.ndarray) -> float:
    """Textbook Mann-Kendall: S, tie-corrected variance, normal approximation, no continuity correction."""
    n = len(y)
    s = sum(np.sign(y[j] - y[i]) for i in range(n - 1) for j in range(i + 1, n))
    _, t = np.unique(y, return_counts=True)
    var = (n * (n - 1) * (2 * n + 5) - np.sum(t * (t - 1) * (2 * t + 5))) / 18
    z = s / np.sqrt(var)
    return float(2 * stats.norm.sf(abs(z)))


def test_mann_kendall_with_ties_matches_textbook_formula() -> None:
    rng = np.random.default_rng(2)
    y = np.round(rng.normal(0, 1, 80) + np.linspace(0, 0.8, 80), 1)  # many ties
    assert len(np.unique(y)) < 60
    x = np.arange(80.0)
    assert mann_kendall_p(x, y) == pytest.approx(mann_kendall_reference(y), rel=1e-6)


def test_frequencies_of_the_bundled_sources() -> None:
    assert infer_frequency(3600) == "hourly" and infer_frequency(86400) == "daily"
    assert infer_frequency(7 * 86400) == "weekly" and infer_frequency(30.4 * 86400) == "monthly"
    weather = analyze_temporal_trends(data=load_source("weather"), variables=["temperature"])
    assert weather["frequency"] == "h" and weather["period"] == 24
    t = weather["trends"].set_index("sensor_id")
    assert set(t.index) == {"EWR", "JFK", "LGA"}
    # the mean diurnal temperature cycle of a New York airport: a few degrees C peak-to-peak
    assert t["seasonal_amplitude"].between(3, 12).all()
    ozone = analyze_temporal_trends(
        data=load_source("satellite"), max_sensors=5, seasonal_decomposition=False
    )
    assert ozone["frequency"] == "MS" and ozone["period"] == 12 and len(ozone["trends"]) == 5
    assert ozone["trends"]["seasonal_amplitude"].isna().all() and ozone["components"].empty


def test_pm10_network_daily() -> None:
    res = analyze_temporal_trends(
        trend_analysis=True, seasonal_decomposition=True, data=load_source("sensors")
    )
    trends = res["trends"]
    assert res["frequency"] == "D" and res["period"] == 365
    assert len(trends) == 70 and trends["sensor_id"].is_unique
    assert trends["slope_per_year"].notna().all()
    short = trends[trends["stl_steps"] == 0]
    assert len(short) > 0 and short["seasonal_amplitude"].isna().all()  # < 2 years without long gaps
    long = trends[trends["stl_steps"] > 0]
    assert (long["stl_steps"] >= 730).all() and long["seasonal_amplitude"].gt(0).all()
    assert res["summary"]["n_decomposed"] == len(long)
    assert set(res["components"]["sensor_id"].unique()) == set(long["sensor_id"])


def test_planted_trend_and_season_are_recovered_and_gaps_are_not_used_for_the_trend() -> None:
    rng = np.random.default_rng(7)
    days = pd.date_range("2010-01-01", periods=4 * 365, freq="D", tz="UTC")
    t = np.arange(len(days)) / 365.25
    y = (
        50
        + 2.0 * t
        + 5 * np.sin(2 * np.pi * days.day_of_year.to_numpy() / 365.25)
        + rng.normal(0, 1, len(days))
    )
    keep = np.ones(len(days), bool)
    keep[100:110] = False  # a 10-day gap: filled for STL only
    keep[900:960] = False  # a 60-day gap: too long to fill, STL uses the longest stretch
    df = pd.DataFrame(
        {
            "sensor_id": "A",
            "timestamp": days[keep],
            "latitude": 50.0,
            "longitude": 8.0,
            "x": y[keep],
        }
    )
    res = analyze_temporal_trends(data=df)
    row = res["trends"].iloc[0]
    assert row["n_obs"] == keep.sum()
    assert row["slope_per_year"] == pytest.approx(2.0, abs=0.5)
    # the trend uses the observed days only: the same pairs as theil_sen on them
    assert row["slope_per_year"] == pytest.approx(theil_sen(t[keep], y[keep]), abs=1e-6)
    assert row["seasonal_amplitude"] == pytest.approx(10.0, rel=0.15)
    assert row["stl_steps"] == 900  # days 0..899, the 10-day gap filled
    comp = res["components"]
    assert comp["filled"].sum() == 10 and len(comp) == 900


def test_gap_helpers() -> None:
    a = np.array([1.0, np.nan, 3.0, np.nan, np.nan, np.nan, 7.0, np.nan])
    filled, was = fill_small_gaps(a, 2)
    assert filled[1] == 2.0 and np.isnan(filled[3:6]).all() and np.isnan(filled[7])
    assert was.tolist() == [False, True, False, False, False, False, False, False]
    assert longest_run(~np.isnan(filled)) == (0, 3)


def test_short_series_get_trend_only() -> None:
    days = pd.date_range("2020-01-01", periods=100, freq="D", tz="UTC")
    df = pd.DataFrame({"sensor_id": "S", "timestamp": days, "latitude": 1.0, "longitude": 2.0,
                       "v": np.arange(100.0)})  # fmt: skip
    res = analyze_temporal_trends(data=df)
    row = res["trends"].iloc[0]
    assert row["slope_per_year"] == pytest.approx(365.25) and np.isnan(row["seasonal_amplitude"])
    assert res["summary"]["n_too_short_for_stl"] == 1
    # an explicit period makes it long enough
    weekly = analyze_temporal_trends(data=df, period=7)
    assert weekly["trends"].iloc[0]["stl_steps"] == 100 and weekly["period"] == 7


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"period": 1}, "period"),
        ({"frequency": "fortnightly"}, "frequency"),
        ({"max_sensors": 0}, "max_sensors"),
        ({"max_gap": -1}, "max_gap"),
        ({"alpha": 0}, "alpha"),
        ({"variables": ["nope"]}, "variables"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        analyze_temporal_trends(data=load_source("co2"), **kwargs)


def test_spec_workflow_step_through_the_engine(settings) -> None:
    @action("TESTTIME", "load_pm10")
    def load_pm10():
        from geo_infer_ops.modules._common import to_geodataframe

        return to_geodataframe(load_source("sensors"))

    assert registry.get("TIME", "temporal_analysis").func is analyze_temporal_trends
    orchestrator = WorkflowOrchestrator(settings=settings)
    wf = orchestrator.define_workflow({
        "name": "time_on_pm10",
        "steps": [
            {"name": "data_ingestion", "module": "TESTTIME", "action": "load_pm10"},
            {
                "name": "temporal_analysis", "module": "TIME", "action": "analyze_temporal_trends",
                "dependencies": ["data_ingestion"],
                "parameters": {"trend_analysis": True, "seasonal_decomposition": True},
            },
        ],
    })  # fmt: skip
    result = orchestrator.execute_workflow(wf)
    assert result["status"] == "succeeded", result["steps"]
    out = result["outputs"]["temporal_analysis"]
    assert len(out["trends"]) == 70 and out["period"] == 365 and out["frequency"] == "D"
    assert {"sensor_id", "variable", "timestamp", "observed", "trend", "seasonal", "resid"} <= set(
        out["components"].columns
    )


def test_mixed_sources_are_analysed_each_at_its_own_step() -> None:
    pm10 = load_source("sensors")
    pm10 = pm10[pm10["sensor_id"].isin(["DEBB053", "DEBE032"])]
    weather = load_source("weather")[["sensor_id", "timestamp", "latitude", "longitude", "temperature"]]
    mixed = pd.concat([pm10, weather], ignore_index=True)
    res = analyze_temporal_trends(data=mixed)
    trends = res["trends"].set_index(["sensor_id", "variable"])
    assert len(trends) == 5  # no rows for variables a sensor does not measure
    assert trends.loc[("DEBB053", "pm10"), "frequency"] == "D"
    assert trends.loc[("JFK", "temperature"), "frequency"] == "h"
    assert trends.loc[("JFK", "temperature"), "period"] == 24
    assert set(res["summary"]["frequencies"]) == {"daily", "hourly"}
    assert res["frequency"] == "h"  # three hourly sensors vs two daily ones
