"""APP: the report (PDF pages rendered with pdftoppm and checked not blank, HTML) and the alerts GeoJSON."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from geo_infer_ops.modules import app
from geo_infer_ops.modules.registry import registry

PDFTOPPM = shutil.which("pdftoppm")


def synthetic_results(n_sensors: int = 10) -> dict[str, Any]:
    """What DATA, SPACE, TIME and AI return (docs/modules/README.md), computed crudely but quickly."""
    import geopandas as gpd
    import h3
    import numpy as np
    import pandas as pd
    from shapely.geometry import Point, Polygon

    from geo_infer_ops.data import load_source

    raw = load_source("sensors")
    counts = raw["sensor_id"].value_counts()
    keep = sorted(counts.index[:n_sensors])
    data = raw[raw["sensor_id"].isin(keep) & (raw["timestamp"] >= "2006-01-01")].copy()
    data = data.reset_index(drop=True)
    # Cluster: north / south of 51°N, one sensor left as noise.
    sensors = data.groupby("sensor_id")[["latitude", "longitude"]].first()
    cluster = (sensors["latitude"] < 51).astype(int)
    cluster.iloc[0] = -1
    data["cluster"] = data["sensor_id"].map(cluster).astype(int)
    data = gpd.GeoDataFrame(data, geometry=gpd.points_from_xy(data.longitude, data.latitude), crs="EPSG:4326")

    cl = sensors.assign(cluster=cluster)[cluster >= 0].groupby("cluster")
    clusters = gpd.GeoDataFrame(
        {
            "cluster": list(cl.groups),
            "n_sensors": cl.size().to_numpy(),
            "n_readings": [int((data["cluster"] == c).sum()) for c in cl.groups],
            "pm10": [float(data.loc[data["cluster"] == c, "pm10"].mean()) for c in cl.groups],
        },
        geometry=[Point(g["longitude"].mean(), g["latitude"].mean()) for _, g in cl],
        crs="EPSG:4326",
    )

    data["h3_cell"] = [h3.latlng_to_cell(a, b, 4) for a, b in zip(data.latitude, data.longitude, strict=True)]
    agg = data.groupby("h3_cell")["pm10"].agg(["size", "mean", "max"]).reset_index()
    polys = [Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)]) for c in agg["h3_cell"]]
    hexes = gpd.GeoDataFrame(
        {"h3_cell": agg["h3_cell"], "count": agg["size"], "pm10_mean": agg["mean"], "pm10_max": agg["max"]},
        geometry=polys,
        crs="EPSG:4326",
    )
    z = (agg["mean"] - agg["mean"].mean()) / (agg["mean"].std() or 1)
    hotspots = gpd.GeoDataFrame(
        {
            "h3_cell": agg["h3_cell"],
            "value": agg["mean"],
            "gi_z": z,
            "p_value": np.clip(np.exp(-np.abs(z) * 2), 0, 1),
            "hotspot": np.where(z > 1, "hot", np.where(z < -1, "cold", "none")),
        },
        geometry=polys,
        crs="EPSG:4326",
    )

    comps, trends, forecast, backtest = [], [], [], []
    for sensor, g in data.groupby("sensor_id"):
        s = g.set_index("timestamp")["pm10"].astype(float)
        trend = s.rolling(365, min_periods=30, center=True).mean().bfill().ffill()
        doy = s.index.day_of_year
        seasonal = (s - trend).groupby(doy).transform("mean")
        comps.append(
            pd.DataFrame(
                {
                    "sensor_id": sensor,
                    "variable": "pm10",
                    "timestamp": s.index,
                    "observed": s.to_numpy(),
                    "trend": trend.to_numpy(),
                    "seasonal": seasonal.to_numpy(),
                    "resid": (s - trend - seasonal).to_numpy(),
                }
            )
        )
        years = (s.index - s.index[0]).days / 365.25
        slope = float(np.polyfit(years, s.to_numpy(), 1)[0])
        trends.append(
            {
                "sensor_id": sensor,
                "variable": "pm10",
                "slope_per_year": slope,
                "p_value": float(min(1.0, 0.2 / (abs(slope) + 0.1))),
                "seasonal_amplitude": float(seasonal.max() - seasonal.min()),
                "residual_std": float((s - trend - seasonal).std()),
                "n_obs": len(s),
            }
        )
        last = float(s.iloc[-30:].mean())
        days = pd.date_range(s.index[-1] + pd.Timedelta(days=1), periods=7, freq="D")
        spread = np.sqrt(np.arange(1, 8)) * float(s.iloc[-60:].std())
        forecast.append(
            pd.DataFrame(
                {
                    "sensor_id": sensor,
                    "variable": "pm10",
                    "timestamp": days,
                    "mean": last,
                    "lower_80": last - 1.28 * spread,
                    "upper_80": last + 1.28 * spread,
                    "lower_95": last - 1.96 * spread,
                    "upper_95": last + 1.96 * spread,
                }
            )
        )
        backtest.append(
            {"sensor_id": sensor, "variable": "pm10", "mae": 5.0, "rmse": 7.0, "mape": 0.3, "accuracy": 0.7}
        )

    zscore = (data["pm10"] - data.groupby("sensor_id")["pm10"].transform("mean")) / data.groupby("sensor_id")[
        "pm10"
    ].transform("std")
    top = data.assign(score=zscore).nlargest(40, "score")
    anomalies = gpd.GeoDataFrame(
        {
            "sensor_id": top["sensor_id"].to_numpy(),
            "timestamp": top["timestamp"].to_numpy(),
            "variable": "pm10",
            "value": top["pm10"].astype(float).to_numpy(),
            "score": top["score"].to_numpy(),
            "method": "zscore",
        },
        geometry=gpd.points_from_xy(top.longitude, top.latitude),
        crs="EPSG:4326",
    )
    anomalies["timestamp"] = pd.to_datetime(anomalies["timestamp"], utc=True)
    quality = {
        "data_quality_score": 0.97,
        "n_input": len(data) + 120,
        "n_output": len(data),
        "checks": {"duplicates": 20, "out_of_range": 100, "missing_coordinates": 0},
    }
    return {
        "ingest": data.drop(columns=["cluster", "h3_cell"]),
        "quality": {"data": data.drop(columns=["cluster", "h3_cell"]), "quality": quality},
        "space": {
            "data": data,
            "clusters": clusters,
            "hexes": hexes,
            "hotspots": hotspots,
            "summary": {"analysis_type": "clustering", "n_clusters": len(clusters), "n_noise": 1},
        },
        "time": {
            "trends": pd.DataFrame(trends),
            "components": pd.concat(comps, ignore_index=True),
            "period": 365,
            "frequency": "D",
        },
        "ai": {
            "forecast": pd.concat(forecast, ignore_index=True),
            "backtest": pd.DataFrame(backtest),
            "model": "synthetic",
            "horizon_days": 7,
        },
        "anomalies": {"anomalies": anomalies, "summary": {"n": len(anomalies)}},
    }


class FakeContext:
    """Enough of StepContext for an action: inputs, ancestors, log, metric, artifacts, run_record."""

    def __init__(self, results: dict[str, Any], folder: Path, direct: tuple[str, ...] = ()) -> None:
        self.run_id = "run-for-test"
        self.workflow = "synthetic"
        self.step = "report"
        self.attempt = 1
        self.parameters: dict[str, Any] = {}
        self.ancestors = dict(results)
        self.inputs = {k: results[k] for k in direct} if direct else dict(results)
        self.log = logging.LoggerAdapter(logging.getLogger("test.app"), {})
        self.metrics: dict[str, float] = {}
        self.artifacts = SimpleNamespace(dir=folder)

    def metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)

    def run_record(self) -> dict[str, Any]:
        raise RuntimeError("no store in this test")


@pytest.fixture(scope="module")
def results():
    return synthetic_results()


def render_pages(pdf: Path, folder: Path) -> list[Path]:
    """The PDF's pages as PNG files (pdftoppm -r 40 -png)."""
    if PDFTOPPM is None:
        pytest.fail("pdftoppm is missing: apt-get install -y poppler-utils (.ci/run does it)")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([PDFTOPPM, "-r", "40", "-png", str(pdf), str(folder / "page")], check=True, timeout=60)
    return sorted(folder.glob("page-*.png"))


def assert_not_blank(png: Path) -> None:
    import matplotlib.image as mpimg
    import numpy as np

    pixels = mpimg.imread(png)
    gray = pixels[..., :3].mean(axis=-1)
    assert gray.std() > 0.03, f"{png.name} looks blank (pixel std {gray.std():.4f})"
    assert (gray < 0.5).mean() > 0.002, f"{png.name} has almost no dark pixels"
    assert np.isfinite(gray).all()


def test_actions_are_registered_with_the_spec_parameters():
    for name in ("generate_report", "generate_environmental_report"):
        spec = registry.get("APP", name)
        assert {"report_format", "include_visualizations", "output_dir"} <= spec.parameter_names
        assert spec.accepts_context
    spec = registry.get("APP", "generate_environmental_alerts")
    assert {"thresholds", "min_score", "output_dir"} <= spec.parameter_names
    assert spec.check_parameters([]) == ([], [])  # the spec calls it without parameters


def test_report_both_formats_every_section(results, tmp_path):
    ctx = FakeContext(results, tmp_path / "artifacts", direct=("ai",))
    out = app.generate_environmental_report(
        report_format="both", include_visualizations=True, output_dir=str(tmp_path / "rep"), ctx=ctx
    )
    assert out["sections"] == ["summary", "map", "series", "trends", "forecast", "anomalies", "quality"]
    pdf, html = Path(out["pdf"]), Path(out["html"])
    assert pdf.name == "report.pdf" and html.name == "report.html"
    assert pdf.parent == html.parent == tmp_path / "rep" == Path(out["output_dir"])
    assert pdf.read_bytes()[:5] == b"%PDF-"
    # One page per section here (no section spills over).
    pages = render_pages(pdf, tmp_path / "png")
    assert len(pages) == out["pages"] == len(out["sections"])
    for page in pages:
        assert_not_blank(page)
    # HTML: every figure is a PNG next to the page, referenced by a relative path.
    figures = [Path(f) for f in out["figures"]]
    assert {f.name for f in figures} == {f"fig-{k}.png" for k in out["sections"] if k != "summary"}
    text = html.read_text()
    for f in figures:
        assert f.parent == html.parent and f.stat().st_size > 5000
        assert f'src="{f.name}"' in text
    assert "<table>" in text and "DEMV017" in text and "Anomalies" in text
    assert ctx.metrics["report_sections"] == len(out["sections"])


def test_report_default_folder_and_missing_sections(results, tmp_path):
    """Only what exists upstream is reported; the default folder is the step's artifact folder."""
    only_data = {"ingest": results["ingest"]}
    ctx = FakeContext(only_data, tmp_path / "artifacts")
    out = app.generate_report(ctx=ctx)
    assert out["html"] is None and out["figures"] == []
    assert Path(out["pdf"]) == tmp_path / "artifacts" / "report.pdf"
    assert out["sections"] == ["summary", "map", "quality"]
    pages = render_pages(Path(out["pdf"]), tmp_path / "png")
    assert len(pages) == 3
    for page in pages:
        assert_not_blank(page)


def test_report_relative_output_dir_and_tables_only(results, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ctx = FakeContext(results, tmp_path / "artifacts")
    out = app.generate_report(
        report_format="html", include_visualizations=False, output_dir="out/rep", ctx=ctx
    )
    assert Path(out["html"]) == tmp_path / "out" / "rep" / "report.html"
    assert out["pdf"] is None and out["figures"] == []
    assert "<img" not in Path(out["html"]).read_text()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"report_format": "docx"}, "report_format must be one of pdf, html, both"),
        ({"include_visualizations": "yes"}, "include_visualizations"),
        ({"max_series": 0}, "max_series"),
    ],
)
def test_report_bad_parameters(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        app.generate_report(ctx=FakeContext({}, tmp_path), **kwargs)


def test_report_needs_ctx():
    with pytest.raises(ValueError, match="ctx"):
        app.generate_report()


def check_feature_collection(fc: dict) -> None:
    assert fc["type"] == "FeatureCollection"
    assert "path" not in fc
    for f in fc["features"]:
        assert f["type"] == "Feature"
        assert f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        # Germany: lon/lat order, not lat/lon.
        assert 5 < lon < 16 and 47 < lat < 56, (lon, lat)
        p = f["properties"]
        assert set(p) >= {"sensor_id", "timestamp", "variable", "value", "score", "severity", "reason"}
        assert p["severity"] in {"moderate", "high"}
        assert p["timestamp"].endswith("+00:00")
        json.dumps(f, allow_nan=False)


def test_alerts_from_anomalies_and_limit(results, tmp_path):
    ctx = FakeContext(results, tmp_path / "artifacts")
    out = app.generate_environmental_alerts(lookback_hours=None, ctx=ctx)
    fc = out["alerts"]
    check_feature_collection(fc)
    assert out["count"] == len(fc["features"]) == ctx.metrics["alerts_generated"] > 40
    written = json.loads(Path(out["path"]).read_text())
    assert written == fc and Path(out["path"]) == tmp_path / "artifacts" / "alerts.geojson"
    reasons = [f["properties"]["reason"] for f in fc["features"]]
    assert any("anomaly" in r for r in reasons) and any("above the limit 50" in r for r in reasons)
    # Most severe first; an anomalous reading above the limit is one alert, severity high.
    ranks = [app.SEVERITY_RANK[f["properties"]["severity"]] for f in fc["features"]]
    assert ranks == sorted(ranks, reverse=True)
    both = [
        f
        for f in fc["features"]
        if "anomaly" in f["properties"]["reason"] and "limit" in f["properties"]["reason"]
    ]
    assert both and all(f["properties"]["severity"] == "high" for f in both)
    keys = [(f["properties"]["sensor_id"], f["properties"]["timestamp"]) for f in fc["features"]]
    assert len(keys) == len(set(keys))


def test_alerts_filters(results, tmp_path):
    ctx = FakeContext(results, tmp_path)
    only_anomalies = app.generate_environmental_alerts(thresholds={}, lookback_hours=None, ctx=ctx)
    assert only_anomalies["count"] == len(results["anomalies"]["anomalies"])
    strong = app.generate_environmental_alerts(thresholds={}, min_score=8.0, lookback_hours=None, ctx=ctx)
    assert 0 < strong["count"] < only_anomalies["count"]
    assert all(f["properties"]["score"] >= 8.0 for f in strong["alerts"]["features"])
    # The default looks at the last 24 hours before the newest reading only.
    recent = app.generate_environmental_alerts(ctx=ctx)
    newest = (
        max(f["properties"]["timestamp"] for f in recent["alerts"]["features"]) if recent["count"] else None
    )
    assert recent["count"] < only_anomalies["count"]
    if newest:
        assert newest.startswith("2009-12-31")
    capped = app.generate_environmental_alerts(lookback_hours=None, max_alerts=5, ctx=ctx)
    assert capped["count"] == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": [50]}, "thresholds must be a mapping"),
        ({"thresholds": {"pm10": "high"}}, r"thresholds\['pm10'\]"),
        ({"min_score": "x"}, "min_score"),
        ({"lookback_hours": -1}, "lookback_hours"),
        ({"max_alerts": 0}, "max_alerts"),
    ],
)
def test_alerts_bad_parameters(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        app.generate_environmental_alerts(ctx=FakeContext({}, tmp_path), **kwargs)


def test_report_through_the_engine_with_provenance(settings, tmp_path):
    """A small real workflow: DATA -> TIME -> APP, the report carrying the run's own provenance."""
    from geo_infer_ops.orchestration import WorkflowOrchestrator

    for module, name in (("DATA", "load_sensor_data"), ("TIME", "temporal_analysis")):
        if registry.find(module, name) is None:
            pytest.skip(f"{module}.{name} is not there yet")
    workflow = {
        "name": "app_report_check",
        "steps": [
            {
                "name": "load",
                "module": "DATA",
                "action": "load_sensor_data",
                "parameters": {
                    "data_sources": ["sensors"],
                    "sensor_ids": ["DEBY047", "DENI063", "DEMV017"],
                    "time_range": "last_3_years",
                },
            },
            {"name": "time", "module": "TIME", "action": "temporal_analysis", "dependencies": ["load"]},
            {
                "name": "report",
                "module": "APP",
                "action": "generate_report",
                "dependencies": ["time"],
                "parameters": {"report_format": "both", "output_dir": str(tmp_path / "rep")},
            },
        ],
    }
    result = WorkflowOrchestrator(settings=settings).execute_workflow(workflow)
    assert result["status"] == "succeeded", result["steps"]
    out = result["outputs"]["report"]
    assert "series" in out["sections"] and "trends" in out["sections"]
    html = Path(out["html"]).read_text()
    assert result["workflow_id"] in html and "app_report_check" in html
    assert "TIME.temporal_analysis" in html and "last_3_years" in html
    for page in render_pages(Path(out["pdf"]), tmp_path / "png"):
        assert_not_blank(page)
