"""DATA: loading the bundled sources and files, filters, and validation on real readings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from geo_infer_ops.data import load_source
from geo_infer_ops.modules.data import (
    load_environmental_data,
    load_sensor_data,
    register_data_source,
    unregister_data_source,
    validate_sensor_data,
)
from geo_infer_ops.orchestration import WorkflowOrchestrator

CONTRACT = ["sensor_id", "timestamp", "latitude", "longitude"]


def _check_contract(table):
    assert list(table.columns[:4]) == CONTRACT
    assert str(table.crs) == "EPSG:4326"
    assert (table.geometry.geom_type == "Point").all()
    assert str(table["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert np.allclose(table.geometry.x, table["longitude"]) and np.allclose(
        table.geometry.y, table["latitude"]
    )


@pytest.mark.parametrize(
    ("name", "rows", "sensors", "variable"),
    [
        ("sensors", 149_151, 70, "pm10"),
        ("weather", 26_115, 3, "temperature"),
        ("satellite", 41_472, 576, "ozone"),
        ("co2", 2_225, 1, "co2"),
    ],
)
def test_each_bundled_source_loads_whole(name, rows, sensors, variable):
    table = load_sensor_data(data_sources=[name])
    _check_contract(table)
    assert len(table) == rows
    assert table["sensor_id"].nunique() == sensors
    assert variable in table.columns
    assert (table["source"] == name).all()


def test_default_is_the_sensors_source():
    table = load_sensor_data()
    assert len(table) == 149_151 and set(table["source"]) == {"sensors"}


def test_spec_snippet_several_sources_relative_to_each_newest_reading():
    table = load_environmental_data(
        data_sources=["sensors", "satellite", "weather"], time_range="last_30_days"
    )
    _check_contract(table)
    assert set(table["source"]) == {"sensors", "satellite", "weather"}
    # union of the variable columns: each source's rows have its own, NaN elsewhere
    assert {"pm10", "ozone", "temperature", "humidity"} <= set(table.columns)
    weather = table[table["source"] == "weather"]
    assert weather["pm10"].isna().all() and weather["temperature"].notna().any()
    for name, part in table.groupby("source"):
        newest = load_source(name)["timestamp"].max()
        assert part["timestamp"].max() == newest
        assert part["timestamp"].min() > newest - pd.Timedelta(days=30)
    # daily PM10: exactly the last 30 days of each station that reported then
    sensors = table[table["source"] == "sensors"]
    assert sensors["timestamp"].dt.normalize().nunique() == 30


def test_time_range_forms():
    weather = load_sensor_data(data_sources="weather", time_range="last_24_hours")
    assert weather.groupby("sensor_id").size().to_dict() == {"EWR": 24, "JFK": 24, "LGA": 24}
    iso = load_sensor_data(data_sources="weather", time_range="2013-03-01/2013-03-31")
    assert iso["timestamp"].min() == pd.Timestamp("2013-03-01", tz="UTC")
    assert iso["timestamp"].max() == pd.Timestamp("2013-03-31 23:00", tz="UTC")
    open_start = load_sensor_data(data_sources="co2", time_range="/1960-01-01")
    assert open_start["timestamp"].max() <= pd.Timestamp("1960-01-01 23:59", tz="UTC")
    open_end = load_sensor_data(data_sources="co2", time_range="2001-06-01/")
    assert open_end["timestamp"].min() >= pd.Timestamp("2001-06-01", tz="UTC")
    months = load_sensor_data(data_sources="satellite", time_range="last_12_months")
    assert months["timestamp"].dt.tz_convert(None).dt.to_period("M").nunique() == 12
    assert len(load_sensor_data(data_sources="co2", time_range="all")) == 2_225


@pytest.mark.parametrize("bad", ["yesterday", "last_x_days", "last_3_fortnights", "2013-13-01/2013-14-01", 5])
def test_bad_time_range_names_the_parameter_and_forms(bad):
    with pytest.raises(ValueError, match="time_range") as info:
        load_sensor_data(data_sources="weather", time_range=bad)
    assert "last_N_hours" in str(info.value)


def test_time_range_with_no_rows_says_the_actual_span():
    with pytest.raises(ValueError, match="time_range") as info:
        load_sensor_data(data_sources="weather", time_range="2024-01-01/2024-03-31")
    assert "2013-01-01T06:00:00+00:00 .. 2013-12-30T23:00:00+00:00" in str(info.value)


def test_bbox_and_variables():
    jfk = load_sensor_data(data_sources="weather", bbox=[-73.8, 40.6, -73.7, 40.7])
    assert set(jfk["sensor_id"]) == {"JFK"}
    germany_north = load_sensor_data(bbox=[5, 52, 15, 56])
    assert (germany_north["latitude"] >= 52).all() and germany_north["sensor_id"].nunique() < 70
    with pytest.raises(ValueError, match="bbox"):
        load_sensor_data(bbox=[10, 60, 5, 50])
    with pytest.raises(ValueError, match="bbox"):
        load_sensor_data(bbox=[1, 2, 3])
    with pytest.raises(ValueError, match=r"bbox.*left no readings"):
        load_sensor_data(data_sources="weather", bbox=[0, 0, 1, 1])

    temp = load_sensor_data(data_sources=["weather", "sensors"], variables=["temperature"])
    variables = [c for c in temp.columns if c not in {*CONTRACT, "geometry", "source"}]
    assert variables == ["temperature"]
    assert set(temp["source"]) == {"weather"}  # the PM10 source has no temperature
    assert len(temp) == 26_115 - 1  # the one missing temperature is dropped
    with pytest.raises(ValueError, match="variables"):
        load_sensor_data(data_sources="weather", variables=["pm10"])


def _mapped_weather():
    weather = load_source("weather").iloc[:500]
    return weather.rename(
        columns={
            "sensor_id": "station",
            "timestamp": "obs_time",
            "latitude": "north",
            "longitude": "east",
            "temperature": "t2m",
        }
    )


MAPPING = {
    "station": "sensor_id",
    "obs_time": "timestamp",
    "north": "latitude",
    "east": "longitude",
    "t2m": "temperature",
}


def test_csv_parquet_geojson_paths_with_column_mapping(tmp_path):
    raw = _mapped_weather()
    expected = (
        load_source("weather").iloc[:500].sort_values(["sensor_id", "timestamp"]).reset_index(drop=True)
    )

    csv = tmp_path / "weather.csv"
    raw.to_csv(csv, index=False)
    parquet = tmp_path / "weather.parquet"
    raw.to_parquet(parquet)
    geojson = tmp_path / "weather.geojson"
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.east, r.north]},
            "properties": {
                "station": r.station,
                "obs_time": r.obs_time.isoformat(),
                "t2m": float(r.t2m),
                "humidity": None if pd.isna(r.humidity) else float(r.humidity),
            },
        }
        for r in raw.itertuples()
    ]
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    geoparquet = tmp_path / "weather.geoparquet"
    load_sensor_data(path=str(parquet), columns=MAPPING).to_parquet(geoparquet)

    for path in (csv, parquet, geojson, geoparquet):
        table = load_sensor_data(path=str(path), columns=MAPPING if path != geoparquet else None)
        _check_contract(table)
        assert len(table) == 500
        assert table["sensor_id"].tolist() == expected["sensor_id"].tolist()
        assert (table["timestamp"] == expected["timestamp"]).all()
        assert np.allclose(table["temperature"], expected["temperature"], equal_nan=True)
        assert np.allclose(table["latitude"], expected["latitude"])

    # for the four contract columns the reverse direction {our name: file column} is understood too
    reverse = load_sensor_data(path=str(csv), columns={v: k for k, v in MAPPING.items() if k != "t2m"})
    assert len(reverse) == 500 and reverse["sensor_id"].tolist() == expected["sensor_id"].tolist()
    assert "t2m" in reverse.columns
    with pytest.raises(ValueError, match=r"columns\['nope'\]"):
        load_sensor_data(path=str(csv), columns={"nope": "sensor_id"})
    with pytest.raises(ValueError, match="sensor_id"):
        load_sensor_data(path=str(csv))  # 'station' is recognised, but not 'north'/'east'/'obs_time'


def test_registered_source(tmp_path):
    csv = tmp_path / "mine.csv"
    _mapped_weather().to_csv(csv, index=False)
    register_data_source("my_weather", csv, columns=MAPPING)
    register_data_source("lga_only", lambda: load_source("weather").query("sensor_id == 'LGA'"))
    try:
        with pytest.raises(ValueError, match="already exists"):
            register_data_source("weather", csv)
        table = load_sensor_data(data_sources=["my_weather", "lga_only", "co2"], time_range="last_1_days")
        assert set(table["source"]) == {"my_weather", "lga_only", "co2"}
        assert set(table.loc[table["source"] == "lga_only", "sensor_id"]) == {"LGA"}
    finally:
        unregister_data_source("my_weather")
        unregister_data_source("lga_only")
    with pytest.raises(ValueError, match="data_sources: unknown source 'my_weather'"):
        load_sensor_data(data_sources=["my_weather"])


def _planted_sample():
    """Two weeks of real hourly weather with problems planted at known places."""
    sample = load_source("weather")
    sample = sample[sample["timestamp"] < pd.Timestamp("2013-01-15", tz="UTC")].reset_index(drop=True)
    ewr = sample.index[sample["sensor_id"] == "EWR"]
    jfk = sample.index[sample["sensor_id"] == "JFK"]
    lga = sample.index[sample["sensor_id"] == "LGA"]
    sample.loc[ewr[10], "temperature"] = 75.0  # out of range (> 60 °C)
    sample.loc[ewr[11], "humidity"] = -4.0  # out of range (< 0 %)
    sample.loc[ewr[100:130], "pressure"] = 1013.25  # stuck: 30 identical hourly readings
    sample.loc[jfk[:5], ["latitude", "longitude"]] = 0.0  # null island
    sample.loc[lga[50], "latitude"] = 123.0  # invalid latitude
    duplicates = sample.loc[lga[200:203]].copy()  # three readings received twice
    shuffled = sample.loc[[jfk[40], jfk[41]]]  # two readings of JFK swapped
    sample = sample.drop(index=[jfk[40], jfk[41]])
    before = sample.loc[: jfk[39]]
    after = sample.loc[jfk[42] :]
    sample = pd.concat([before, shuffled.iloc[::-1], after, duplicates], ignore_index=True)
    return sample


def test_validation_catches_planted_problems():
    sample = _planted_sample()
    result = validate_sensor_data(data=sample)
    clean, quality = result["data"], result["quality"]
    _check_contract(clean)
    assert quality["readings_in"] == len(sample)
    assert quality["duplicates"] == 3 and quality["conflicting_duplicates"] == 0
    assert quality["zero_coordinates"] == 5
    assert quality["invalid_coordinates"] == 1
    # the swapped pair, and the first re-sent duplicate (earlier than the reading before it)
    assert quality["out_of_order"] == 1 + 1
    assert quality["out_of_range_by_variable"]["temperature"] == 1
    assert quality["out_of_range_by_variable"]["humidity"] == 1
    assert quality["stuck_values_by_variable"]["pressure"] == 30
    assert quality["stuck_runs"] == 1
    run = quality["stuck_run_list"][0]
    assert (run["sensor_id"], run["variable"], run["length"], run["value"]) == (
        "EWR",
        "pressure",
        30,
        1013.25,
    )
    # no false alarms on the real data: precipitation 0 and visibility 10 repeat for days legitimately
    assert sum(quality["stuck_values_by_variable"].values()) == 30
    assert quality["readings_out"] == len(sample) - 3 - 5 - 1
    assert not clean.duplicated(["sensor_id", "timestamp"]).any()
    assert clean.groupby("sensor_id")["timestamp"].is_monotonic_increasing.all()
    assert not ((clean["latitude"] == 0) & (clean["longitude"] == 0)).any()
    assert clean["temperature"].max() < 60 and clean["humidity"].min() >= 0
    assert (clean["quality_flag"].str.contains("stuck:pressure")).sum() == 30
    # score: kept measured values / expected ones, missing values count against it
    variables = quality["variables"]
    assert quality["values_expected"] == len(sample) * len(variables)
    assert quality["values_kept"] == int(clean[variables].notna().to_numpy().sum())
    assert quality["data_quality_score"] == pytest.approx(
        quality["values_kept"] / quality["values_expected"], abs=1e-6
    )
    assert 0.9 < quality["data_quality_score"] < 1
    json.dumps(quality)  # the report is plain JSON


def test_validation_ranges_override_and_stuck_threshold():
    sample = _planted_sample()
    loose = validate_sensor_data(data=sample, ranges={"temperature": [-100, 100], "humidity": None})
    assert loose["quality"]["out_of_range_by_variable"].get("temperature") == 0
    assert "humidity" in loose["quality"]["unchecked_variables"]
    strict = validate_sensor_data(data=sample, stuck_readings=40)
    assert strict["quality"]["stuck_values"] == 0
    with pytest.raises(ValueError, match="ranges"):
        validate_sensor_data(data=sample, ranges={"pm10": [0, 100]})
    with pytest.raises(ValueError, match=r"ranges\['temperature'\]"):
        validate_sensor_data(data=sample, ranges={"temperature": [10, 0]})
    with pytest.raises(ValueError, match="stuck_readings"):
        validate_sensor_data(data=sample, stuck_readings=-1)


def test_whole_pm10_data_is_clean_and_fast_enough():
    result = validate_sensor_data(data=load_sensor_data())
    assert result["quality"]["data_quality_score"] == 1.0
    assert result["quality"]["readings_out"] == 149_151


def test_load_then_validate_workflow(settings):
    orchestrator = WorkflowOrchestrator(settings=settings)
    result = orchestrator.execute_workflow(
        {
            "name": "load_and_validate",
            "steps": [
                {
                    "name": "load",
                    "module": "DATA",
                    "action": "load_environmental_data",
                    "parameters": {"data_sources": ["weather", "sensors"], "time_range": "last_30_days"},
                },
                {
                    "name": "validate",
                    "module": "DATA",
                    "action": "validate_sensor_data",
                    "dependencies": ["load"],
                    "parameters": {"ranges": {"pm10": [0, 150]}},
                },
            ],
        }
    )
    assert result["status"] == "succeeded", result
    loaded = result["outputs"]["load"]
    validated = result["outputs"]["validate"]
    assert set(loaded["source"]) == {"weather", "sensors"}
    quality = validated["quality"]
    assert quality["readings_in"] == len(loaded)
    assert quality["out_of_range_by_variable"]["pm10"] == int((loaded["pm10"] > 150).sum())
    assert 0 < quality["data_quality_score"] <= 1
    assert len(validated["data"]) == quality["readings_out"]
    debug = orchestrator.debug_workflow_execution(result["workflow_id"], debug_level="verbose")
    assert "data_quality_score" in json.dumps(debug, default=str)
