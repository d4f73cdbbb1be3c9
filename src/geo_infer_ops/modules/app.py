"""APP: reports and alerts built from the results of the other modules.

``generate_report`` / ``generate_environmental_report`` write a multi-page PDF (A4 portrait,
matplotlib ``PdfPages``) and/or an HTML page (Jinja2 template, figures as ``fig-*.png`` next to
it) with a section for every upstream result that exists: the sensor map with clusters and H3
hexes/hotspots, time series with trend and seasonal components, trend table, forecast fan
charts and backtest accuracy, anomalies, data quality, and the run's own provenance.

``generate_environmental_alerts`` turns anomalies and limit exceedances into GeoJSON point
features and writes ``alerts.geojson``.

Heavy libraries are imported inside the functions (see docs/modules/README.md).
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geo_infer_ops import action

from ._common import find_input, is_sensor_table, variables_of

REPORT_FORMATS = ("pdf", "html", "both")
DASH = "\u2013"  # shown for a missing value
A4_PORTRAIT = (8.27, 11.69)  # inches
PNG_DPI = 110
# EU daily limit value for PM10 (Directive 2008/50/EC, Annex XI): 50 µg/m³ as a 24-hour mean.
DEFAULT_THRESHOLDS = {"pm10": 50.0}
SEVERITY_RANK = {"moderate": 1, "high": 2}
# AI.detect_environmental_anomalies scores flagged readings >= 1 (1 = at its threshold); twice that is "high".
HIGH_SCORE = 2.0

# A calm palette: a dark blue for the main series, grey for context, red/blue for hot/cold.
INK = "#1f2933"
MUTED = "#7b8794"
ACCENT = "#1c5d99"
ACCENT_2 = "#e07a1f"
HOT = "#c62828"
COLD = "#1565c0"
RESULT_KEYS = (
    "data",
    "quality",
    "clusters",
    "hexes",
    "hotspots",
    "trends",
    "components",
    "forecast",
    "backtest",
    "anomalies",
)


# ---------------------------------------------------------------------------- the actions
@action("APP", "generate_environmental_report")
@action("APP", "generate_report")
def generate_report(
    report_format: str = "pdf",
    include_visualizations: bool = True,
    output_dir: str | None = None,
    title: str = "Environmental analysis report",
    max_series: int = 4,
    ctx: Any = None,
) -> dict[str, Any]:
    """Write a PDF and/or HTML report of the upstream results (maps, series, forecasts, anomalies).

    Parameters:
        report_format: ``pdf``, ``html`` or ``both``.
        include_visualizations: draw maps and charts; ``False`` writes the tables only.
        output_dir: folder for ``report.pdf``, ``report.html`` and ``fig-*.png`` (created if
            missing; relative to the current directory). Default: the step's artifact folder.
        title: the report's title.
        max_series: how many sensors get time-series and forecast panels (the ones with most
            readings).

    Returns ``{"pdf": path or None, "html": path or None, "figures": [paths], "output_dir": path,
    "sections": [names], "pages": int}``.
    """
    if ctx is None:
        raise ValueError("APP.generate_report needs the step context (ctx): run it as a workflow step")
    fmt = str(report_format).lower()
    if fmt not in REPORT_FORMATS:
        raise ValueError(f"report_format must be one of {', '.join(REPORT_FORMATS)}; got {report_format!r}")
    if not isinstance(include_visualizations, bool):
        raise ValueError(f"include_visualizations must be true or false; got {include_visualizations!r}")
    if not isinstance(max_series, int) or isinstance(max_series, bool) or not 1 <= max_series <= 12:
        raise ValueError(f"max_series must be an integer from 1 to 12; got {max_series!r}")

    out = _output_dir(output_dir, ctx)
    results = _gather(ctx)
    provenance = _provenance(ctx)
    sections = _build_sections(results, provenance, title=title, max_series=max_series)
    ctx.log.info("report: %d sections (%s) to %s", len(sections), ", ".join(s.key for s in sections), out)
    written = render_report(
        sections,
        out,
        report_format=fmt,
        include_visualizations=include_visualizations,
        title=title,
        provenance=provenance,
    )
    ctx.metric("report_sections", len(sections))
    return written


@action("APP", "generate_environmental_alerts")
def generate_environmental_alerts(
    thresholds: dict | None = None,
    min_score: float | None = None,
    output_dir: str | None = None,
    lookback_hours: float | None = 24.0,
    max_alerts: int = 1000,
    notify: bool = True,
    ctx: Any = None,
) -> dict[str, Any]:
    """Alerts as GeoJSON points from anomalies and readings above limits; writes alerts.geojson.

    Parameters:
        thresholds: ``{variable: limit}``; a reading above its limit is an alert. Default
            ``{"pm10": 50.0}`` (the EU daily limit value for PM10, µg/m³). ``{}`` turns them off.
        min_score: only anomalies with at least this score become alerts (default: all).
        output_dir: where ``alerts.geojson`` goes (default: the step's artifact folder).
        lookback_hours: only readings and anomalies within this many hours before the newest
            reading are considered (a monitoring run alerts on what is new); ``null`` = all.
        max_alerts: keep at most this many alerts (the most severe first).
        notify: send the alerts through the notifiers configured for the monitor
            (``SystemMonitor().configure_notifiers(...)`` or ``GEO_INFER_OPS_*`` settings); none
            configured means nothing is sent.

    Returns ``{"alerts": FeatureCollection, "path": str, "count": int, "notified": [deliveries]}``.
    """
    if ctx is None:
        raise ValueError("APP.generate_environmental_alerts needs the step context (ctx)")
    limits = _check_thresholds(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    if min_score is not None and (isinstance(min_score, bool) or not isinstance(min_score, int | float)):
        raise ValueError(f"min_score must be a number or null; got {min_score!r}")
    if lookback_hours is not None and (
        isinstance(lookback_hours, bool) or not isinstance(lookback_hours, int | float) or lookback_hours <= 0
    ):
        raise ValueError(f"lookback_hours must be a positive number or null; got {lookback_hours!r}")
    if isinstance(max_alerts, bool) or not isinstance(max_alerts, int) or max_alerts < 1:
        raise ValueError(f"max_alerts must be a positive integer; got {max_alerts!r}")

    data = find_input(ctx, "data", required=False)
    anomalies = find_input(ctx, "anomalies", required=False)
    if data is None and anomalies is None:
        find_input(ctx, "anomalies")  # raises, naming the upstream steps
    collection = build_alerts(
        data=data,
        anomalies=anomalies,
        thresholds=limits,
        min_score=min_score,
        lookback_hours=lookback_hours,
        max_alerts=max_alerts,
    )
    out = _output_dir(output_dir, ctx)
    path = out / "alerts.geojson"
    path.write_text(json.dumps(collection, indent=1, ensure_ascii=False))
    n = len(collection["features"])
    ctx.metric("alerts_generated", n)
    ctx.log.info("%d alert(s) written to %s", n, path)
    deliveries = _forward_to_notifiers(collection, ctx) if notify else []
    return {"alerts": collection, "path": str(path), "count": n, "notified": deliveries}


def _forward_to_notifiers(collection: dict[str, Any], ctx: Any) -> list[dict[str, Any]]:
    """Send the alerts through the monitor's notifiers (webhook, Slack, PagerDuty, email) if any is set."""
    from ..monitoring import SystemMonitor

    monitor = SystemMonitor()
    try:
        if not monitor.notifiers or not collection["features"]:
            return []
        alerts = []
        for feature in collection["features"]:
            props = feature["properties"]
            lon, lat = feature["geometry"]["coordinates"][:2]
            alerts.append(
                {
                    "labels": {
                        "alertname": "environmental_alert",
                        "sensor_id": props.get("sensor_id"),
                        "variable": props.get("variable"),
                        "severity": props.get("severity", "warning"),
                        "workflow": ctx.workflow,
                    },
                    "annotations": {
                        "summary": props.get("reason", ""),
                        "timestamp": props.get("timestamp", ""),
                        "location": f"{lat:.5f},{lon:.5f}",
                        "run_id": ctx.run_id,
                    },
                    "value": props.get("value"),
                }
            )
        deliveries = monitor.notify_alerts(alerts)
        ctx.log.info(
            "alerts sent to %s",
            ", ".join(f"{d['notifier']}({'ok' if d['ok'] else 'failed'})" for d in deliveries),
        )
        return deliveries
    finally:
        monitor.close()


# ---------------------------------------------------------------------------- alerts
def _check_thresholds(thresholds: Any) -> dict[str, float]:
    if not isinstance(thresholds, Mapping):
        raise ValueError(f"thresholds must be a mapping {{variable: limit}}; got {thresholds!r}")
    out = {}
    for var, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError(f"thresholds[{var!r}] must be a finite number; got {value!r}")
        out[str(var)] = float(value)
    return out


def build_alerts(
    *,
    data: Any = None,
    anomalies: Any = None,
    thresholds: Mapping[str, float] | None = None,
    min_score: float | None = None,
    lookback_hours: float | None = 24.0,
    max_alerts: int = 1000,
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of alerts (the pure part of generate_environmental_alerts)."""
    import pandas as pd

    thresholds = dict(thresholds or {})
    newest = None
    for table in (data, anomalies):
        if table is not None and len(table) and "timestamp" in table.columns:
            t = pd.to_datetime(table["timestamp"], utc=True).max()
            newest = t if newest is None else max(newest, t)
    since = None if lookback_hours is None or newest is None else newest - pd.Timedelta(hours=lookback_hours)

    alerts: dict[tuple, dict[str, Any]] = {}

    def add(sensor, ts, variable, value, lon, lat, score, method, reason, severity, limit=None):
        key = (str(sensor), ts, str(variable))
        item = alerts.get(key)
        if item is None:
            alerts[key] = {
                "sensor_id": str(sensor),
                "timestamp": ts,
                "variable": str(variable),
                "value": value,
                "score": score,
                "severity": severity,
                "reasons": [reason],
                "methods": [method] if method else [],
                "threshold": limit,
                "lon": lon,
                "lat": lat,
            }
            return
        # The same reading is both anomalous and above its limit: one alert, the higher severity.
        item["reasons"].append(reason)
        item["severity"] = "high"
        if score is not None and (item["score"] is None or score > item["score"]):
            item["score"] = score
        if method and method not in item["methods"]:
            item["methods"].append(method)
        if limit is not None:
            item["threshold"] = limit

    if anomalies is not None and len(anomalies):
        a = pd.DataFrame(anomalies).copy()
        a["timestamp"] = pd.to_datetime(a["timestamp"], utc=True)
        if since is not None:
            a = a[a["timestamp"] >= since]
        if min_score is not None and "score" in a.columns:
            a = a[a["score"] >= float(min_score)]
        lon, lat = _lon_lat(a, anomalies, data)
        for i, row in enumerate(a.itertuples(index=False)):
            score = _num(getattr(row, "score", None))
            method = str(getattr(row, "method", "") or "")
            reason = f"anomaly ({method})" if method else "anomaly"
            if score is not None:
                reason += f", score {score:.2f}"
            add(
                row.sensor_id,
                row.timestamp,
                getattr(row, "variable", ""),
                _num(getattr(row, "value", None)),
                lon[i],
                lat[i],
                score,
                method,
                reason,
                "high" if score is not None and score >= HIGH_SCORE else "moderate",
            )

    if data is not None and thresholds and len(data):
        d = pd.DataFrame(data)
        present = [v for v in thresholds if v in d.columns]
        if present:
            d = d[["sensor_id", "timestamp", "latitude", "longitude", *present]].copy()
            d["timestamp"] = pd.to_datetime(d["timestamp"], utc=True)
            if since is not None:
                d = d[d["timestamp"] >= since]
            for var in present:
                limit = thresholds[var]
                over = d[d[var] > limit]
                for row in over.itertuples(index=False):
                    value = float(getattr(row, var))
                    severity = "high" if value >= 2 * limit else "moderate"
                    reason = f"{var} {value:.1f} above the limit {limit:g}"
                    add(
                        row.sensor_id,
                        row.timestamp,
                        var,
                        value,
                        float(row.longitude),
                        float(row.latitude),
                        None,
                        "",
                        reason,
                        severity,
                        limit,
                    )

    items = sorted(
        alerts.values(),
        key=lambda x: (
            -SEVERITY_RANK[x["severity"]],
            -(x["score"] if x["score"] is not None else -math.inf),
            -(x["value"] if x["value"] is not None else -math.inf),
            x["timestamp"],
            x["sensor_id"],
        ),
    )[:max_alerts]
    features = []
    for x in items:
        if x["lon"] is None or x["lat"] is None:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [round(x["lon"], 6), round(x["lat"], 6)]},
                "properties": {
                    "sensor_id": x["sensor_id"],
                    "timestamp": x["timestamp"].isoformat(),
                    "variable": x["variable"],
                    "value": x["value"],
                    "score": x["score"],
                    "severity": x["severity"],
                    "reason": "; ".join(x["reasons"]),
                    "method": ", ".join(x["methods"]) or None,
                    "threshold": x["threshold"],
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _lon_lat(rows: Any, original: Any, data: Any) -> tuple[list, list]:
    """Longitude/latitude of each anomaly: its geometry, its columns, or its sensor's position."""
    n = len(rows)
    if "geometry" in rows.columns:
        geoms = list(rows["geometry"])
        lon = [g.x if g is not None and not g.is_empty else None for g in geoms]
        lat = [g.y if g is not None and not g.is_empty else None for g in geoms]
        if all(v is not None for v in lon):
            return lon, lat
    if {"longitude", "latitude"} <= set(rows.columns):
        return [float(v) for v in rows["longitude"]], [float(v) for v in rows["latitude"]]
    if data is not None and {"longitude", "latitude"} <= set(data.columns):
        pos = data.groupby("sensor_id")[["longitude", "latitude"]].first()
        lon = [float(pos.loc[s, "longitude"]) if s in pos.index else None for s in rows["sensor_id"]]
        lat = [float(pos.loc[s, "latitude"]) if s in pos.index else None for s in rows["sensor_id"]]
        return lon, lat
    return [None] * n, [None] * n


# ---------------------------------------------------------------------------- inputs
def _output_dir(output_dir: str | None, ctx: Any) -> Path:
    out = Path(output_dir).expanduser() if output_dir else Path(ctx.artifacts.dir)
    out = out if out.is_absolute() else Path.cwd() / out
    out.mkdir(parents=True, exist_ok=True)
    return out


def _gather(ctx: Any) -> dict[str, Any]:
    """Every upstream result the report knows about, by contract key."""
    found = {key: find_input(ctx, key, required=False) for key in RESULT_KEYS}
    # The map wants the readings with their cluster: prefer a sensor table that has one.
    for source in (ctx.inputs, ctx.ancestors):
        for name in reversed(list(source)):
            value = source[name]
            table = value.get("data") if isinstance(value, Mapping) else value
            if is_sensor_table(table) and "cluster" in table.columns:
                found["data"] = table
                break
        else:
            continue
        break
    for key in ("model", "horizon_days", "summary"):
        found[key] = find_input(ctx, key, required=False)
    return found


def _provenance(ctx: Any) -> dict[str, Any]:
    """Workflow, run id, parameters, step statuses and timings (from the state store)."""
    import datetime as dt

    prov: dict[str, Any] = {
        "workflow": getattr(ctx, "workflow", ""),
        "run_id": getattr(ctx, "run_id", ""),
        "step": getattr(ctx, "step", ""),
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "steps": [],
        "parameters": {},
        "overrides": {},
        "started_at": None,
        "description": "",
    }
    try:
        record = ctx.run_record()
    except Exception as exc:  # no store (e.g. called outside the engine): the report still works
        ctx.log.info("no run record for the report's provenance: %s", exc)
        return prov
    run, steps, definition = record.get("run", {}), record.get("steps", []), record.get("definition", {})
    prov["workflow"] = run.get("name") or prov["workflow"]
    prov["run_id"] = run.get("id") or prov["run_id"]
    prov["overrides"] = run.get("params") or {}
    prov["description"] = definition.get("description") or ""
    if run.get("started_at"):
        prov["started_at"] = dt.datetime.fromtimestamp(run["started_at"], dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
    prov["parameters"] = {s.get("name"): s.get("parameters") or {} for s in definition.get("steps", [])}
    prov["fallbacks"] = (definition.get("error_handling") or {}).get("fallback_actions") or {}
    prov["steps"] = [
        {
            "step": s.get("step"),
            "action": f"{s.get('module')}.{s.get('action')}",
            "status": s.get("status"),
            "attempts": s.get("attempts"),
            "duration_s": s.get("duration_s"),
            "used_fallback": bool(s.get("used_fallback")),
        }
        for s in steps
    ]
    return prov


# ---------------------------------------------------------------------------- formatting
def _fmt(value: Any, kind: str = "") -> str:
    import pandas as pd

    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            value = value.tz_convert("UTC")
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, int | float) or hasattr(value, "dtype"):
        try:
            x = float(value)
        except (TypeError, ValueError):
            return str(value)
        if not math.isfinite(x):
            return DASH
        if kind == "p":
            return "<0.001" if x < 0.001 else f"{x:.3f}"
        if kind == "pct":
            return f"{100 * x:.1f} %"
        if float(x).is_integer() and abs(x) < 1e12 and kind != "float":
            return f"{int(x):,}"
        ax = abs(x)
        if ax >= 1000:
            return f"{x:,.0f}"
        if ax >= 10:
            return f"{x:.1f}"
        if ax >= 0.01:
            return f"{x:.2f}"
        return f"{x:.2g}"
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, default=str, ensure_ascii=False)
        return text if kind == "full" or len(text) <= 90 else text[:87] + "..."
    return str(value)


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[str]]
    align: list[str] = field(default_factory=list)  # "l" or "r" per column

    def __post_init__(self) -> None:
        if not self.align:
            self.align = ["l"] + ["r"] * (len(self.columns) - 1)


@dataclass
class Section:
    key: str
    title: str
    intro: str
    draw: Callable[[Any, tuple[float, float, float, float]], None] | None = None
    fig_size: tuple[float, float] = (8.0, 5.0)  # standalone PNG size, inches
    tables: list[Table] = field(default_factory=list)


def _df_table(caption: str, df: Any, formats: Mapping[str, str] | None = None) -> Table:
    formats = dict(formats or {})
    rows = [
        [_fmt(v, formats.get(c, "")) for c, v in zip(df.columns, rec, strict=True)]
        for rec in df.itertuples(index=False)
    ]
    import pandas as pd

    align = [
        "r" if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) else "l"
        for c in df.columns
    ]
    if align:
        align[0] = "l"
    return Table(caption, [str(c) for c in df.columns], rows, align)


# ---------------------------------------------------------------------------- sections
def _naive_utc(series: Any) -> Any:
    import pandas as pd

    ts = pd.to_datetime(series, utc=True)
    return ts.dt.tz_localize(None) if hasattr(ts, "dt") else ts.tz_localize(None)


def _sensor_positions(data: Any) -> Any:
    """One row per sensor: longitude, latitude, readings, cluster (if any)."""
    cols = {"longitude": "first", "latitude": "first", "timestamp": "size"}
    if "cluster" in data.columns:
        cols["cluster"] = "first"
    pos = data.groupby("sensor_id", sort=True).agg(cols).rename(columns={"timestamp": "n_readings"})
    return pos


def _primary_variable(results: Mapping[str, Any]) -> str | None:
    for key in ("components", "trends", "forecast", "anomalies"):
        table = results.get(key)
        if table is not None and len(table) and "variable" in table.columns:
            counts = table["variable"].astype(str).value_counts()
            return sorted(counts.index, key=lambda v: (-counts[v], v))[0]
    data = results.get("data")
    if data is not None:
        variables = variables_of(data)
        if "pm10" in variables:
            return "pm10"
        return variables[0] if variables else None
    return None


def _top_sensors(results: Mapping[str, Any], among: Any, n: int) -> list[str]:
    """The ``n`` sensors with most readings (ties by id), restricted to the ids in ``among``."""
    allowed = sorted({str(s) for s in among})
    data = results.get("data")
    counts = data["sensor_id"].astype(str).value_counts() if data is not None and len(data) else {}
    return sorted(allowed, key=lambda s: (-int(counts.get(s, 0)), s))[:n]


def _build_sections(
    results: Mapping[str, Any], provenance: Mapping[str, Any], *, title: str, max_series: int
) -> list[Section]:
    sections = [_title_section(results, provenance, title)]
    data = results.get("data")
    has_data = data is not None and len(data) > 0 and {"longitude", "latitude"} <= set(data.columns)
    if has_data or results.get("hexes") is not None or results.get("hotspots") is not None:
        sections.append(_map_section(results))
    if results.get("components") is not None and len(results["components"]):
        sections.append(_series_section(results, max_series))
    if results.get("trends") is not None and len(results["trends"]):
        sections.append(_trend_section(results))
    if (results.get("forecast") is not None and len(results["forecast"])) or (
        results.get("backtest") is not None and len(results["backtest"])
    ):
        sections.append(_forecast_section(results, max_series))
    if results.get("anomalies") is not None:
        sections.append(_anomaly_section(results))
    if results.get("quality") is not None or has_data:
        sections.append(_quality_section(results))
    return sections


def _title_section(results: Mapping[str, Any], prov: Mapping[str, Any], title: str) -> Section:
    import pandas as pd

    facts: list[tuple[str, str]] = []
    data = results.get("data")
    if data is not None and len(data):
        ts = pd.to_datetime(data["timestamp"], utc=True)
        facts += [
            ("Readings", _fmt(len(data))),
            ("Sensors", _fmt(data["sensor_id"].nunique())),
            ("Period", f"{_fmt(ts.min())} to {_fmt(ts.max())}"),
            ("Variables", ", ".join(variables_of(data)) or DASH),
        ]
    quality = results.get("quality")
    if isinstance(quality, Mapping) and "data_quality_score" in quality:
        facts.append(("Data quality score", _fmt(quality["data_quality_score"], "pct")))
    clusters = results.get("clusters")
    if clusters is not None:
        summary = results.get("summary") if isinstance(results.get("summary"), Mapping) else {}
        noise = summary.get("n_noise")
        facts.append(
            (
                "Spatial clusters",
                _fmt(len(clusters)) + (f" ({_fmt(noise)} noise sensors)" if noise is not None else ""),
            )
        )
    if results.get("hexes") is not None:
        facts.append(("H3 cells", _fmt(len(results["hexes"]))))
    hot = results.get("hotspots")
    if hot is not None and "hotspot" in hot.columns:
        facts.append(
            (
                "Hot / cold spots",
                f"{int((hot['hotspot'] == 'hot').sum())} / {int((hot['hotspot'] == 'cold').sum())}",
            )
        )
    trends = results.get("trends")
    if trends is not None and len(trends):
        sig = trends[trends["p_value"] < 0.05]
        facts.append(
            (
                "Significant trends (p < 0.05)",
                f"{len(sig)} of {len(trends)} series; {int((sig['slope_per_year'] < 0).sum())} falling, "
                f"{int((sig['slope_per_year'] > 0).sum())} rising",
            )
        )
    forecast = results.get("forecast")
    if forecast is not None and len(forecast):
        horizon = results.get("horizon_days")
        facts.append(
            (
                "Forecast",
                f"{results.get('model') or 'model'}, {_fmt(horizon) if horizon else '?'} days ahead, "
                f"{forecast['sensor_id'].nunique()} sensors",
            )
        )
    backtest = results.get("backtest")
    if backtest is not None and len(backtest) and "accuracy" in backtest.columns:
        facts.append(("Backtest accuracy (mean)", _fmt(float(backtest["accuracy"].mean()), "pct")))
    anomalies = results.get("anomalies")
    if anomalies is not None:
        facts.append(("Anomalies", _fmt(len(anomalies))))
    if not facts:
        facts.append(("Upstream results", "none found"))

    tables = [Table("Summary", ["item", "value"], [[k, v] for k, v in facts], ["l", "l"])]
    run_rows = [
        ["Workflow", str(prov.get("workflow") or DASH)],
        ["Run id", str(prov.get("run_id") or DASH)],
        ["Started", str(prov.get("started_at") or DASH)],
        ["Report generated", str(prov.get("generated_at"))],
    ]
    if prov.get("overrides"):
        run_rows.append(["Parameter overrides", _fmt(prov["overrides"], "full")])
    if prov.get("fallbacks"):
        run_rows.append(["Fallbacks", _fmt(prov["fallbacks"])])
    tables.append(Table("Run", ["item", "value"], run_rows, ["l", "l"]))
    if prov.get("steps"):
        params = prov.get("parameters") or {}
        rows = []
        for s in prov["steps"]:
            status = s["status"] + (" (fallback)" if s["used_fallback"] else "")
            duration = "running" if s["status"] == "running" else _fmt(s["duration_s"], "float")
            rows.append(
                [
                    s["step"],
                    s["action"],
                    status,
                    _fmt(s["attempts"]),
                    duration,
                    _fmt(params.get(s["step"], {}) or DASH, "full"),
                ]
            )
        tables.append(
            Table(
                "Steps: status, attempts, duration (s) and parameters so far",
                ["step", "action", "status", "attempts", "seconds", "parameters"],
                rows,
                ["l", "l", "l", "r", "r", "l"],
            )
        )
    intro = prov.get("description") or "Results of a geo-infer-ops workflow run."
    return Section("summary", title, intro, None, tables=tables)


# -- map ---------------------------------------------------------------------------------
def _cluster_colors(labels: list[int]) -> dict[int, Any]:
    import matplotlib as mpl

    real = sorted({c for c in labels if c != -1})
    cmap = mpl.colormaps["tab10" if len(real) <= 10 else "tab20"]
    colors = {c: cmap(i % cmap.N) for i, c in enumerate(real)}
    colors[-1] = (0.62, 0.62, 0.62, 1.0)
    return colors


def _geo_axes(ax: Any, bounds: tuple[float, float, float, float]) -> None:
    """Lon/lat graticule, degree labels and an aspect that keeps shapes right at that latitude."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    x0, y0, x1, y1 = bounds
    pad_x = max(0.3, 0.06 * (x1 - x0))
    pad_y = max(0.3, 0.06 * (y1 - y0))
    ax.set_xlim(x0 - pad_x, x1 + pad_x)
    ax.set_ylim(y0 - pad_y, y1 + pad_y)
    mid = math.radians((y0 + y1) / 2)
    ax.set_aspect(1 / max(0.2, math.cos(mid)), adjustable="box")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=7, steps=[1, 2, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}°{'E' if v >= 0 else 'W'}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{abs(v):g}°{'N' if v >= 0 else 'S'}"))
    ax.grid(True, color="#d0d5da", linewidth=0.6, linestyle="-")
    ax.set_axisbelow(True)
    ax.set_facecolor("#f7f9fb")
    for spine in ax.spines.values():
        spine.set_color("#9aa5b1")


def _date_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _polygons(gdf: Any) -> list[Any]:
    """Exterior rings of (multi)polygons as (N, 2) arrays."""
    import numpy as np

    out = []
    for geom in gdf.geometry:
        if geom is None or geom.is_empty:
            continue
        parts = getattr(geom, "geoms", [geom])
        for part in parts:
            if hasattr(part, "exterior"):
                out.append(np.asarray(part.exterior.coords)[:, :2])
    return out


def _bounds(results: Mapping[str, Any]) -> tuple[float, float, float, float]:
    xs, ys = [], []
    data = results.get("data")
    if data is not None and len(data):
        xs += [float(data["longitude"].min()), float(data["longitude"].max())]
        ys += [float(data["latitude"].min()), float(data["latitude"].max())]
    for key in ("hexes", "hotspots"):
        g = results.get(key)
        if g is not None and len(g) and hasattr(g, "total_bounds"):
            b = g.total_bounds
            xs += [float(b[0]), float(b[2])]
            ys += [float(b[1]), float(b[3])]
    if not xs:
        return (-1.0, -1.0, 1.0, 1.0)
    return (min(xs), min(ys), max(xs), max(ys))


def _map_section(results: Mapping[str, Any]) -> Section:
    data = results.get("data")
    clusters = results.get("clusters")
    hexes = results.get("hexes")
    hotspots = results.get("hotspots")
    var = _primary_variable(results)
    pos = _sensor_positions(data) if data is not None and len(data) else None

    def draw(fig: Any, box: tuple[float, float, float, float]) -> None:
        from matplotlib.collections import PolyCollection
        from matplotlib.lines import Line2D

        gs = fig.add_gridspec(1, 1, left=box[0], bottom=box[1], right=box[2], top=box[3])
        ax = fig.add_subplot(gs[0])
        _geo_axes(ax, _bounds(results))
        handles = []
        if hexes is not None and len(hexes):
            col = f"{var}_mean" if var and f"{var}_mean" in hexes.columns else "count"
            if col in hexes.columns:
                polys = _polygons(hexes)
                pc = PolyCollection(
                    polys,
                    array=hexes[col].to_numpy(dtype=float)[: len(polys)],
                    cmap="YlOrBr",
                    edgecolor="white",
                    linewidth=0.4,
                    alpha=0.6,
                    zorder=1,
                )
                ax.add_collection(pc)
                label = f"mean {var} per H3 cell" if col.endswith("_mean") else "readings per H3 cell"
                fig.colorbar(pc, ax=ax, fraction=0.035, pad=0.02, shrink=0.7).set_label(label, fontsize=8)
        if hotspots is not None and len(hotspots) and "hotspot" in hotspots.columns:
            for kind, color in (("hot", HOT), ("cold", COLD)):
                sel = hotspots[hotspots["hotspot"] == kind]
                if len(sel):
                    ax.add_collection(
                        PolyCollection(
                            _polygons(sel), facecolor="none", edgecolor=color, linewidth=1.4, zorder=2
                        )
                    )
                    handles.append(Line2D([], [], color=color, linewidth=1.4, label=f"{kind} spot (Gi*)"))
        if pos is not None:
            if "cluster" in pos.columns:
                labels = [int(c) for c in pos["cluster"].fillna(-1)]
                colors = _cluster_colors(labels)
                ax.scatter(
                    pos["longitude"],
                    pos["latitude"],
                    c=[colors[c] for c in labels],
                    s=34,
                    edgecolor=INK,
                    linewidth=0.5,
                    zorder=3,
                )
                n_clusters = len({c for c in labels if c != -1})
                handles.append(
                    Line2D(
                        [],
                        [],
                        marker="o",
                        linestyle="",
                        color=colors.get(0, ACCENT),
                        label=f"sensor, coloured by cluster ({n_clusters})",
                    )
                )
                if -1 in labels:
                    handles.append(
                        Line2D(
                            [],
                            [],
                            marker="o",
                            linestyle="",
                            color=colors[-1],
                            label="sensor, noise (no cluster)",
                        )
                    )
            else:
                ax.scatter(
                    pos["longitude"],
                    pos["latitude"],
                    color=ACCENT,
                    s=30,
                    edgecolor="white",
                    linewidth=0.6,
                    zorder=3,
                )
                handles.append(Line2D([], [], marker="o", linestyle="", color=ACCENT, label="sensor"))
        if clusters is not None and len(clusters) and hasattr(clusters, "geometry"):
            cx = [g.x for g in clusters.geometry]
            cy = [g.y for g in clusters.geometry]
            ax.scatter(cx, cy, marker="X", s=70, color=INK, edgecolor="white", linewidth=0.8, zorder=4)
            for x, y, c in zip(cx, cy, clusters["cluster"], strict=True):
                ax.annotate(
                    str(c),
                    (x, y),
                    xytext=(5, 4),
                    textcoords="offset points",
                    fontsize=7.5,
                    color=INK,
                    weight="bold",
                    zorder=5,
                )
            handles.append(Line2D([], [], marker="X", linestyle="", color=INK, label="cluster centroid"))
        if handles:
            ax.legend(handles=handles, loc="upper left", fontsize=7.5, frameon=True, framealpha=0.9)
        ax.set_title(
            "Sensors, clusters and H3 cells" if hexes is not None else "Sensors and clusters",
            fontsize=10,
            loc="left",
        )

    tables = []
    if clusters is not None and len(clusters):
        c = clusters.drop(columns=["geometry"], errors="ignore").copy()
        if hasattr(clusters, "geometry"):
            c["centroid"] = [f"{g.y:.2f}°N {g.x:.2f}°E" for g in clusters.geometry]
        c = (
            c.sort_values(["n_sensors", "cluster"], ascending=[False, True])
            if "n_sensors" in c.columns
            else c
        )
        keep = [k for k in ("cluster", "n_sensors", "n_readings", "centroid") if k in c.columns]
        keep += [k for k in c.columns if k not in keep and k not in ("latitude", "longitude")][:3]
        tables.append(_df_table(f"Clusters (largest {min(12, len(c))} of {len(c)})", c[keep].head(12)))
    if hotspots is not None and len(hotspots) and "gi_z" in hotspots.columns:
        h = hotspots.drop(columns=["geometry"], errors="ignore")
        h = h[h["hotspot"] != "none"] if "hotspot" in h.columns else h
        h = h.reindex(h["gi_z"].abs().sort_values(ascending=False).index).head(8)
        if len(h):
            tables.append(_df_table("Strongest hot and cold spots (Getis-Ord Gi*)", h, {"p_value": "p"}))
    intro = (
        "Sensor locations coloured by spatial cluster (grey: noise), with cluster centroids. "
        "Longitude/latitude graticule in WGS84; no basemap."
    )
    if hexes is not None:
        intro += " H3 cells are shaded by their mean value; hot and cold spots are outlined."
    return Section("map", "Spatial patterns", intro, draw, (8.0, 7.5), tables)


# -- time series ---------------------------------------------------------------------------
def _series_section(results: Mapping[str, Any], max_series: int) -> Section:
    comps = results["components"]
    var = _primary_variable(results)
    comps = comps[comps["variable"].astype(str) == var] if var and "variable" in comps.columns else comps
    sensors = _top_sensors(results, comps["sensor_id"].astype(str).unique(), max_series)

    def draw(fig: Any, box: tuple[float, float, float, float]) -> None:
        n = len(sensors)
        outer = fig.add_gridspec(
            n, 1, left=box[0] + 0.04, bottom=box[1], right=box[2], top=box[3], hspace=0.3
        )
        for i, sensor in enumerate(sensors):
            c = comps[comps["sensor_id"].astype(str) == sensor].sort_values("timestamp")
            t = _naive_utc(c["timestamp"]).to_numpy()
            gs = outer[i].subgridspec(2, 1, height_ratios=[3, 1.2], hspace=0.08)
            ax = fig.add_subplot(gs[0])
            ax.plot(t, c["observed"], color="#b8c2cc", linewidth=0.5, label="observed")
            ax.plot(t, c["trend"], color=ACCENT, linewidth=1.8, label="trend")
            ax.set_title(f"{sensor}: {var}", fontsize=9, loc="left", pad=3)
            ax.tick_params(labelsize=7.5, labelbottom=False)
            ax.grid(True, color="#e4e7eb", linewidth=0.5)
            if i == 0:
                ax.legend(loc="upper right", fontsize=7.5, ncols=2, frameon=False)
            ax2 = fig.add_subplot(gs[1], sharex=ax)
            ax2.plot(t, c["seasonal"], color=ACCENT_2, linewidth=0.9)
            ax2.axhline(0, color="#9aa5b1", linewidth=0.5)
            ax2.set_ylabel("seasonal", fontsize=7.5)
            ax2.tick_params(labelsize=7.5, labelbottom=i == n - 1)
            _date_axis(ax2)
            ax2.grid(True, color="#e4e7eb", linewidth=0.5)

    period = results.get("period")
    intro = (
        f"Observed {var} (grey) with the trend (blue) and the seasonal component (orange, below) "
        f"of the decomposition, for the {len(sensors)} sensors with the most readings."
    )
    if period:
        intro += f" Seasonal period: {period} samples."
    return Section("series", "Time series: trend and seasonality", intro, draw, (8.0, 2.4 * len(sensors)))


def _trend_section(results: Mapping[str, Any]) -> Section:
    trends = results["trends"].copy()
    var = _primary_variable(results)
    data = results.get("data")
    # Significant trends first (steepest first), then the others: a steep slope from a short,
    # noisy series says little.
    ranked = trends.assign(_sig=trends["p_value"] < 0.05, _abs=trends["slope_per_year"].abs())
    top = ranked.sort_values(["_sig", "_abs", "sensor_id"], ascending=[False, False, True]).head(15)
    from .time import TREND_COLUMNS

    cols = [c for c in TREND_COLUMNS if c in top.columns]
    table = _df_table(
        f"Steepest significant trends ({len(top)} of {len(trends)} series; slope in units per year)",
        top[cols],
        {"p_value": "p", "slope_per_year": "float", "seasonal_amplitude": "float", "residual_std": "float"},
    )
    draw = None
    if data is not None and len(data) and {"longitude", "latitude"} <= set(data.columns):
        pos = _sensor_positions(data)
        t = trends[trends["variable"].astype(str) == var] if var else trends
        t = t.assign(sensor_id=t["sensor_id"].astype(str)).set_index("sensor_id")
        t = t.join(pos, how="inner")

        def draw(fig: Any, box: tuple[float, float, float, float]) -> None:
            from matplotlib.colors import TwoSlopeNorm
            from matplotlib.lines import Line2D

            gs = fig.add_gridspec(1, 1, left=box[0], bottom=box[1], right=box[2], top=box[3])
            ax = fig.add_subplot(gs[0])
            _geo_axes(ax, _bounds(results))
            if not len(t):
                return
            lim = max(1e-9, float(t["slope_per_year"].abs().quantile(0.95)))
            norm = TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
            sig = t["p_value"] < 0.05
            sc = ax.scatter(
                t["longitude"],
                t["latitude"],
                c=t["slope_per_year"],
                cmap="RdBu_r",
                norm=norm,
                s=[46 if s else 26 for s in sig],
                edgecolor=[INK if s else "#9aa5b1" for s in sig],
                linewidth=0.8,
                zorder=3,
            )
            fig.colorbar(sc, ax=ax, fraction=0.035, pad=0.02, shrink=0.7, extend="both").set_label(
                f"{var} trend per year", fontsize=8
            )
            ax.legend(
                handles=[
                    Line2D(
                        [],
                        [],
                        marker="o",
                        linestyle="",
                        markerfacecolor="#ccc",
                        markeredgecolor=INK,
                        markersize=7,
                        label="significant (p < 0.05)",
                    )
                ],
                loc="upper left",
                fontsize=7.5,
            )
            ax.set_title(f"Trend of {var} per sensor", fontsize=10, loc="left")

    intro = (
        "Linear trend of each series after removing the seasonal component, with its p-value; "
        "on the map, significant trends have a dark outline (blue falling, red rising)."
    )
    return Section("trends", "Trends", intro, draw, (8.0, 6.5), [table])


# -- forecast ------------------------------------------------------------------------------
def _forecast_section(results: Mapping[str, Any], max_series: int) -> Section:
    forecast = results.get("forecast")
    backtest = results.get("backtest")
    data = results.get("data")
    comps = results.get("components")
    var = _primary_variable(results)
    draw = None
    sensors: list[str] = []
    if forecast is not None and len(forecast):
        fc = (
            forecast[forecast["variable"].astype(str) == var]
            if var and "variable" in forecast.columns
            else forecast
        )
        sensors = _top_sensors(results, fc["sensor_id"].astype(str).unique(), max_series)

        def history(sensor: str) -> Any:
            if data is not None and var in getattr(data, "columns", []):
                h = data[data["sensor_id"].astype(str) == sensor][["timestamp", var]]
                return h.rename(columns={var: "value"})
            if comps is not None:
                h = comps[(comps["sensor_id"].astype(str) == sensor) & (comps["variable"].astype(str) == var)]
                return h[["timestamp", "observed"]].rename(columns={"observed": "value"})
            return None

        def draw(fig: Any, box: tuple[float, float, float, float]) -> None:
            import pandas as pd

            n = len(sensors)
            ncols = 2 if n > 1 else 1
            nrows = math.ceil(n / ncols)
            gs = fig.add_gridspec(
                nrows,
                ncols,
                left=box[0] + 0.03,
                bottom=box[1],
                right=box[2],
                top=box[3],
                hspace=0.45,
                wspace=0.25,
            )
            for i, sensor in enumerate(sensors):
                ax = fig.add_subplot(gs[i // ncols, i % ncols])
                f = fc[fc["sensor_id"].astype(str) == sensor].sort_values("timestamp")
                tf = _naive_utc(f["timestamp"]).to_numpy()
                h = history(sensor)
                if h is not None and len(h):
                    h = h.sort_values("timestamp")
                    start = pd.to_datetime(f["timestamp"], utc=True).min()
                    h = h[pd.to_datetime(h["timestamp"], utc=True) < start].tail(max(60, 8 * len(f)))
                    ax.plot(
                        _naive_utc(h["timestamp"]).to_numpy(),
                        h["value"],
                        color=INK,
                        linewidth=0.9,
                        label="observed",
                    )
                if {"lower_95", "upper_95"} <= set(f.columns):
                    ax.fill_between(
                        tf, f["lower_95"], f["upper_95"], color=ACCENT, alpha=0.18, linewidth=0, label="95 %"
                    )
                if {"lower_80", "upper_80"} <= set(f.columns):
                    ax.fill_between(
                        tf, f["lower_80"], f["upper_80"], color=ACCENT, alpha=0.35, linewidth=0, label="80 %"
                    )
                ax.plot(
                    tf, f["mean"], color=ACCENT, linewidth=1.6, marker="o", markersize=2.5, label="forecast"
                )
                ax.set_title(f"{sensor}: {var}", fontsize=9, loc="left", pad=3)
                ax.tick_params(labelsize=7)
                ax.grid(True, color="#e4e7eb", linewidth=0.5)
                _date_axis(ax)
                if i == 0:
                    ax.legend(fontsize=7, loc="upper left", frameon=False, ncols=2)

    tables = []
    if backtest is not None and len(backtest):
        bt = backtest.copy()
        cols = [c for c in ("sensor_id", "variable", "mae", "rmse", "mape", "accuracy") if c in bt.columns]
        shown = bt[bt["sensor_id"].astype(str).isin(sensors)] if sensors else bt.head(0)
        if len(shown) == 0:
            shown = bt.sort_values("sensor_id").head(max_series)
        numeric = [c for c in ("mae", "rmse", "mape", "accuracy") if c in bt.columns]
        overall = {c: float(bt[c].mean()) for c in numeric}
        overall.update({"sensor_id": f"mean of {bt['sensor_id'].nunique()} sensors", "variable": var or ""})
        import pandas as pd

        table_df = pd.concat([shown[cols], pd.DataFrame([overall])[cols]], ignore_index=True)
        fmts = {"accuracy": "pct", "mae": "float", "rmse": "float", "mape": "float"}
        tables.append(_df_table(f"Backtest of the model ({results.get('model') or 'model'})", table_df, fmts))
    horizon = results.get("horizon_days")
    days_ahead = forecast["timestamp"].nunique() if forecast is not None else "?"
    intro = (
        f"Forecast of {var} {horizon or days_ahead} days ahead "
        f"({results.get('model') or 'model'}): mean with 80 % and 95 % prediction intervals after the "
        "recent observations. The backtest scores the same model on held-out recent data."
    )
    return Section(
        "forecast", "Forecast", intro, draw, (8.0, 3.0 * math.ceil(max(1, len(sensors)) / 2)), tables
    )


# -- anomalies -----------------------------------------------------------------------------
def _anomaly_section(results: Mapping[str, Any]) -> Section:
    import pandas as pd

    anomalies = results["anomalies"]
    data = results.get("data")
    a = pd.DataFrame(anomalies).drop(columns=["geometry"], errors="ignore")
    if len(a):
        lon, lat = _lon_lat(pd.DataFrame(anomalies), anomalies, data)
        a["longitude"], a["latitude"] = lon, lat
    sort = ["score", "timestamp"] if "score" in a.columns else ["timestamp"]
    top = a.sort_values(sort, ascending=False).head(20) if len(a) else a
    cols = [c for c in ("sensor_id", "timestamp", "variable", "value", "score", "method") if c in top.columns]
    table = _df_table(
        f"Top {len(top)} of {len(a)} anomalies by score" if len(a) else "No anomalies were found",
        top[cols],
        {"value": "float", "score": "float"},
    )
    draw = None
    if len(a) and (data is not None or a["longitude"].notna().any()):
        per_sensor = a.groupby("sensor_id").agg(
            n=("timestamp", "size"),
            max_score=("score", "max") if "score" in a.columns else ("timestamp", "size"),
            longitude=("longitude", "first"),
            latitude=("latitude", "first"),
        )
        pos = _sensor_positions(data) if data is not None and len(data) else None

        def draw(fig: Any, box: tuple[float, float, float, float]) -> None:
            gs = fig.add_gridspec(
                1, 2, left=box[0], bottom=box[1], right=box[2], top=box[3], width_ratios=[1.25, 1], wspace=0.3
            )
            ax = fig.add_subplot(gs[0])
            _geo_axes(ax, _bounds(results))
            if pos is not None:
                ax.scatter(pos["longitude"], pos["latitude"], s=10, color="#c3cad2", zorder=2, label="sensor")
            sizes = 15 + 85 * (per_sensor["n"] / per_sensor["n"].max())
            sc = ax.scatter(
                per_sensor["longitude"],
                per_sensor["latitude"],
                s=sizes,
                c=per_sensor["max_score"],
                cmap="Reds",
                edgecolor=INK,
                linewidth=0.5,
                zorder=3,
                vmin=0,
            )
            fig.colorbar(sc, ax=ax, fraction=0.04, pad=0.02, shrink=0.7).set_label(
                "highest score", fontsize=8
            )
            ax.set_title("Anomalies per sensor (size: count)", fontsize=10, loc="left")
            ax2 = fig.add_subplot(gs[1])
            ts = _naive_utc(a["timestamp"])
            counts = (
                ts.dt.to_period("Y" if (ts.max() - ts.min()).days > 3 * 365 else "M")
                .value_counts()
                .sort_index()
            )
            ax2.bar([str(p) for p in counts.index], counts.to_numpy(), color=HOT, alpha=0.8)
            ax2.set_title("Anomalies over time", fontsize=10, loc="left")
            ax2.tick_params(labelsize=7)
            for label in ax2.get_xticklabels():
                label.set_rotation(60)
                label.set_ha("right")
            ax2.grid(True, axis="y", color="#e4e7eb", linewidth=0.5)

    methods = sorted({str(m) for m in a["method"].unique()}) if "method" in a.columns and len(a) else []
    intro = "Readings flagged as anomalous" + (f" ({', '.join(methods)})" if methods else "") + "."
    return Section("anomalies", "Anomalies", intro, draw, (8.0, 4.6), [table])


# -- data quality --------------------------------------------------------------------------
def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and len(v) <= 12:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def _quality_section(results: Mapping[str, Any]) -> Section:
    import numpy as np
    import pandas as pd

    quality = results.get("quality")
    data = results.get("data")
    tables = []
    if isinstance(quality, Mapping):
        rows = []
        for k, v in _flatten(quality)[:30]:
            rows.append([k, _fmt(v, "pct" if k.endswith("score") or k.endswith("ratio") else "")])
        tables.append(
            Table("Data quality report (DATA.validate_sensor_data)", ["check", "value"], rows, ["l", "r"])
        )
    draw = None
    if data is not None and len(data):
        ts = _naive_utc(data["timestamp"])
        span_days = (ts.max() - ts.min()).days
        freq = "Y" if span_days > 6 * 365 else ("M" if span_days > 90 else "D")
        period = ts.dt.to_period(freq)
        grid = pd.crosstab(data["sensor_id"].astype(str).to_numpy(), period.to_numpy())
        grid = grid.loc[sorted(grid.index, key=lambda s: (-int(grid.loc[s].sum()), s))]
        per_sensor = grid.sum(axis=1)
        tables.append(
            Table(
                "Coverage",
                ["item", "value"],
                [
                    ["readings", _fmt(len(data))],
                    ["sensors", _fmt(len(grid))],
                    [
                        "readings per sensor (min / median / max)",
                        " / ".join(
                            _fmt(v) for v in (per_sensor.min(), float(per_sensor.median()), per_sensor.max())
                        ),
                    ],
                    ["missing values", _fmt(int(data[variables_of(data)].isna().sum().sum()))],
                ],
                ["l", "r"],
            )
        )

        def draw(fig: Any, box: tuple[float, float, float, float]) -> None:
            gs = fig.add_gridspec(1, 1, left=box[0] + 0.06, bottom=box[1], right=box[2], top=box[3])
            ax = fig.add_subplot(gs[0])
            values = grid.to_numpy(dtype=float)
            im = ax.imshow(
                np.where(values > 0, values, np.nan),
                aspect="auto",
                cmap="Blues",
                interpolation="nearest",
                vmin=0,
            )
            labels = [str(p) for p in grid.columns]
            step = max(1, len(labels) // 12)
            ax.set_xticks(range(0, len(labels), step), labels[::step], fontsize=7, rotation=45, ha="right")
            ystep = max(1, len(grid) // 35)
            ax.set_yticks(range(0, len(grid), ystep), list(grid.index[::ystep]), fontsize=6)
            ax.set_title(
                f"Readings per sensor and {'year' if freq == 'Y' else 'month' if freq == 'M' else 'day'}"
                " (white: none)",
                fontsize=10,
                loc="left",
            )
            fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, shrink=0.7).set_label("readings", fontsize=8)

    intro = "What the validation step checked and removed, and how complete the data are per sensor."
    return Section("quality", "Data quality", intro, draw, (8.0, 6.0), tables)


# ---------------------------------------------------------------------------- rendering
def render_report(
    sections: list[Section],
    out: Path,
    *,
    report_format: str = "pdf",
    include_visualizations: bool = True,
    title: str = "Environmental analysis report",
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write report.pdf / report.html (+ fig-*.png) for the sections; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    provenance = dict(provenance or {})
    out.mkdir(parents=True, exist_ok=True)
    style = {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 8.5,
        "axes.edgecolor": "#9aa5b1",
        "axes.labelcolor": INK,
        "text.color": INK,
        "xtick.color": "#52606d",
        "ytick.color": "#52606d",
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    result: dict[str, Any] = {"pdf": None, "html": None, "figures": [], "output_dir": str(out)}
    with plt.rc_context(style):
        if report_format in ("pdf", "both"):
            pdf_path = out / "report.pdf"
            pages = _write_pdf(sections, pdf_path, include_visualizations, title, provenance)
            result["pdf"] = str(pdf_path)
            result["pages"] = pages
        if report_format in ("html", "both"):
            figures = {}
            if include_visualizations:
                for s in sections:
                    if s.draw is None:
                        continue
                    fig = plt.figure(figsize=s.fig_size)
                    s.draw(fig, (0.09, 0.08, 0.95, 0.93))
                    path = out / f"fig-{s.key}.png"
                    fig.savefig(path, dpi=PNG_DPI, facecolor="white")
                    plt.close(fig)
                    figures[s.key] = path.name
                    result["figures"].append(str(path))
            html_path = out / "report.html"
            html_path.write_text(_render_html(sections, figures, title, provenance), encoding="utf-8")
            result["html"] = str(html_path)
    result["sections"] = [s.key for s in sections]
    return result


def _wrap(text: str, width: int = 105) -> list[str]:
    return textwrap.wrap(text, width) or [""]


ROW_H = 0.0175  # figure fraction of one table row on an A4 page at 7.5 pt
HEADER_TOP = 0.955


def _table_height(table: Table) -> float:
    budget = int(0.86 * A4_PORTRAIT[0] * 72 / (7.5 * 0.6))
    widths = [
        max(4, len(col) + 1, *(len(row[j]) + 1 for row in table.rows)) for j, col in enumerate(table.columns)
    ]
    while sum(widths) > budget and max(widths) > 14:
        widths[widths.index(max(widths))] -= 1
    lines = [
        max([1] + [len(textwrap.wrap(c, w - 1)) for c, w in zip(row, widths, strict=False)])
        for row in table.rows
    ]
    return 0.028 + ROW_H * (1 + sum(lines))


def _draw_table(fig: Any, table: Table, top: float, left: float = 0.07, right: float = 0.93) -> float:
    """Draw a table whose top edge is at ``top`` (figure fraction); returns its bottom."""
    fig.text(left, top - 0.012, table.caption, fontsize=9, weight="bold", color=INK, va="top")
    height = _table_height(table) - 0.028
    bottom = top - 0.028 - height
    ax = fig.add_axes((left, bottom, right - left, height))
    ax.axis("off")
    if not table.rows:
        ax.text(0, 1, "(none)", fontsize=8, va="top", color=MUTED)
        return bottom
    # Column widths in characters; the widest columns are wrapped until the table fits the page.
    budget = int((right - left) * A4_PORTRAIT[0] * 72 / (7.5 * 0.6))
    widths = [
        max(4, len(col) + 1, *(len(row[j]) + 1 for row in table.rows)) for j, col in enumerate(table.columns)
    ]
    while sum(widths) > budget and max(widths) > 14:
        widths[widths.index(max(widths))] -= 1
    cells = [
        ["\n".join(textwrap.wrap(c, widths[j] - 1)) or c for j, c in enumerate(row)] for row in table.rows
    ]
    total = sum(widths)
    t = ax.table(
        cellText=cells,
        colLabels=table.columns,
        colWidths=[w / total for w in widths],
        loc="upper left",
        bbox=(0, 0, 1, 1),
        cellLoc="left",
    )
    t.auto_set_font_size(False)
    t.set_fontsize(7.5)
    for (r, c), cell in t.get_celld().items():
        cell.set_edgecolor("#e4e7eb")
        cell.set_linewidth(0.4)
        cell.PAD = 0.02
        align = table.align[c] if c < len(table.align) else "l"
        cell.get_text().set_ha({"l": "left", "r": "right"}[align])
        cell._loc = {"l": "left", "r": "right"}[align]
        if r == 0:
            cell.set_facecolor("#1f3a5f")
            cell.get_text().set_color("white")
            cell.get_text().set_weight("bold")
        elif r % 2 == 0:
            cell.set_facecolor("#f3f5f7")
    return bottom


def _page_frame(fig: Any, title: str, provenance: Mapping[str, Any], page: int, report_title: str) -> None:
    fig.patch.set_facecolor("white")
    fig.text(0.07, HEADER_TOP, title, fontsize=15, weight="bold", color=INK, va="top")
    fig.add_artist(
        __import__("matplotlib.lines", fromlist=["Line2D"]).Line2D(
            [0.07, 0.93], [0.925, 0.925], transform=fig.transFigure, color=ACCENT, linewidth=1.2
        )
    )
    workflow, run_id = provenance.get("workflow") or DASH, provenance.get("run_id") or DASH
    footer = f"{report_title}  ·  workflow {workflow}  ·  run {run_id}"
    fig.text(0.07, 0.025, footer, fontsize=7, color=MUTED)
    fig.text(0.93, 0.025, f"page {page}", fontsize=7, color=MUTED, ha="right")


def _write_pdf(
    sections: list[Section], path: Path, visuals: bool, title: str, provenance: Mapping[str, Any]
) -> int:
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    page = 0
    with PdfPages(path) as pdf:
        meta = pdf.infodict()
        meta["Title"] = title
        meta["Subject"] = f"workflow {provenance.get('workflow')}, run {provenance.get('run_id')}"
        meta["Creator"] = "geo-infer-ops APP.generate_report"
        for s in sections:
            page += 1
            fig = plt.figure(figsize=A4_PORTRAIT)
            _page_frame(fig, s.title, provenance, page, title)
            y = 0.91
            for line in _wrap(s.intro):
                fig.text(0.07, y, line, fontsize=8.5, color="#3e4c59", va="top")
                y -= 0.016
            y -= 0.008
            tables_h = sum(_table_height(t) + 0.012 for t in s.tables)
            if s.draw is not None and visuals:
                fig_bottom = max(0.06 + tables_h, 0.36)
                if y - fig_bottom < 0.3:  # not enough room: tables on the next page
                    fig_bottom = 0.06
                s.draw(fig, (0.1, fig_bottom + 0.045, 0.93, y - 0.01))
                y = fig_bottom - 0.015
            for table in s.tables:
                if y - _table_height(table) < 0.05:
                    pdf.savefig(fig)
                    plt.close(fig)
                    page += 1
                    fig = plt.figure(figsize=A4_PORTRAIT)
                    _page_frame(fig, f"{s.title} (continued)", provenance, page, title)
                    y = 0.91
                y = _draw_table(fig, table, y) - 0.012
            pdf.savefig(fig)
            plt.close(fig)
    return page


def _render_html(
    sections: list[Section], figures: Mapping[str, str], title: str, provenance: Mapping[str, Any]
) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        title=title,
        provenance=provenance,
        sections=[
            {
                "key": s.key,
                "title": s.title,
                "intro": s.intro,
                "figure": figures.get(s.key),
                "tables": s.tables,
            }
            for s in sections
        ],
    )


generate_environmental_report = generate_report  # the spec uses both names for one action
