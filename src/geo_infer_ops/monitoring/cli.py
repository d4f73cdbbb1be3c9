"""``geo-infer-ops monitor start|status|push|export|plot|rules``, ``alerts`` and ``silence``.

Every command builds a :class:`~.monitor.SystemMonitor` on the configured home and store, so it
sees the rules saved in ``<home>/monitoring.json``, the alert history and the silences of every
other process. Exit codes as in the main CLI: 0 ok, 1 unexpected failure, 2 bad input.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from ..cli_support import EXIT_USAGE
from ..cli_support import console as _console
from ..cli_support import guarded as _guarded
from ..cli_support import print_json as _print_json

monitor_app = typer.Typer(
    name="monitor",
    help="Sample metrics, evaluate alert rules, push metrics, export Prometheus/Alertmanager files, plot.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
SEVERITY_STYLES = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
STATE_STYLES = {"firing": "bold red", "pending": "yellow", "resolved": "green", "inactive": "dim"}
HEALTH_STYLES = {"healthy": "bold green", "degraded": "bold yellow", "critical": "bold red"}


def _monitor() -> Any:
    from .monitor import SystemMonitor

    return SystemMonitor()


def _labels(items: list[str] | None) -> dict[str, str]:
    from ..errors import ConfigError, Problem

    out: dict[str, str] = {}
    problems = []
    for i, item in enumerate(items or []):
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(
                Problem(f"--label[{i}]", f"{item!r} is not key=value", "write --label module=SPACE")
            )
        else:
            out[key.strip()] = value.strip()
    if problems:
        raise ConfigError(problems, "command line")
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _labels_text(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity"))


# ---------------------------------------------------------------------------------------------------
@monitor_app.command("start")
@_guarded
def start(
    interval: Annotated[
        float | None, typer.Option(help="Seconds between cycles (default: configured, 15).")
    ] = None,
    cycles: Annotated[int, typer.Option(help="Stop after this many cycles (0: run until Ctrl-C).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Sample metrics and evaluate the alert rules every INTERVAL seconds, in the foreground."""
    monitor = _monitor()
    every = float(interval if interval is not None else monitor.interval_s)
    console = _console()
    if not as_json:
        console.print(
            Text(
                f"monitoring: {len(monitor.rules)} rule(s), every {every:g}s, notifiers: "
                f"{', '.join(sorted(monitor.notifiers)) or 'log only'} (Ctrl-C to stop)",
                style="bold",
            )
        )
    n = 0
    all_transitions: list[dict[str, Any]] = []
    try:
        while True:
            started = time.monotonic()
            transitions = monitor.cycle()
            all_transitions += transitions
            n += 1
            if not as_json:
                for tr in transitions:
                    style = STATE_STYLES.get(tr["state"], "")
                    line = Text(time.strftime("%H:%M:%S "), style="dim")
                    line.append(f"{tr['state']:<9}", style=style)
                    line.append(tr["message"])
                    if tr.get("action_status"):
                        line.append(
                            f"  -> {tr['action']}: {tr['action_status']} ({tr['action_detail']})", style="dim"
                        )
                    console.print(line)
            if cycles and n >= cycles:
                break
            time.sleep(max(0.0, every - (time.monotonic() - started)))
    finally:
        monitor.stop_monitoring()
    if as_json:
        _print_json({"cycles": n, "transitions": all_transitions, "status": monitor.get_system_status()})


def _alerts_table(alerts: list[dict[str, Any]], title: str | None = None) -> Table:
    """Active alerts, one row each, coloured by state and severity."""
    table = Table(title=title, header_style="bold", title_justify="left")
    for col in ("alert", "state", "severity", "labels", "value", "since"):
        table.add_column(col)
    for a in alerts:
        table.add_row(
            a["alert"],
            Text(a["state"], style=STATE_STYLES.get(a["state"], "")),
            Text(a["severity"], style=SEVERITY_STYLES.get(a["severity"], "")),
            _labels_text(a["labels"]),
            _fmt(a["value"]),
            a["since"] or "-",
        )
    return table


def _status_view(monitor: Any) -> Group:
    from .monitor import active_alerts_from_store

    status = monitor.get_system_status()
    firing = active_alerts_from_store(monitor.store)
    health = status["overall_health"]
    if any(a["state"] == "firing" for a in firing) and health == "healthy":
        health = "critical" if any(a["severity"] == "critical" for a in firing) else "degraded"
    head = Text("overall health: ")
    head.append(health, style=HEALTH_STYLES.get(health, ""))
    head.append(
        f"   rules: {status['rules']}   notifiers: {', '.join(status['notifiers']) or 'log only'}",
        style="dim",
    )
    sysm = Table(title="system", header_style="bold", title_justify="left")
    sysm.add_column("metric", style="bold")
    sysm.add_column("value", justify="right")
    for name in (
        "cpu_usage",
        "memory_usage",
        "free_memory",
        "disk_usage",
        "swap_usage",
        "load_average",
        "system_uptime",
        "user_satisfaction",
    ):
        if name in status["metrics"]:
            sysm.add_row(name, _fmt(status["metrics"][name]["value"]))
    for (_name, lk), (_ts, value) in sorted(monitor.metrics.series("network_latency").items()):
        sysm.add_row(f"network_latency {dict(lk).get('target', '')}", f"{value:.2f} ms")
    mods = Table(title="modules", header_style="bold", title_justify="left")
    mods.add_column("module", style="bold")
    mods.add_column("status")
    mods.add_column("metrics")
    for mod, entry in sorted(status["modules"].items()):
        metrics = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(entry["metrics"].items()))
        mods.add_row(mod, Text(entry["status"], style=HEALTH_STYLES.get(entry["status"], "")), metrics)
    return Group(head, sysm, mods, _alerts_table(firing, title="alerts"))


@monitor_app.command("status")
@_guarded
def status(
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="A live view, refreshed until Ctrl-C.")
    ] = False,
    refresh: Annotated[float, typer.Option(help="Seconds between refreshes with --watch.")] = 2.0,
    count: Annotated[int, typer.Option(help="With --watch: stop after this many refreshes (0: never).")] = 0,
    sample: Annotated[bool, typer.Option(help="Take a fresh system sample first.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """System metrics, module health and firing alerts (``--watch``: live)."""
    from .monitor import active_alerts_from_store

    monitor = _monitor()
    if sample:
        monitor.sample()
        monitor.metrics.flush()
    if as_json:
        out = monitor.get_system_status()
        out["active_alerts_all_processes"] = active_alerts_from_store(monitor.store)
        _print_json(out)
        return
    console = _console()
    if not watch:
        console.print(_status_view(monitor))
        return
    from rich.live import Live

    n = 0
    try:
        with Live(_status_view(monitor), console=console, refresh_per_second=4) as live:
            while True:
                n += 1
                if count and n >= count:
                    break
                time.sleep(refresh)
                monitor.sample()
                live.update(_status_view(monitor))
    except KeyboardInterrupt:
        pass
    finally:
        monitor.metrics.flush()


@monitor_app.command("push")
@_guarded
def push(
    name: Annotated[str, typer.Argument(help="Metric name, e.g. user_satisfaction.")],
    value: Annotated[float, typer.Argument(help="The value.")],
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value; repeatable.")] = None,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Evaluate the rules right after.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Record one sample of any metric (and optionally evaluate the rules at once)."""
    labels = _labels(label)
    monitor = _monitor()
    monitor.record_metric(name, value, labels or None)
    transitions = monitor.evaluate() if evaluate else []
    monitor.metrics.flush()
    if as_json:
        _print_json({"name": name, "value": value, "labels": labels, "transitions": transitions})
        return
    console = _console()
    console.print(Text(f"recorded {name}{json.dumps(labels) if labels else ''} = {value:g}"))
    for tr in transitions:
        console.print(Text(f"{tr['state']}: {tr['message']}", style=STATE_STYLES.get(tr["state"], "")))


@monitor_app.command("export")
@_guarded
def export(
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Folder for the two files.")] = Path(
        "."
    ),
    as_json: JsonOpt = False,
) -> None:
    """Write prometheus-rules.yml and alertmanager.yml equivalent to the configured alerts."""
    paths = _monitor().export_config(output_dir)
    if as_json:
        _print_json(paths)
    else:
        for kind, path in paths.items():
            _console().print(Text(f"wrote {kind}: {path}"))


def _since_seconds(text: str) -> float:
    from ..errors import ConfigError
    from .rules import parse_duration

    problems: list[Any] = []
    seconds = parse_duration(text, "--since", problems)
    if problems or seconds <= 0:
        raise ConfigError(problems or [], "command line") if problems else ValueError("--since must be > 0")
    return seconds


@monitor_app.command("plot")
@_guarded
def plot(
    metric: Annotated[str, typer.Argument(help="Metric name.")],
    since: Annotated[str, typer.Option(help="How far back: 90m, 24h, 7d.")] = "24h",
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")] = Path("metric.png"),
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="key=value filter; repeatable.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Chart a metric's samples (one line per series) into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import datetime

    import matplotlib.pyplot as plt

    seconds = _since_seconds(since)
    monitor = _monitor()
    now = monitor.clock.time()
    points = monitor.metrics.query_range(metric, now - seconds, now, _labels(label) or None)
    by_series: dict[str, list[tuple[float, float]]] = {}
    for ts, value, labels in points:
        by_series.setdefault(_labels_text(labels) or metric, []).append((ts, value))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    for name, pts in sorted(by_series.items()):
        ax.plot(
            [datetime.fromtimestamp(p[0]) for p in pts],
            [p[1] for p in pts],
            label=name,
            linewidth=1.2,
            marker="o" if len(pts) <= 50 else None,  # few samples: show each one
            markersize=3,
        )
    for rule in monitor.rules:
        if rule.metric == metric:
            ax.axhline(
                rule.threshold, color="red", linestyle="--", linewidth=0.8, label=f"{rule.name} threshold"
            )
    ax.set_title(f"{metric} — last {since}")
    ax.set_ylabel(metric)
    if not points:
        ax.text(0.5, 0.5, "no samples in this period", ha="center", va="center", transform=ax.transAxes)
    if by_series or monitor.rules:
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            ax.legend(loc="best", fontsize="small")
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, format="png")
    plt.close(fig)
    if as_json:
        _print_json({"output": str(output), "points": len(points), "series": len(by_series)})
    else:
        _console().print(Text(f"wrote {output} ({len(points)} points, {len(by_series)} series)"))


@monitor_app.command("rules")
@_guarded
def rules(as_json: JsonOpt = False) -> None:
    """The configured alert rules."""
    monitor = _monitor()
    data = [{"name": r.name, "id": r.id, "expr": r.expr, **r.to_config()} for r in monitor.rules]
    if as_json:
        _print_json(data)
        return
    table = Table(header_style="bold")
    for col in ("alert", "expr", "for", "severity", "action"):
        table.add_column(col)
    for r in data:
        table.add_row(r["name"], r["expr"], _fmt(r["for"]), r["severity"], r["action"])
    _console().print(table)


# ---------------------------------------------------------------------------------------------------
@_guarded
def alerts(
    history: Annotated[bool, typer.Option("--history", help="Every transition and action outcome.")] = False,
    limit: Annotated[int, typer.Option(help="With --history: the newest N events.")] = 100,
    alert: Annotated[str | None, typer.Option(help="Only this alert name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Firing and pending alerts (``--history``: transitions, notifications and action outcomes)."""
    from ..settings import get_settings
    from ..store import Store
    from .monitor import active_alerts_from_store, alert_history

    store = Store(get_settings().resolved_database_url)
    if history:
        rows = alert_history(store, limit, alert)
        if as_json:
            _print_json(rows)
            return
        table = Table(header_style="bold")
        for col in ("time", "alert", "state", "labels", "value", "action", "outcome"):
            table.add_column(col)
        for r in reversed(rows):
            outcome = Text("")
            if r["action_status"]:
                style = {"succeeded": "green", "failed": "bold red", "skipped": "yellow"}.get(
                    r["action_status"], ""
                )
                outcome = Text(f"{r['action_status']}: {r['action_detail'] or ''}", style=style)
            table.add_row(
                r["time"][:19],
                r["alert"],
                Text(r["state"], style=STATE_STYLES.get(r["state"], "")),
                _labels_text(r["labels"]) if isinstance(r["labels"], dict) else str(r["labels"]),
                _fmt(r["value"]),
                r["action"] or "",
                outcome,
            )
        _console().print(table)
        return
    active = [a for a in active_alerts_from_store(store) if not alert or a["alert"] == alert]
    if as_json:
        _print_json(active)
        return
    if not active:
        _console().print(Text("no alerts firing", style="green"))
        return
    _console().print(_alerts_table(active))


@_guarded
def silence(
    matchers: Annotated[
        list[str] | None, typer.Argument(help="label=value, label!=value, label=~regex.")
    ] = None,
    duration: Annotated[str, typer.Option(help="How long: 30m, 2h, 1d.")] = "1h",
    comment: Annotated[str, typer.Option(help="Why (shown with the silence).")] = "",
    list_: Annotated[bool, typer.Option("--list", help="List the active silences.")] = False,
    expire: Annotated[str | None, typer.Option(help="End the silence with this id (prefix) now.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mute alerts matching every MATCHER for a while (``--list``, ``--expire ID``)."""
    monitor = _monitor()
    if expire:
        ok = monitor.expire_silence(expire)
        if as_json:
            _print_json({"expired": ok, "id": expire})
        else:
            _console().print(Text(f"silence {expire} expired" if ok else f"no active silence {expire}"))
        if not ok:
            raise typer.Exit(EXIT_USAGE)
        return
    if list_ or not matchers:
        items = monitor.silences()
        if as_json:
            _print_json(items)
            return
        table = Table(header_style="bold")
        for col in ("id", "matchers", "ends", "comment", "by"):
            table.add_column(col)
        for s in items:
            table.add_row(s["id"][:8], ", ".join(s["matchers"]), s["ends_at"], s["comment"], s["created_by"])
        _console().print(table)
        return
    out = monitor.silence(matchers, duration, comment)
    if as_json:
        _print_json(out)
    else:
        _console().print(
            Text(f"silence {out['id'][:8]} until {out['ends_at']}: {', '.join(out['matchers'])}")
        )


def register(app: typer.Typer) -> None:
    """Add ``monitor``, ``alerts`` and ``silence`` to the main CLI."""
    app.add_typer(monitor_app, name="monitor")
    app.command("alerts")(alerts)
    app.command("silence")(silence)
