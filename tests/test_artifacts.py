"""Step results by reference: inline JSON, JSON files, Parquet, GeoParquet, .npy, bundles, pickle."""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal, assert_series_equal

from geo_infer_ops.artifacts import ArtifactStore, StoredResult, to_json
from geo_infer_ops.errors import ArtifactError


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "artifacts", inline_max_bytes=1024)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class Point:
    """Not JSON, not a frame: pickled as a last resort."""

    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    __hash__ = None  # type: ignore[assignment]


def test_small_json_is_inline(artifacts: ArtifactStore) -> None:
    value = {"count": 3, "labels": ["a", "b"], "ok": True, "none": None}
    stored = artifacts.save("run1", "DATA.load", value)
    assert stored.is_inline and stored.artifact_id is None
    assert json.loads(stored.inline) == value
    assert artifacts.load(stored) == value
    assert not artifacts.root.exists() or files_under(artifacts.root) == []
    assert artifacts.load(StoredResult()) is None


def test_common_scalars_become_plain_json(artifacts: ArtifactStore) -> None:
    value = {
        "when": datetime(2024, 1, 2, 3, 4, 5),
        "day": date(2024, 1, 2),
        "n": np.int64(4),
        "x": np.float32(0.5),
        "tags": {"b", "a"},
        "path": Path("/tmp/x"),
    }
    stored = artifacts.save("run1", "s", value)
    assert stored.is_inline
    assert artifacts.load(stored) == {
        "when": "2024-01-02T03:04:05",
        "day": "2024-01-02",
        "n": 4,
        "x": 0.5,
        "tags": ["a", "b"],
        "path": "/tmp/x",
    }


def test_large_json_goes_to_a_file(artifacts: ArtifactStore) -> None:
    value = {"values": list(range(2000))}
    stored = artifacts.save("run1", "SPACE.analyze", value)
    assert not stored.is_inline
    assert stored.format == "json"
    path = artifacts.root / stored.path
    assert path.is_file() and path.suffix == ".json"
    assert stored.size_bytes == path.stat().st_size > 1024
    assert artifacts.load(stored) == value
    record = stored.to_record("run1", "SPACE.analyze", 12.0)
    assert record == {
        "id": stored.artifact_id,
        "run_id": "run1",
        "step": "SPACE.analyze",
        "format": "json",
        "path": stored.path,
        "size_bytes": stored.size_bytes,
        "created_at": 12.0,
    }


def test_dataframe_parquet_round_trip(artifacts: ArtifactStore) -> None:
    frame = pd.DataFrame(
        {
            "station": ["a", "b", "c"],
            "temp": [1.5, np.nan, 3.25],
            "count": np.array([1, 2, 3], dtype="int64"),
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]),
        },
        index=pd.Index([10, 20, 30], name="id"),
    )
    stored = artifacts.save("run1", "DATA.load_sensor_data", frame)
    assert stored.format == "parquet" and stored.path.endswith(".parquet")
    assert (artifacts.root / stored.path).is_file()
    assert_frame_equal(artifacts.load(stored), frame)


def test_dataframe_with_non_string_columns(artifacts: ArtifactStore) -> None:
    frame = pd.DataFrame(np.arange(6.0).reshape(3, 2))
    stored = artifacts.save("run1", "s", frame)
    loaded = artifacts.load(stored)
    np.testing.assert_array_equal(loaded.to_numpy(), frame.to_numpy())


def test_steps_of_one_module_do_not_overwrite_each_other(artifacts: ArtifactStore) -> None:
    first = artifacts.save("run1", "DATA.load_sensor_data", pd.DataFrame({"x": [1]}))
    second = artifacts.save("run1", "DATA.validate_sensor_data", pd.DataFrame({"x": [2]}))
    third = artifacts.save("run1", "DATA.load_sensor_data#2", pd.DataFrame({"x": [3]}))
    assert len({first.path, second.path, third.path}) == 3
    assert [artifacts.load(s)["x"].tolist() for s in (first, second, third)] == [[1], [2], [3]]
    assert len(files_under(artifacts.root)) == 3


@pytest.mark.parametrize("name", ["temperature", None])
def test_series_round_trip(artifacts: ArtifactStore, name: str | None) -> None:
    series = pd.Series([1.0, 2.5, np.nan], index=["a", "b", "c"], name=name)
    stored = artifacts.save("run1", "TIME.trend", series)
    assert stored.format == "parquet-series"
    assert_series_equal(artifacts.load(stored), series)


def test_geodataframe_geoparquet_round_trip(artifacts: ArtifactStore) -> None:
    geopandas = pytest.importorskip("geopandas")
    from shapely.geometry import Point as GeoPoint

    gdf = geopandas.GeoDataFrame(
        {"name": ["x", "y"], "value": [1.0, 2.0]},
        geometry=[GeoPoint(600000, 5100000), GeoPoint(601000, 5101000)],
        crs="EPSG:32632",
    )
    stored = artifacts.save("run1", "SPACE.clusters", gdf)
    assert stored.format == "geoparquet"
    loaded = artifacts.load(stored)
    assert isinstance(loaded, geopandas.GeoDataFrame)
    assert loaded.crs is not None and loaded.crs.to_epsg() == 32632
    assert loaded.geometry.geom_equals(gdf.geometry).all()
    assert loaded["value"].tolist() == [1.0, 2.0]


def test_numpy_array_round_trip(artifacts: ArtifactStore) -> None:
    array = np.arange(24, dtype="float32").reshape(2, 3, 4)
    stored = artifacts.save("run1", "AI.embed", array)
    assert stored.format == "npy" and stored.path.endswith(".npy")
    loaded = artifacts.load(stored)
    assert loaded.dtype == array.dtype
    np.testing.assert_array_equal(loaded, array)


def test_bundle_of_frames_and_scalars(artifacts: ArtifactStore) -> None:
    geopandas = pytest.importorskip("geopandas")
    from shapely.geometry import Point as GeoPoint

    frame = pd.DataFrame({"a": [1, 2]})
    gdf = geopandas.GeoDataFrame({"v": [1]}, geometry=[GeoPoint(1, 2)], crs="EPSG:4326")
    value = {
        "table": frame,
        "places": gdf,
        "grid": np.eye(2),
        "stats": {"mean": 1.5, "n": 2, "nested": {"series": pd.Series([3.0], name="s")}},
        "pair": (frame, "label"),
        "items": [1, "two", None],
        "score": 0.93,
    }
    stored = artifacts.save("run1", "APP.report", value)
    assert stored.format == "bundle"
    folder = artifacts.root / stored.path
    assert folder.is_dir() and (folder / "manifest.json").is_file()
    assert stored.size_bytes == sum(p.stat().st_size for p in files_under(folder))
    loaded = artifacts.load(stored)
    assert list(loaded) == list(value)
    assert_frame_equal(loaded["table"], frame)
    assert loaded["places"].crs.to_epsg() == 4326
    np.testing.assert_array_equal(loaded["grid"], np.eye(2))
    assert loaded["stats"]["mean"] == 1.5 and loaded["stats"]["n"] == 2
    assert_series_equal(loaded["stats"]["nested"]["series"], value["stats"]["nested"]["series"])
    assert isinstance(loaded["pair"], tuple)
    assert_frame_equal(loaded["pair"][0], frame)
    assert loaded["pair"][1] == "label"
    assert loaded["items"] == [1, "two", None]
    assert loaded["score"] == 0.93


def test_list_of_frames_bundle(artifacts: ArtifactStore) -> None:
    frames = [pd.DataFrame({"i": [i]}) for i in range(3)]
    stored = artifacts.save("run1", "s", frames)
    loaded = artifacts.load(stored)
    assert isinstance(loaded, list) and len(loaded) == 3
    for a, b in zip(loaded, frames, strict=True):
        assert_frame_equal(a, b)


def test_pickle_fallback_for_arbitrary_objects(artifacts: ArtifactStore) -> None:
    value = {"point": Point(1.0, 2.0), "n": 3}
    assert to_json(value) is None
    stored = artifacts.save("run1", "SPACE.centroid", value)
    assert stored.format == "pickle" and stored.path.endswith(".pkl")
    assert artifacts.load(stored) == value


def test_unpicklable_result_is_an_artifact_error(artifacts: ArtifactStore) -> None:
    with pytest.raises(ArtifactError) as info:
        artifacts.save("run1", "DATA.stream", {"gen": (i for i in range(3))})
    assert "DATA.stream" in str(info.value)
    assert files_under(artifacts.root) == []


def test_failed_bundle_leaves_nothing_under_a_final_name(artifacts: ArtifactStore) -> None:
    value = {"table": pd.DataFrame({"a": [1]}), "bad": Point(0, 0)}
    with pytest.raises(ArtifactError):
        artifacts.save("run1", "APP.report", value)
    run = artifacts.run_dir("run1")
    finals = [p for p in run.iterdir() if ".tmp" not in p.name] if run.exists() else []
    assert finals == []


def test_failed_frame_write_leaves_nothing_under_a_final_name(artifacts: ArtifactStore) -> None:
    frame = pd.DataFrame({"mixed": [1, "a", Point(0, 0)]})
    with pytest.raises(ArtifactError):
        artifacts.save("run1", "s", frame)
    run = artifacts.run_dir("run1")
    finals = [p for p in run.rglob("*") if ".tmp" not in p.name] if run.exists() else []
    assert finals == []


def test_overwriting_is_atomic_replace(artifacts: ArtifactStore, tmp_path: Path) -> None:
    from geo_infer_ops.artifacts import _atomic_write_text

    target = tmp_path / "out.json"
    _atomic_write_text(target, '{"v": 1}')
    _atomic_write_text(target, '{"v": 2}')
    assert json.loads(target.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == ["out.json"]


def test_missing_artifact_names_the_path(artifacts: ArtifactStore) -> None:
    stored = artifacts.save("run1", "DATA.load", pd.DataFrame({"a": [1]}))
    path = artifacts.root / stored.path
    os.remove(path)
    with pytest.raises(ArtifactError) as info:
        artifacts.load(stored)
    assert str(path) in str(info.value)
    assert stored.artifact_id in str(info.value)
    assert "GEO_INFER_OPS_HOME" in str(info.value)


def test_unknown_format(artifacts: ArtifactStore) -> None:
    stored = artifacts.save("run1", "s", {"v": list(range(500))})
    weird = StoredResult(artifact_id=stored.artifact_id, format="hdf9", path=stored.path)
    with pytest.raises(ArtifactError, match="hdf9"):
        artifacts.load(weird)


def test_step_dir_and_delete_run(artifacts: ArtifactStore) -> None:
    folder = artifacts.step_dir("run1", "APP.report#2")
    assert folder.is_dir() and folder.parent == artifacts.run_dir("run1")
    (folder / "figure.png").write_bytes(b"x" * 100)
    stored = artifacts.save("run1", "s", {"v": list(range(500))})
    other = artifacts.save("run2", "s", {"v": list(range(500))})
    freed = artifacts.delete_run("run1")
    assert freed == 100 + stored.size_bytes
    assert not artifacts.run_dir("run1").exists()
    assert artifacts.load(other) == {"v": list(range(500))}
    assert artifacts.delete_run("never") == 0


def test_inline_limit_is_respected(tmp_path: Path) -> None:
    tiny = ArtifactStore(tmp_path, inline_max_bytes=0)
    stored = tiny.save("run1", "s", {"a": 1})
    assert stored.format == "json" and tiny.load(stored) == {"a": 1}
    value: Any = [1, 2, 3]
    assert ArtifactStore(tmp_path).save("run1", "s", value).is_inline
