"""The command line: ``geo-infer-ops validate | run | runs | show | logs | retry | resume | modules``.

Importing this module is cheap: only Typer and Rich load at the top; the
orchestrator, the store and pydantic are imported inside the commands.

Exit codes: ``0`` success; ``1`` a run failed or was cancelled (or an unexpected
error); ``2`` bad input (an invalid workflow or option, an unknown run id, an action
module that cannot be imported, a missing file); ``130`` a run stopped with Ctrl-C.
Every command that lists or shows something takes ``--json`` and then prints one
JSON document on stdout; a run there always has ``workflow_id``, ``name``,
``status``, ``started_at`` and ``finished_at``.

User actions come from the ``geo_infer_ops.modules`` entry points, the setting
``imports`` (``GEO_INFER_OPS_IMPORTS=mod_a,mod_b``) and ``--import MODULE`` (a module
name or a path to a ``.py`` file), in that order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from . import __version__
from .cli_support import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from .cli_support import console as _console
from .cli_support import guarded as _guarded
from .cli_support import (
    print_json as _print_json,
)
from .cli_support import text as _t

if TYPE_CHECKING:
    from concurrent.futures import Future

    from .modules.registry import ActionRegistry
    from .orchestration.orchestrator import WorkflowOrchestrator


REFRESH_S = 0.1

STATUS_STYLES = {
    "succeeded": "bold green",
    "failed": "bold red",
    "timed_out": "bold red",
    "upstream_failed": "red",
    "cancelled": "yellow",
    "running": "bold cyan",
    "retrying": "bold yellow",
    "pending": "dim",
}
LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold red",
}
STATUS_ICONS = {
    "succeeded": "✔",
    "failed": "✘",
    "timed_out": "⏱",
    "upstream_failed": "↯",
    "cancelled": "■",
    "running": "▶",
    "retrying": "↻",
    "pending": "·",
}

app = typer.Typer(
    name="geo-infer-ops",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Backoff(str, Enum):
    exponential = "exponential"
    fixed = "fixed"
    linear = "linear"


class RunStatus(str, Enum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


ImportsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        "-i",
        metavar="MODULE",
        help="Python module (dotted name or path to a .py file) that registers actions; repeatable.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]
RunIdArg = Annotated[
    str, typer.Argument(metavar="RUN_ID", help="Run id, or a unique prefix of at least 4 characters.")
]


# ---------------------------------------------------------------------------
# output helpers


def _status(status: str | None) -> Text:
    status = status or "-"
    return Text(f"{STATUS_ICONS.get(status, ' ')} {status}", style=STATUS_STYLES.get(status, ""))


def _duration(seconds: float | None, running: bool = False) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        text = f"{seconds:.2f}s"
    elif seconds < 60:
        text = f"{seconds:.1f}s"
    elif seconds < 3600:
        text = f"{int(seconds // 60)}m {int(seconds % 60):02d}s"
    else:
        text = f"{int(seconds // 3600)}h {int(seconds % 3600 // 60):02d}m"
    return text + ("…" if running else "")


def _local_time(iso: str | None, millis: bool = False) -> str:
    if not iso:
        return "-"
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return iso
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if millis else moment.strftime("%Y-%m-%d %H:%M:%S")


def _short(run_id: str) -> str:
    return run_id[:8]


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


# ---------------------------------------------------------------------------
# errors: one clear screen, never a traceback


def _bad_input(path: str, message: str, fix: str) -> NoReturn:
    from .errors import ConfigError, Problem

    raise ConfigError([Problem(path, message, fix)], "command line")


# ---------------------------------------------------------------------------
# building blocks


def _load_actions(imports: Iterable[str] | None) -> ActionRegistry:
    """The action registry with entry points, the ``imports`` setting and ``--import`` modules loaded."""
    from .modules.registry import registry
    from .settings import get_settings

    registry.load([*get_settings().imports, *(imports or [])])
    return registry


def _orchestrator(imports: Iterable[str] | None, max_parallel: int | None = None) -> WorkflowOrchestrator:
    from .orchestration.orchestrator import WorkflowOrchestrator

    orchestrator = WorkflowOrchestrator({"max_parallel": max_parallel})
    orchestrator.registry.load(imports or [])
    return orchestrator


def _reader() -> WorkflowOrchestrator:
    """An orchestrator for read-only commands: it imports no action modules, so a broken plug-in
    cannot stop ``runs``, ``show`` or ``logs``."""
    from .modules.registry import ActionRegistry
    from .orchestration.orchestrator import WorkflowOrchestrator
    from .settings import get_settings

    class _NoLoadRegistry(ActionRegistry):
        def load(self, imports: Iterable[str] = ()) -> None:
            return None

    return WorkflowOrchestrator(settings=get_settings(imports=[]), registry=_NoLoadRegistry())


class _RunView:
    """The live display of a run: one row per step and an overall progress bar."""

    def __init__(self, run_id: str, title: str) -> None:
        self.run_id = run_id
        self.title = title
        self._running_since: dict[str, float] = {}

    def render(self, snap: Mapping[str, Any] | None) -> Group:
        from rich.progress_bar import ProgressBar

        if snap is None:
            return Group(Text(f"{self.title} (run {_short(self.run_id)}): starting…", style="dim"))
        now = time.monotonic()
        table = Table(
            title=Text(f"{self.title} · {snap['name']} · run {_short(self.run_id)}", style="bold"),
            title_justify="left",
            header_style="bold",
            expand=False,
        )
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("attempts", justify="right")
        table.add_column("duration", justify="right")
        table.add_column("error", overflow="ellipsis", max_width=60, no_wrap=True)
        for name, step in snap["steps"].items():
            status = step["status"]
            if status in ("running", "retrying"):
                since = self._running_since.setdefault(name, now)
                duration = _duration(now - since, running=True)
            else:
                self._running_since.pop(name, None)
                duration = _duration(step["duration_s"])
            error = _first_line(step["error"]) if status != "succeeded" else ""
            table.add_row(_t(name), _status(status), str(step["attempts"] or 0), duration, _t(error, "red"))
        progress = snap["progress"]
        total, finished = progress["total"], progress["finished"]
        eta = snap.get("eta_s")
        line = Table.grid(padding=(0, 1))
        line.add_row(
            ProgressBar(total=max(total, 1), completed=finished, width=40),
            Text(f"{finished}/{total} steps {progress['percent']:.0f}%"),
            _status(snap["status"]),
            Text(
                f"elapsed {_duration(snap['elapsed_s'])}"
                + (f" · eta {_duration(eta)}" if eta and snap["status"] == "running" else ""),
                style="dim",
            ),
        )
        return Group(table, line)


def _watch(
    orchestrator: WorkflowOrchestrator, future: Future, run_id: str, title: str, console: Console, live: bool
) -> tuple[dict[str, Any], bool]:
    """Wait for a run (polling ``monitor_workflow`` for the live view); Ctrl-C cancels it.

    Returns the run's result dict and whether it was interrupted.
    """
    from concurrent.futures import wait

    interrupted = cancel_sent = False
    view = _RunView(run_id, title)
    display = None
    if live:
        from rich.live import Live

        display = Live(view.render(None), console=console, refresh_per_second=1 / REFRESH_S, transient=False)
        display.start()
    try:
        while not future.done():
            try:
                if interrupted and not cancel_sent:
                    cancel_sent = orchestrator.cancel_workflow(run_id, "interrupted (Ctrl-C)")
                if display is not None:
                    display.update(view.render(orchestrator.monitor_workflow(run_id)))
                wait([future], timeout=REFRESH_S)
            except KeyboardInterrupt:
                if interrupted:
                    console.print(Text("still cancelling; waiting for the run to stop…", style="yellow"))
                interrupted = True
        if display is not None:
            display.update(view.render(orchestrator.monitor_workflow(run_id)))
    finally:
        if display is not None:
            display.stop()
    return future.result(), interrupted


def _summary(result: Mapping[str, Any], console: Console, interrupted: bool) -> None:
    run_id = result["workflow_id"]
    table = Table(
        title=Text(f"{result['name']} · run {_short(run_id)}", style="bold"),
        title_justify="left",
        header_style="bold",
    )
    table.add_column("step", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("error", overflow="fold")
    table.add_column("fallback used", justify="center")
    for name, step in result["steps"].items():
        error = step["error"] if step["status"] != "succeeded" else None
        table.add_row(
            _t(name),
            _status(step["status"]),
            str(step["attempts"] or 0),
            _duration(step["duration_s"]),
            _t(error, "red"),
            "yes" if step.get("used_fallback") else "",
        )
    console.print(table)
    status = result["status"]
    headline = Text()
    headline.append(f"{STATUS_ICONS.get(status, '')} run {status}", style=STATUS_STYLES.get(status, "bold"))
    if interrupted:
        headline.append(" (interrupted with Ctrl-C)", style="yellow")
    if result.get("duration_s") is not None:
        headline.append(f" in {_duration(result['duration_s'])}")
    console.print(headline)
    if result.get("error") and status != "succeeded":
        console.print(Text("  ") + _t(result["error"], "red"))
    console.print(Text("run id: ") + _t(run_id, "bold"))
    _hints(console, run_id, status)


def _hints(console: Console, run_id: str, status: str, show: bool = True) -> None:
    short = _short(run_id)
    hints = []
    if show:
        hints.append((f"geo-infer-ops show {short}", "steps, attempts and errors"))
    hints.append((f"geo-infer-ops logs {short}", "what the steps logged"))
    if status in ("failed", "cancelled"):
        hints.append((f"geo-infer-ops retry {short}", "run the failed and cancelled steps again"))
    if status == "running":
        hints.append((f"geo-infer-ops resume {short}", "continue it if its process died"))
    grid = Table.grid(padding=(0, 2))
    for command, what in hints:
        grid.add_row(Text("  " + command, style="cyan"), Text(what, style="dim"))
    console.print(grid)


def _finish(result: dict[str, Any], interrupted: bool, as_json: bool, console: Console) -> None:
    if as_json:
        _print_json({k: v for k, v in result.items() if k != "outputs"})
    else:
        _summary(result, console, interrupted)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(EXIT_OK if result["status"] == "succeeded" else EXIT_FAILED)


def _drive(
    orchestrator: WorkflowOrchestrator, future: Future, run_id: str, title: str, as_json: bool
) -> None:
    console = _console()
    live = console.is_terminal and not as_json
    if not live and not as_json:
        console.print(Text(f"{title}: run {run_id} …", style="dim"))
    result, interrupted = _watch(orchestrator, future, run_id, title, console, live)
    _finish(result, interrupted, as_json, console)


def _in_background(func: Callable[..., dict[str, Any]], *args: Any) -> Future:
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gio-cli")
    future = pool.submit(func, *args)
    pool.shutdown(wait=False)
    return future


# ---------------------------------------------------------------------------
# commands


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"geo-infer-ops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Run, watch and debug geospatial workflows.

    State lives in GEO_INFER_OPS_HOME (default ~/.geo-infer-ops). Exit codes: 0 ok, 1 run failed or
    cancelled, 2 bad input, 130 interrupted.
    """


@app.command()
@_guarded
def validate(
    file: Annotated[Path, typer.Argument(help="Workflow file (.yaml, .yml or .json).")],
    imports: ImportsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a workflow file and print its plan; list every problem (exit 2) if it is invalid."""
    from .orchestration.dag import Plan
    from .orchestration.spec import as_workflow_dict, parse_workflow

    registry = _load_actions(imports)
    data, source = as_workflow_dict(file)
    workflow = parse_workflow(data, source=source, registry=registry)
    plan = Plan.from_workflow(workflow)
    next_run = _next_run(workflow.schedule)
    steps = [workflow.step(name) for name in plan.order]
    if as_json:
        _print_json(
            {
                "valid": True,
                "source": source,
                "name": workflow.name,
                "version": workflow.version,
                "description": workflow.description,
                "schedule": workflow.schedule,
                "next_run_at": next_run,
                "max_parallel": workflow.max_parallel,
                "order": list(plan.order),
                "steps": [
                    {
                        "name": s.name,
                        "action": s.qualified_action,
                        "dependencies": list(s.dependencies),
                        "parameters": s.parameters,
                        "timeout": s.timeout,
                        "max_retries": s.max_retries,
                        "executor": s.executor,
                        "fallback": s.fallback,
                    }
                    for s in steps
                ],
                "error_handling": workflow.definition.get("error_handling"),
            }
        )
        return
    console = _console()
    console.print(
        Text("✔ ", style="bold green")
        + Text(f"{workflow.name}", style="bold")
        + Text(f" is valid · version {workflow.version} · {len(steps)} step(s)")
    )
    if workflow.description:
        console.print(_t(workflow.description, "dim"))
    table = Table(header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("step", no_wrap=True)
    table.add_column("action", style="cyan")
    table.add_column("depends on")
    table.add_column("notes", style="dim")
    for i, step in enumerate(steps, 1):
        notes = []
        if step.timeout:
            notes.append(f"timeout {step.timeout:g}s")
        if step.max_retries is not None:
            notes.append(f"max_retries {step.max_retries}")
        if step.executor:
            notes.append(f"executor {step.executor}")
        if step.fallback:
            notes.append(f"fallback {step.fallback}")
        table.add_row(
            str(i),
            _t(step.name),
            _t(step.qualified_action),
            _t(", ".join(step.dependencies) or "-"),
            _t(", ".join(notes)),
        )
    console.print(table)
    if workflow.schedule:
        console.print(
            Text("schedule: ")
            + _t(workflow.schedule, "bold")
            + (Text(f" (next: {_local_time(next_run)})", style="dim") if next_run else Text())
        )
    else:
        console.print(Text("schedule: none (runs on demand)", style="dim"))


def _next_run(schedule: str | None) -> str | None:
    if not schedule:
        return None
    from datetime import timezone

    from .orchestration.schedules import next_fire_time

    try:
        return next_fire_time(schedule, datetime.now(timezone.utc)).isoformat()
    except Exception:
        return None


@app.command()
@_guarded
def run(
    file: Annotated[Path, typer.Argument(help="Workflow file (.yaml, .yml or .json).")],
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="[STEP.]KEY=VALUE",
            help="Override a step parameter (STEP.KEY=VALUE) or a parameter of every step that takes it "
            "(KEY=VALUE); values are read as YAML scalars. Repeatable.",
        ),
    ] = None,
    max_parallel: Annotated[
        int | None,
        typer.Option(
            "--max-parallel", "-j", min=1, help="Steps that may run at once (default: number of CPUs)."
        ),
    ] = None,
    imports: ImportsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a workflow and watch it; exit 0 if it succeeded, 1 if it failed, 130 on Ctrl-C."""
    from .orchestration.overrides import parse_assignments

    parameters = parse_assignments(list(params or []))
    orchestrator = _orchestrator(imports, max_parallel)
    try:
        future = orchestrator.submit_workflow(file, parameters or None)
        _drive(orchestrator, future, future.run_id, "run", as_json)  # type: ignore[attr-defined]
    finally:
        orchestrator.close()


@app.command()
@_guarded
def schedule(
    files: Annotated[list[Path], typer.Argument(help="Workflow files with a `schedule`.")],
    catchup: Annotated[
        bool, typer.Option("--catchup", help="After a pause, start one run per missed fire time.")
    ] = False,
    overlap: Annotated[
        str, typer.Option("--overlap", help="skip: no new run while the previous one is going; allow.")
    ] = "skip",
    run_now: Annotated[bool, typer.Option("--run-now", help="Also start one run of each at once.")] = False,
    max_runs: Annotated[
        int | None, typer.Option("--max-runs", min=1, help="Stop after starting this many runs.")
    ] = None,
    imports: ImportsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start runs of workflows on their schedules until Ctrl-C (or --max-runs), one line per run."""
    from .orchestration.scheduler import Scheduler

    orchestrator = _orchestrator(imports)
    scheduler = Scheduler(orchestrator)
    console = _console()
    started: list[Any] = []

    def report(event: dict[str, Any]) -> None:
        public = {k: v for k, v in event.items() if k != "future"}
        if as_json:
            _print_json(public)
        elif event["skipped"]:
            console.print(
                Text(f"skipped {event['name']} at {event['scheduled_for']}: {event['reason']}", "yellow")
            )
        else:
            console.print(
                Text(f"started {event['name']} for {event['scheduled_for']}: run ")
                + Text(_short(event["workflow_id"]), "bold")
            )
        if not event["skipped"]:
            started.append(event["future"])
            if max_runs is not None and len(started) >= max_runs:
                scheduler.stop()

    try:
        for file in files:
            entry = scheduler.add(file, catchup=catchup, overlap=overlap)  # type: ignore[arg-type]
            if not as_json:
                console.print(
                    Text(f"scheduled {entry['name']} ({entry['schedule']}), next run {entry['next_fire']}")
                )
            if run_now:
                now = orchestrator.services.clock.time()
                report(scheduler.fire(scheduler.entries[entry["name"]], now, busy=False))
        if max_runs is None or len(started) < max_runs:
            scheduler.run_forever(on_event=report)
        results = [f.result() for f in started]
    finally:
        orchestrator.close()
    if any(r["status"] != "succeeded" for r in results):
        raise typer.Exit(EXIT_FAILED)


@app.command()
@_guarded
def retry(
    run_id: RunIdArg,
    max_retries: Annotated[
        int | None,
        typer.Option("--max-retries", min=0, max=100, help="Retries per step (default: the workflow's own)."),
    ] = None,
    backoff: Annotated[Backoff | None, typer.Option("--backoff", help="Delay between retries.")] = None,
    imports: ImportsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the failed, timed-out, cancelled and unfinished steps of a run again (same run id)."""
    orchestrator = _orchestrator(imports)
    try:
        full_id = orchestrator.get_run(run_id)["workflow_id"]
        config: dict[str, Any] = {}
        if max_retries is not None:
            config["max_retries"] = max_retries
        if backoff is not None:
            config["backoff_strategy"] = backoff.value
        future = _in_background(orchestrator.retry_workflow, full_id, config)
        _drive(orchestrator, future, full_id, "retry", as_json)
    finally:
        orchestrator.close()


@app.command()
@_guarded
def resume(
    run_id: RunIdArg,
    imports: ImportsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Continue a run whose process died; finished steps are not run again."""
    orchestrator = _orchestrator(imports)
    try:
        full_id = orchestrator.get_run(run_id)["workflow_id"]
        future = _in_background(orchestrator.resume_workflow, full_id)
        _drive(orchestrator, future, full_id, "resume", as_json)
    finally:
        orchestrator.close()


@app.command()
@_guarded
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest N runs.")] = 20,
    name: Annotated[str | None, typer.Option("--name", help="Only runs of this workflow.")] = None,
    status: Annotated[RunStatus | None, typer.Option("--status", help="Only runs with this status.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List past and current runs, newest first."""
    orchestrator = _reader()
    try:
        rows = orchestrator.list_runs(limit=limit, name=name, status=status.value if status else None)
    finally:
        orchestrator.close()
    if as_json:
        _print_json(rows)
        return
    console = _console()
    if not rows:
        console.print(Text("no runs yet; start one with `geo-infer-ops run WORKFLOW.yaml`", style="dim"))
        return
    table = Table(header_style="bold")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("name")
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right")
    for r in rows:
        table.add_row(
            _short(r["workflow_id"]),
            _t(r["name"]),
            _status(r["status"]),
            _local_time(r["started_at"]),
            _duration(r["duration_s"]),
        )
    console.print(table)


@app.command()
@_guarded
def show(run_id: RunIdArg, as_json: JsonOpt = False) -> None:
    """Show one run: its header, steps, every attempt and the errors."""
    orchestrator = _reader()
    try:
        debug = orchestrator.debug_workflow_execution(run_id, "basic")
        stored = orchestrator.get_run(debug["workflow_id"])
    finally:
        orchestrator.close()
    data = {
        **debug,
        "version": stored["version"],
        "duration_s": stored["duration_s"],
        "params": stored["params"],
    }
    if as_json:
        _print_json(data)
        return
    console = _console()
    header = Table.grid(padding=(0, 2))
    header.add_column(style="bold")
    header.add_column()
    header.add_row("run", _t(data["workflow_id"]))
    header.add_row("workflow", _t(f"{data['name']} (version {data['version']})"))
    header.add_row("status", _status(data["status"]))
    header.add_row("started", _local_time(data["started_at"]))
    header.add_row("finished", _local_time(data["finished_at"]))
    header.add_row("duration", _duration(data["duration_s"]))
    if data["params"]:
        header.add_row("params", _t(json.dumps(data["params"], default=str)))
    if data["error"]:
        header.add_row("error", _t(data["error"], "red"))
    path = data["critical_path"]
    if path["steps"]:
        header.add_row("critical path", _t(" → ".join(path["steps"]) + f" ({_duration(path['duration_s'])})"))
    header.add_row("log file", _t(data["log_file"], "dim"))
    console.print(header)

    steps = Table(title="steps", title_justify="left", header_style="bold")
    for col in ("step", "action", "status", "attempts", "duration", "fallback used", "error"):
        steps.add_column(
            col,
            no_wrap=col in ("step", "action", "status"),
            overflow="fold" if col == "error" else "ellipsis",
            justify="right" if col in ("attempts", "duration") else "left",
        )
    attempts = Table(title="attempts", title_justify="left", header_style="bold")
    for col in ("step", "#", "action", "status", "executor", "started", "duration", "error"):
        attempts.add_column(
            col,
            no_wrap=col in ("step", "action", "status", "started"),
            overflow="fold" if col == "error" else "ellipsis",
            justify="right" if col in ("#", "duration") else "left",
        )
    for step in data["steps"]:
        error = step["error"] if step["status"] != "succeeded" else None
        steps.add_row(
            _t(step["name"]),
            _t(step["action"], "cyan"),
            _status(step["status"]),
            str(len(step["attempts"])),
            _duration(step["duration_s"]),
            "yes" if step["used_fallback"] else "",
            _t(error, "red"),
        )
        for a in step["attempts"]:
            attempts.add_row(
                _t(step["name"]),
                str(a["attempt"]),
                _t(a["action"], "cyan"),
                _status(a["status"]),
                _t(a["executor"]),
                _local_time(a["started_at"])[11:],
                _duration(a["duration_s"]),
                _t(a["error"], "red"),
            )
    console.print(steps)
    if attempts.row_count:
        console.print(attempts)
    _hints(console, data["workflow_id"], data["status"], show=False)


@app.command()
@_guarded
def logs(
    run_id: RunIdArg,
    step: Annotated[str | None, typer.Option("--step", "-s", help="Only this step's lines.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Print what a run's steps logged, as `time level step message`."""
    orchestrator = _reader()
    try:
        run_info = orchestrator.get_run(run_id)
        if step is not None and step not in run_info["steps"]:
            _bad_input(
                "--step",
                f"run {_short(run_info['workflow_id'])} has no step {step!r}",
                f"use one of: {', '.join(run_info['steps'])}",
            )
        records = orchestrator.get_logs(run_info["workflow_id"], step)
    finally:
        orchestrator.close()
    if as_json:
        _print_json(records)
        return
    console = _console()
    if not records:
        _console(stderr=True).print(
            Text(
                f"no log lines for run {_short(run_info['workflow_id'])}"
                + (f" step {step!r}" if step else ""),
                style="dim",
            )
        )
        return
    for r in records:
        stamp = datetime.fromtimestamp(r["ts"]).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if "ts" in r else "-"
        level = str(r.get("level", "-"))
        where = str(r.get("step") or "-")
        if (r.get("attempt") or 1) > 1:
            where += f"#{r['attempt']}"
        line = (
            Text(stamp + " ", style="dim")
            + Text(f"{level:<7} ", style=LEVEL_STYLES.get(level, ""))
            + Text(where + " ", style="cyan")
            + _t(r.get("message", ""))
        )
        console.print(line)
        if r.get("exc_info"):
            console.print(_t("    " + str(r["exc_info"]).replace("\n", "\n    "), "red"))


@app.command()
@_guarded
def modules(imports: ImportsOpt = None, as_json: JsonOpt = False) -> None:
    """List the registered actions (MODULE.action) and their parameters."""
    registry = _load_actions(imports)
    specs = registry.all()
    if as_json:
        _print_json(
            [
                {
                    "module": s.module,
                    "action": s.name,
                    "qualified_name": s.qualified_name,
                    "description": _first_line(s.description),
                    "cpu_bound": s.cpu_bound,
                    "accepts_context": s.accepts_context,
                    "accepts_any_parameter": s.accepts_any_parameter,
                    "parameters": [
                        {"name": p.name, "type": p.annotation, "required": p.required, "default": p.default}
                        for p in s.parameters
                    ],
                }
                for s in specs
            ]
        )
        return
    console = _console()
    if not specs:
        console.print(
            Text(
                "no actions registered; define them with @action('MODULE', 'name') and load the "
                "module with --import or GEO_INFER_OPS_IMPORTS",
                style="dim",
            )
        )
        return
    table = Table(header_style="bold")
    table.add_column("module", style="bold", no_wrap=True)
    table.add_column("action", style="cyan", no_wrap=True)
    table.add_column("parameters")
    table.add_column("description", style="dim")
    for s in specs:
        params = Text()
        for i, p in enumerate(s.parameters):
            if i:
                params.append(", ")
            params.append(p.name, style="bold" if p.required else "")
            params.append(f": {p.annotation}", style="dim")
            if not p.required:
                params.append(f" = {p.default!r}", style="dim")
        if s.accepts_any_parameter:
            params.append(", **kwargs" if s.parameters else "**kwargs", style="dim")
        table.add_row(_t(s.module), _t(s.name), params, _t(_first_line(s.description)))
    console.print(table)


from .infrastructure.cli import app as infra_app  # noqa: E402 - light: only typer/rich at import

app.add_typer(infra_app, name="infra")

from .monitoring.cli import register as _register_monitoring  # noqa: E402 - light: only typer/rich at import

_register_monitoring(app)


def main() -> None:
    """Entry point of the ``geo-infer-ops`` script."""
    app(prog_name="geo-infer-ops")


if __name__ == "__main__":
    main()
