"""SPACE: DBSCAN clustering, H3 aggregation, Gi* hot spots and IDW, on real and planted data."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest

from geo_infer_ops import action
from geo_infer_ops.data import load_source
from geo_infer_ops.modules.registry import registry
from geo_infer_ops.modules.space import (
    analyze_spatial_patterns,
    getis_ord_gi_star,
    h3_resolution_for_km,
    idw,
    resolution_to_eps_km,
)
from geo_infer_ops.orchestration import WorkflowOrchestrator

CENTRES = [(48.14, 11.58), (52.52, 13.40), (50.94, 6.96)]  # Munich, Berlin, Cologne


def planted(readings_per_sensor: int | list[int] = 3, seed: int = 1) -> tuple[pd.DataFrame, dict[str, int]]:
    """Ten sensors within ~5 km of each of three centres, plus five isolated sensors (noise)."""
    rng = np.random.default_rng(seed)
    rows, truth = [], {}
    sensors = []
    for c, (lat, lon) in enumerate(CENTRES):
        for i in range(10):
            sensors.append((f"c{c}_{i}", lat + rng.normal(0, 0.02), lon + rng.normal(0, 0.03), c))
    for i, (lat, lon) in enumerate([(47.0, 8.0), (54.5, 9.0), (49.5, 15.0), (53.5, 7.0), (46.5, 13.0)]):
        sensors.append((f"noise_{i}", lat, lon, -1))
    for n, (sid, lat, lon, c) in enumerate(sensors):
        truth[sid] = c
        k = readings_per_sensor if isinstance(readings_per_sensor, int) else readings_per_sensor[n]
        for t in range(k):
            when = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=t)
            rows.append((sid, when, lat, lon, 10.0 + c + t))
    df = pd.DataFrame(rows, columns=["sensor_id", "timestamp", "latitude", "longitude", "pm10"])
    return df, truth


def partition(labels: dict[str, int]) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for sid, c in labels.items():
        if c >= 0:
            groups.setdefault(c, set()).add(sid)
    return {frozenset(g) for g in groups.values()}


def sensor_labels(result: dict) -> dict[str, int]:
    data = result["data"]
    per = data.groupby("sensor_id")["cluster"].agg(["min", "max"])
    assert (per["min"] == per["max"]).all(), "every reading of a sensor carries the sensor's label"
    return per["min"].to_dict()


def test_dbscan_recovers_planted_clusters_exactly() -> None:
    df, truth = planted()
    res = analyze_spatial_patterns(analysis_type="clustering", eps_km=20, min_samples=3, data=df)
    labels = sensor_labels(res)
    assert partition(labels) == partition(truth)
    assert {s for s, c in labels.items() if c == -1} == {s for s, c in truth.items() if c == -1}
    summary = res["summary"]
    assert summary["n_clusters"] == 3 and summary["n_noise"] == 5
    clusters = res["clusters"]
    assert list(clusters.columns[:3]) == ["cluster", "n_sensors", "n_readings"]
    assert sorted(clusters["n_sensors"]) == [10, 10, 10]
    assert clusters.crs.to_epsg() == 4326 and (clusters.geom_type == "Point").all()
    # each cluster centroid is near its planted centre
    for lat, lon in CENTRES:
        d = np.hypot(clusters["latitude"] - lat, clusters["longitude"] - lon)
        assert d.min() < 0.05
    # readings keep sensor_id, all rows, and gain a cluster column; input untouched
    assert len(res["data"]) == len(df) and "cluster" not in df.columns
    assert res["data"].crs.to_epsg() == 4326


def test_dbscan_is_invariant_to_readings_per_sensor() -> None:
    few, _ = planted(readings_per_sensor=1)
    counts = list(np.random.default_rng(5).integers(1, 60, size=35))
    many, _ = planted(readings_per_sensor=counts)
    a = sensor_labels(analyze_spatial_patterns(eps_km=20, data=few))
    b = sensor_labels(analyze_spatial_patterns(eps_km=20, data=many))
    assert a == b
    # a single very busy noise sensor is still noise (a per-reading DBSCAN would make it a cluster)
    assert b["noise_0"] == -1


def test_spatial_resolution_converts_to_eps_and_eps_km_overrides() -> None:
    assert resolution_to_eps_km(1.0) == pytest.approx(111.2, abs=0.05)
    assert resolution_to_eps_km(0.01, eps_km=75) == 75
    df, truth = planted()
    by_degrees = sensor_labels(analyze_spatial_patterns(spatial_resolution=0.18, data=df))  # ~20 km
    assert partition(by_degrees) == partition(truth)
    # the spec's 0.01 degrees (~1.1 km) leaves sensors ~3 km apart unclustered
    tight = analyze_spatial_patterns(spatial_resolution=0.01, data=df)
    assert tight["summary"]["parameters"]["eps_km"] == pytest.approx(1.112, abs=0.001)


def test_clustering_real_pm10_network() -> None:
    sensors = load_source("sensors")
    res = analyze_spatial_patterns(analysis_type="clustering", eps_km=75, data=sensors)
    assert res["summary"]["n_sensors"] == 70 and len(res["data"]) == len(sensors)
    assert res["summary"]["n_clusters"] == 4 and res["summary"]["n_noise"] == 8
    assert res["clusters"]["n_sensors"].sum() + res["summary"]["n_noise"] == 70
    assert res["clusters"]["n_readings"].sum() == (res["data"]["cluster"] >= 0).sum()
    # the spec's own snippet runs (and finds only noise at ~1.1 km on this network)
    spec = analyze_spatial_patterns(analysis_type="clustering", spatial_resolution=0.01, data=sensors)
    assert spec["summary"]["n_clusters"] == 0 and (spec["data"]["cluster"] == -1).all()


def test_h3_resolution_choice() -> None:
    assert h3_resolution_for_km(1.112) == 7  # edge 1.41 km
    assert h3_resolution_for_km(70) == 3  # edge 69 km
    res = analyze_spatial_patterns(analysis_type="h3_aggregate", spatial_resolution=0.01, data=planted()[0])
    assert res["summary"]["h3_resolution"] == 7


def test_h3_aggregate_equals_pandas_groupby_on_real_data() -> None:
    sensors = load_source("sensors")
    res = analyze_spatial_patterns(analysis_type="h3_aggregate", h3_resolution=4, data=sensors)
    cells = [
        h3.latlng_to_cell(a, b, 4) for a, b in zip(sensors["latitude"], sensors["longitude"], strict=True)
    ]
    expected = sensors.assign(h3_cell=cells).groupby("h3_cell")["pm10"].agg(["mean", "max", "size"])
    hexes = res["hexes"].set_index("h3_cell").sort_index()
    assert list(hexes.index) == list(expected.index)
    np.testing.assert_allclose(hexes["pm10_mean"], expected["mean"], rtol=1e-6)
    np.testing.assert_allclose(hexes["pm10_max"], expected["max"], rtol=1e-6)
    assert (hexes["count"] == expected["size"]).all()
    assert list(res["data"]["h3_cell"]) == cells
    assert (res["hexes"].geom_type == "Polygon").all() and res["hexes"].crs.to_epsg() == 4326
    # every hexagon contains the readings assigned to it
    one = res["hexes"].iloc[0]
    pts = res["data"][res["data"]["h3_cell"] == one["h3_cell"]]
    assert pts.within(one.geometry).all()


def test_gi_star_flags_planted_hot_cluster() -> None:
    res = 6
    centre = h3.latlng_to_cell(50.0, 10.0, res)
    hot = set(h3.grid_disk(centre, 1))
    region = list(h3.grid_disk(centre, 8))
    rng = np.random.default_rng(3)
    rows = []
    for i, cell in enumerate(region):
        lat, lon = h3.cell_to_latlng(cell)
        value = 100.0 if cell in hot else 20.0 + rng.normal(0, 3)
        rows.append((f"s{i}", pd.Timestamp("2024-01-01", tz="UTC"), lat, lon, value))
    df = pd.DataFrame(rows, columns=["sensor_id", "timestamp", "latitude", "longitude", "pm10"])
    out = analyze_spatial_patterns(analysis_type="hotspots", h3_resolution=res, data=df)
    hs = out["hotspots"].set_index("h3_cell")
    flagged = set(hs.index[hs["hotspot"] == "hot"])
    assert hot <= flagged
    assert flagged <= set(h3.grid_disk(centre, 2))  # only the cluster and its immediate rim
    assert hs.loc[centre, "gi_z"] == hs["gi_z"].max() and hs.loc[centre, "p_value"] < 1e-6
    assert set(hs["hotspot"]) <= {"hot", "cold", "none"}
    assert out["summary"]["n_hot"] == len(flagged)


def test_gi_star_formula_by_hand() -> None:
    centre = h3.latlng_to_cell(50.0, 10.0, 5)
    cells = list(h3.grid_disk(centre, 2))
    x = np.arange(len(cells), dtype=float)
    z, p = getis_ord_gi_star(cells, x, k=1)
    n, xbar, s = len(x), x.mean(), x.std()
    nb = [cells.index(c) for c in h3.grid_disk(centre, 1)]
    w = len(nb)
    expected = (x[nb].sum() - xbar * w) / (s * np.sqrt((n * w - w * w) / (n - 1)))
    assert z[cells.index(centre)] == pytest.approx(expected)
    assert np.all((p >= 0) & (p <= 1))


def test_idw_reproduces_data_and_stays_in_range() -> None:
    lat = np.array([50.0, 51.0, 52.0, 50.5])
    lon = np.array([8.0, 9.5, 8.2, 10.0])
    val = np.array([10.0, 30.0, 20.0, 5.0])
    np.testing.assert_allclose(idw(lat, lon, val, lat, lon), val)
    q_lat = np.random.default_rng(0).uniform(49, 53, 500)
    q_lon = np.random.default_rng(1).uniform(7, 11, 500)
    q = idw(lat, lon, val, q_lat, q_lon, power=2)
    assert q.min() >= val.min() and q.max() <= val.max()


def test_interpolation_grid_on_real_data() -> None:
    sensors = load_source("sensors")
    res = analyze_spatial_patterns(analysis_type="interpolation", grid_size=20, data=sensors)
    grid = res["grid"]
    assert list(grid.columns) == ["latitude", "longitude", "pm10"] and len(grid) == 400
    means = sensors.groupby("sensor_id")["pm10"].mean()
    assert grid["pm10"].between(means.min(), means.max()).all()
    arr = grid["pm10"].to_numpy().reshape(res["summary"]["grid_shape"])
    assert arr.shape == (20, 20)
    assert grid["latitude"].iloc[0] == pytest.approx(sensors["latitude"].min())
    # values at one timestamp
    day = analyze_spatial_patterns(
        analysis_type="interpolation", grid_size=5, timestamp="2005-06-01", data=sensors
    )
    on_day = sensors[sensors["timestamp"] == pd.Timestamp("2005-06-01", tz="UTC")]["pm10"]
    assert day["grid"]["pm10"].between(on_day.min(), on_day.max()).all()
    assert day["summary"]["n_sources"] == len(on_day)


def test_interpolation_reproduces_sensor_value_on_grid_node() -> None:
    df = pd.DataFrame(
        {
            "sensor_id": ["a", "b", "c", "d"],
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC"),
            "latitude": [50.0, 50.0, 52.0, 52.0],
            "longitude": [8.0, 10.0, 8.0, 10.0],
            "pm10": [10.0, 20.0, 30.0, 40.0],
        }
    )
    res = analyze_spatial_patterns(analysis_type="interpolation", grid_size=3, data=df)
    arr = res["grid"]["pm10"].to_numpy().reshape(3, 3)
    assert arr[0, 0] == 10.0 and arr[0, 2] == 20.0 and arr[2, 0] == 30.0 and arr[2, 2] == 40.0
    assert arr[1, 1] == pytest.approx(25.0, abs=0.5)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"analysis_type": "kriging"}, "analysis_type"),
        ({"spatial_resolution": -1}, "spatial_resolution"),
        ({"eps_km": 0}, "eps_km"),
        ({"min_samples": 0}, "min_samples"),
        ({"h3_resolution": 16}, "h3_resolution"),
        ({"alpha": 1.5}, "alpha"),
        ({"grid_size": 1}, "grid_size"),
        ({"variable": "nope"}, "variable"),
        ({"analysis_type": "interpolation", "timestamp": "1990-01-01"}, "timestamp"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs: dict, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        analyze_spatial_patterns(data=planted()[0], **kwargs)


def test_no_input_without_ctx_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="data="):
        analyze_spatial_patterns()


def test_two_step_workflow_through_the_engine(settings) -> None:
    @action("TESTSPACE", "load_pm10")
    def load_pm10():
        from geo_infer_ops.modules._common import to_geodataframe

        return to_geodataframe(load_source("sensors"))

    assert registry.get("SPACE", "spatial_analysis").func is analyze_spatial_patterns
    orchestrator = WorkflowOrchestrator(settings=settings)
    wf = orchestrator.define_workflow(
        {
            "name": "space_on_pm10",
            "steps": [
                {"name": "data_ingestion", "module": "TESTSPACE", "action": "load_pm10"},
                {
                    "name": "spatial_processing",
                    "module": "SPACE",
                    "action": "analyze_spatial_patterns",
                    "dependencies": ["data_ingestion"],
                    "parameters": {"analysis_type": "hotspots", "eps_km": 75, "spatial_resolution": 0.75},
                },
            ],
        }
    )
    result = orchestrator.execute_workflow(wf)
    assert result["status"] == "succeeded", result["steps"]
    out = result["outputs"]["spatial_processing"]
    assert out["summary"]["n_clusters"] == 4
    assert {"data", "clusters", "hexes", "hotspots", "summary"} <= set(out)
    assert "cluster" in out["data"].columns and "h3_cell" in out["data"].columns
    assert out["hotspots"]["hotspot"].isin(["hot", "cold", "none"]).all()


def test_missing_coordinates_are_noise_and_geometry_matches_coordinates() -> None:
    df, _ = planted()
    df.loc[0, "latitude"] = np.nan  # one reading of sensor c0_0 without a position
    res = analyze_spatial_patterns(eps_km=20, data=df)
    data = res["data"]
    assert data.geometry.iloc[0] is None or data.geometry.iloc[0].is_empty
    ok = data["latitude"].notna()
    np.testing.assert_allclose(data.geometry[ok].x, data["longitude"][ok])
    np.testing.assert_allclose(data.geometry[ok].y, data["latitude"][ok])
    assert res["summary"]["n_clusters"] == 3  # the sensor keeps its other readings' position
