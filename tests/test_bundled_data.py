"""The real measurement data bundled in geo_infer_ops.data: contract, counts, known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geo_infer_ops.data import DATA_DIR, UnknownSourceError, list_sources, load_source

CONTRACT = ["sensor_id", "timestamp", "latitude", "longitude"]

# What README.md documents for each source: variables, rows, sensors, first and last timestamp (UTC).
EXPECTED = {
    "sensors": (["pm10"], 149_151, 70, "1998-01-01", "2009-12-31"),
    "satellite": (["ozone"], 41_472, 576, "1995-01-01", "2000-12-01"),
    "weather": (
        ["temperature", "humidity", "wind_speed", "precip", "pressure", "visib"],
        26_115,
        3,
        "2013-01-01 06:00",
        "2013-12-30 23:00",
    ),
    "co2": (["co2"], 2_225, 1, "1958-03-29", "2001-12-29"),
}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return {name: load_source(name) for name in EXPECTED}


def test_list_sources_names_the_bundled_files() -> None:
    sources = list_sources()
    assert set(sources) == set(EXPECTED)
    for name, path in sources.items():
        assert path.parent == DATA_DIR
        assert path.name == f"{name}.parquet"
        assert path.is_file()
    assert (DATA_DIR / "README.md").is_file()


def test_bundle_is_small() -> None:
    total = sum(path.stat().st_size for path in list_sources().values())
    assert total < 5 * 1024 * 1024


def test_unknown_source_names_the_available_ones() -> None:
    with pytest.raises(UnknownSourceError) as info:
        load_source("no-such-source")
    message = str(info.value)
    assert "no-such-source" in message
    for name in EXPECTED:
        assert name in message
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sensor_table_contract(frames: dict[str, pd.DataFrame], name: str) -> None:
    df = frames[name]
    variables, rows, sensors, first, last = EXPECTED[name]
    assert list(df.columns) == CONTRACT + variables
    assert pd.api.types.is_string_dtype(df["sensor_id"])
    assert df["sensor_id"].notna().all()
    assert isinstance(df["timestamp"].dtype, pd.DatetimeTZDtype)
    assert df["timestamp"].dtype == "datetime64[ns, UTC]"
    assert df["latitude"].dtype == "float64"
    assert df["longitude"].dtype == "float64"
    assert df["latitude"].between(-90, 90).all()
    assert df["longitude"].between(-180, 180).all()
    for column in variables:
        assert pd.api.types.is_float_dtype(df[column]), column
    assert len(df) == rows
    assert df["sensor_id"].nunique() == sensors
    assert df["timestamp"].min() == pd.Timestamp(first, tz="UTC")
    assert df["timestamp"].max() == pd.Timestamp(last, tz="UTC")
    assert not df.duplicated(["sensor_id", "timestamp"]).any()
    # Each sensor sits at one place.
    assert (df.groupby("sensor_id")[["latitude", "longitude"]].nunique() == 1).all().all()


def test_pm10_stations_are_in_germany(frames: dict[str, pd.DataFrame]) -> None:
    df = frames["sensors"]
    stations = df.groupby("sensor_id")[["latitude", "longitude"]].first()
    assert len(stations) == 70
    assert stations.index.str.match(r"^DE[A-Z]{2}\d{3}$").all()
    # Germany's bounding box: 47.27-55.06 N, 5.87-15.04 E.
    assert stations["latitude"].between(47.2, 55.1).all()
    assert stations["longitude"].between(5.8, 15.1).all()
    assert df["pm10"].notna().all()
    assert (df["pm10"] >= 0).all()
    assert 10 < df["pm10"].median() < 25  # rural background PM10, ug/m3
    # Daily values at midnight UTC.
    assert (df["timestamp"].dt.normalize() == df["timestamp"]).all()


def test_ozone_grid_is_24_by_24_by_72(frames: dict[str, pd.DataFrame]) -> None:
    df = frames["satellite"]
    assert df["latitude"].nunique() == 24
    assert df["longitude"].nunique() == 24
    assert df["timestamp"].nunique() == 72
    assert df["latitude"].min() == pytest.approx(-21.2)
    assert df["latitude"].max() == pytest.approx(36.2)
    assert df["longitude"].min() == pytest.approx(-113.8)
    assert df["longitude"].max() == pytest.approx(-56.2)
    assert (df["timestamp"].dt.day == 1).all()
    assert (df.groupby("sensor_id").size() == 72).all()
    assert df["sensor_id"].iloc[0].startswith("cell_")
    assert df["ozone"].between(200, 450).all()  # Dobson units


def test_weather_units_are_metric(frames: dict[str, pd.DataFrame]) -> None:
    df = frames["weather"]
    assert set(df["sensor_id"]) == {"EWR", "JFK", "LGA"}
    assert df["temperature"].min() > -25
    assert df["temperature"].max() < 45  # degC, not degF
    assert df["wind_speed"].max() < 40  # m/s, the 1048 mph error removed
    assert df["pressure"].dropna().between(950, 1060).all()  # hPa
    assert df["humidity"].dropna().between(0, 100).all()
    assert (df["precip"] >= 0).all()
    # 2013-01-01 01:00 in New York (EST, UTC-5) is 06:00 UTC; hourly readings.
    assert df["timestamp"].min() == pd.Timestamp("2013-01-01 06:00", tz="UTC")
    assert (df["timestamp"].dt.minute == 0).all()


def _decimal_year(ts: pd.Series) -> np.ndarray:
    days = np.where(ts.dt.is_leap_year, 366.0, 365.0)
    return (ts.dt.year + (ts.dt.day_of_year - 1) / days).to_numpy(dtype="float64")


def _theil_sen_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Median of all pairwise slopes (what scipy.stats.theilslopes returns as the slope)."""
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    return float(np.median((y[j] - y[i])[keep] / dx[keep]))


def test_co2_theil_sen_trend(frames: dict[str, pd.DataFrame]) -> None:
    df = frames["co2"]
    assert (df["sensor_id"] == "MLO").all()
    assert df["latitude"].iloc[0] == 19.536
    assert df["longitude"].iloc[0] == -155.576
    x = _decimal_year(df["timestamp"])
    y = df["co2"].to_numpy(dtype="float64")
    slope = _theil_sen_slope(x, y)
    assert 1.30 <= slope <= 1.38  # ppm per year, 1958-2001
    try:
        from scipy.stats import theilslopes
    except ImportError:  # scipy is not a dependency; the numpy version above is exact
        return
    assert theilslopes(y, x).slope == pytest.approx(slope, rel=1e-9)


def test_co2_seasonal_cycle(frames: dict[str, pd.DataFrame]) -> None:
    df = frames["co2"]
    x = _decimal_year(df["timestamp"])
    y = df["co2"].to_numpy(dtype="float64")
    residual = y - np.polyval(np.polyfit(x, y, 2), x)
    week = np.minimum((df["timestamp"].dt.day_of_year.to_numpy() - 1) // 7, 51)
    cycle = pd.Series(residual).groupby(week).mean()
    assert 6.2 <= cycle.max() - cycle.min() <= 6.7  # about 6.4 ppm peak to peak (weekly means)
    # Maximum in spring (May), minimum in autumn (Sept/Oct).
    peak_month = df["timestamp"].dt.month.to_numpy()[week == cycle.idxmax()][0]
    low_month = df["timestamp"].dt.month.to_numpy()[week == cycle.idxmin()][0]
    assert peak_month in (4, 5, 6)
    assert low_month in (9, 10)
