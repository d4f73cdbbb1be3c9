"""Per-task orchestration overhead: geo-infer-ops vs Dask (threaded) vs Prefect 3.

Every system runs the same no-op DAGs (see ``_workloads.py``):

1. fan-out/fan-in: root -> N independent tasks -> sink;
2. a chain of N tasks;
3. the spec's 5-step diamond DATA -> (SPACE, TIME) -> AI -> APP, many runs back to back;
4. scaling: fan-out with 10x more tasks (geo-infer-ops and Dask only).

Per-task overhead = wall time of one run / number of tasks in it; each number is the best of
``--repeats`` (default 3) after one untimed warm-up run. Results go to
``bench/results/engine_overhead.json``; ``--markdown`` also prints a table for docs/performance.md.

Usage::

    python bench/engine_overhead.py [--quick] [--markdown] [--skip-prefect] [--repeats N]

Prefect 3 is installed on first use into ``bench/.venv-prefect`` (never into the project venv) and
runs as a subprocess (``_prefect_runner.py``) that reports back JSON on stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import faulthandler
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import _workloads as wl  # noqa: E402

PREFECT_VENV = BENCH_DIR / ".venv-prefect"
PREFECT_REQUIREMENT = "prefect>=3,<4"
PREFECT_RUNNER = BENCH_DIR / "_prefect_runner.py"
PREFECT_LOG = BENCH_DIR / "results" / "prefect_runner.log"  # gitignored; kept for post-mortems
DEFAULT_OUTPUT = BENCH_DIR / "results" / "engine_overhead.json"
# --quick writes elsewhere so that a smoke run never clobbers the real results
QUICK_OUTPUT = BENCH_DIR / "results" / "engine_overhead.quick.json"

GIO = "geo-infer-ops"
DASK = "dask-threaded"
DELAYED = "dask-delayed"
PREFECT = "prefect"
SYSTEMS = (GIO, DASK, DELAYED, PREFECT)
LABELS = {GIO: "geo-infer-ops", DASK: "Dask threaded.get", DELAYED: "dask.delayed", PREFECT: "Prefect 3"}

log = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 130)


def say(message: str) -> None:
    """Progress line on stderr (no Rich markup: the ``[system]`` prefixes are literal)."""
    log.print(message, markup=False)


def _noop(*_args: Any) -> None:
    """No-op task body for Dask (receives its dependencies' results positionally)."""
    return None


# ---------------------------------------------------------------------------
# timing helpers


def _timed(fn: Callable[[], Any], runs: int = 1) -> float:
    """Wall seconds for ``runs`` consecutive calls of ``fn`` (after a GC, so no stale garbage is timed)."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    return time.perf_counter() - t0


def _measure(fn: Callable[[], Any], dag: wl.Dag, runs: int, repeats: int) -> dict[str, Any]:
    """One untimed warm-up call, then ``repeats`` timed batches of ``runs`` calls."""
    fn()
    return {"tasks": len(dag), "runs": runs, "samples_s": [_timed(fn, runs) for _ in range(repeats)]}


def summarize(raw: dict[str, Any]) -> dict[str, Any]:
    """Add best-of-repeats derived numbers to a raw ``{tasks, runs, samples_s}`` record."""
    if not raw["samples_s"]:
        return {**raw, "error": (raw.get("errors") or ["no sample"])[-1]}
    best = min(raw["samples_s"])
    per_run = best / raw["runs"]
    return {
        **raw,
        "best_s": best,
        "per_run_ms": per_run * 1e3,
        "per_task_us": per_run / raw["tasks"] * 1e6,
    }


def _plan(sizes: dict[str, int], with_scale: bool) -> list[tuple[str, wl.Dag, int]]:
    """(workload name, DAG, runs per timed batch) for the in-process systems."""
    plan = [
        ("fanout", wl.fanout(sizes["fanout"]), 1),
        ("chain", wl.chain(sizes["chain"]), 1),
        ("diamond", wl.diamond(), sizes["diamond_runs"]),
    ]
    if with_scale:
        plan.append(("scale", wl.fanout(sizes["scale"]), 1))
    return plan


def _startup_probe(code: str, env: dict[str, str] | None = None) -> float | None:
    """Run ``code`` (which prints elapsed seconds) in a fresh interpreter; None if it fails."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    try:
        return float(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


# ---------------------------------------------------------------------------
# geo-infer-ops


def run_geo_infer_ops(sizes: dict[str, int], repeats: int, run_timeout_s: float = 600) -> dict[str, Any]:
    """Time ``execute_workflow`` (SQLite store in a temp GEO_INFER_OPS_HOME) on every workload.

    A single ``execute_workflow`` call that takes longer than ``run_timeout_s`` dumps all stacks to
    stderr and exits the process (use it through :func:`run_geo_infer_ops_isolated`).
    """
    home = tempfile.mkdtemp(prefix="gio-bench-")
    os.environ["GEO_INFER_OPS_HOME"] = home
    orch: Any = None
    try:
        try:
            from geo_infer_ops import action
            from geo_infer_ops.orchestration import WorkflowOrchestrator
        except ImportError as exc:
            return {"available": False, "error": f"engine not importable yet ({exc})"}

        import geo_infer_ops

        @action("BENCH", "noop")
        def noop() -> None:
            """No-op benchmark step."""
            return None

        probe = (
            "import time; t=time.perf_counter(); import geo_infer_ops; "
            "from geo_infer_ops.orchestration import WorkflowOrchestrator; WorkflowOrchestrator(); "
            "print(time.perf_counter()-t)"
        )
        probe_home = tempfile.mkdtemp(prefix="gio-bench-startup-")
        startup_s = _startup_probe(probe, {**os.environ, "GEO_INFER_OPS_HOME": probe_home})
        shutil.rmtree(probe_home, ignore_errors=True)

        orch = WorkflowOrchestrator()
        counter = iter(range(1_000_000))

        def define(name: str, dag: wl.Dag) -> Any:
            steps = [
                {"name": step, "module": "BENCH", "action": "noop", "dependencies": deps}
                for step, deps in dag
            ]
            return orch.define_workflow({"name": f"bench-{name}-{next(counter)}", "steps": steps})

        def executor(wf: Any) -> Callable[[], None]:
            def go() -> None:
                # a hung run dumps every thread's stack and ends the worker instead of blocking forever
                faulthandler.dump_traceback_later(run_timeout_s, exit=True)
                try:
                    result = orch.execute_workflow(wf)
                finally:
                    faulthandler.cancel_dump_traceback_later()
                status = result.get("status") if isinstance(result, dict) else getattr(result, "status", None)
                if str(status) != "succeeded":
                    raise RuntimeError(f"geo-infer-ops run ended with status {status!r}")

            return go

        out: dict[str, Any] = {
            "available": True,
            "version": getattr(geo_infer_ops, "__version__", _dist_version("geo-infer-ops")),
            "store": "sqlite (temp GEO_INFER_OPS_HOME)",
            "startup": {"startup_s": startup_s},
            "workloads": {},
        }
        for name, dag, runs in _plan(sizes, with_scale=True):
            say(f"[geo-infer-ops] {name}: {len(dag)} tasks x {runs} run(s) x {repeats} repeats")
            if name == "fanout":
                define_samples = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    wf = define(name, dag)
                    define_samples.append(time.perf_counter() - t0)
                out["define_workflow"] = {
                    "tasks": len(dag),
                    "samples_s": define_samples,
                    "best_ms": 1e3 * min(define_samples),
                }
            else:
                wf = define(name, dag)
            out["workloads"][name] = _measure(executor(wf), dag, runs, repeats)
        return out
    except Exception as exc:  # report, don't crash the whole benchmark
        log.print_exception()
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        close = getattr(orch, "close", None) if orch is not None else None
        if callable(close):
            close()
        shutil.rmtree(home, ignore_errors=True)


def run_geo_infer_ops_isolated(sizes: dict[str, int], repeats: int, timeout_s: float) -> dict[str, Any]:
    """Run :func:`run_geo_infer_ops` in a child interpreter: a hang or crash is reported, not fatal."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--gio-worker",
        json.dumps({"sizes": sizes, "repeats": repeats, "run_timeout_s": timeout_s / 4}),
    ]
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return {"available": False, "error": f"timed out after {timeout_s:.0f} s (engine hang?)"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {
            "available": False,
            "error": f"worker died (exit {proc.returncode}) without a result; a hung run prints "
            "every thread's stack above",
        }


def _gio_worker(config: str) -> int:
    """``--gio-worker`` mode: print :func:`run_geo_infer_ops`'s result as one JSON line on the real stdout."""
    cfg = json.loads(config)
    result_fd = os.dup(1)
    os.dup2(2, 1)  # whatever the engine prints goes to stderr, keeping stdout for the JSON
    result = run_geo_infer_ops(cfg["sizes"], int(cfg["repeats"]), float(cfg["run_timeout_s"]))
    with os.fdopen(result_fd, "w") as fh:
        fh.write(json.dumps(result) + "\n")
    return 0


# ---------------------------------------------------------------------------
# Dask


def run_dask(sizes: dict[str, int], repeats: int) -> dict[str, dict[str, Any]]:
    """Time ``dask.threaded.get`` on raw graph dicts and ``dask.delayed`` ``.compute()``."""
    try:
        import dask
        import dask.threaded
        from dask import delayed
    except ImportError as exc:
        err = {"available": False, "error": f"dask not importable ({exc})"}
        return {DASK: err, DELAYED: dict(err)}

    startup_s = _startup_probe(
        "import time; t=time.perf_counter(); import dask.threaded; print(time.perf_counter()-t)"
    )
    common = {"available": True, "version": dask.__version__, "startup": {"startup_s": startup_s}}
    raw: dict[str, Any] = {**common, "scheduler": "dask.threaded.get (default pool)", "workloads": {}}
    dly: dict[str, Any] = {**common, "scheduler": "delayed.compute(scheduler='threads')", "workloads": {}}

    for name, dag, runs in _plan(sizes, with_scale=True):
        sink = wl.sink_of(dag)
        say(f"[dask] {name}: {len(dag)} tasks x {runs} run(s) x {repeats} repeats")

        graph = {step: (_noop, *deps) for step, deps in dag}
        raw["workloads"][name] = _measure(
            lambda g=graph, s=sink: dask.threaded.get(g, [s]), dag, runs, repeats
        )

        objs: dict[str, Any] = {}
        for step, deps in dag:
            objs[step] = delayed(_noop, pure=True)(*(objs[d] for d in deps), dask_key_name=step)
        target = objs[sink]
        dly["workloads"][name] = _measure(lambda t=target: t.compute(scheduler="threads"), dag, runs, repeats)
    return {DASK: raw, DELAYED: dly}


# ---------------------------------------------------------------------------
# Prefect (own venv, subprocess)


def _prefect_python() -> Path:
    return PREFECT_VENV / "bin" / "python"


def _prefect_installed_version() -> str | None:
    py = _prefect_python()
    if not py.exists():
        return None
    proc = subprocess.run(
        [str(py), "-c", "import prefect; print(prefect.__version__)"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    version = proc.stdout.strip()
    return version if proc.returncode == 0 and version.startswith("3.") else None


def ensure_prefect() -> tuple[Path | None, str]:
    """Make sure ``bench/.venv-prefect`` has Prefect 3; returns (python, message)."""
    version = _prefect_installed_version()
    if version:
        return _prefect_python(), f"Prefect {version} in {PREFECT_VENV}"
    say(f"Installing {PREFECT_REQUIREMENT!r} into {PREFECT_VENV} (first use, needs PyPI; a few minutes)...")
    steps = [
        [sys.executable, "-m", "venv", str(PREFECT_VENV)],
        [
            str(_prefect_python()),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "-q",
            PREFECT_REQUIREMENT,
        ],
    ]
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"Prefect install failed ({' '.join(cmd[:3])}...): {exc}"
        if proc.returncode != 0:
            errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("WARNING: Location")]
            tail = "\n".join(errors[-8:])
            return None, f"Prefect install failed (exit {proc.returncode}, no network?):\n{tail}"
    version = _prefect_installed_version()
    if not version:
        return None, "Prefect install finished but `import prefect` (3.x) fails in the bench venv"
    return _prefect_python(), f"installed Prefect {version} in {PREFECT_VENV}"


def prefect_env(home: str) -> dict[str, str]:
    """Environment for the runner: ephemeral server in a temp PREFECT_HOME, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "VIRTUAL_ENV"}
    env.update(
        PREFECT_HOME=home,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_prefect(sizes: dict[str, int], repeats: int, timeout_s: float) -> dict[str, Any]:
    """Install (first time) and run ``_prefect_runner.py`` in the Prefect venv; parse its JSON."""
    python, message = ensure_prefect()
    say(f"[prefect] {message}")
    if python is None:
        return {"available": False, "error": message}
    home = tempfile.mkdtemp(prefix="prefect-bench-")
    PREFECT_LOG.parent.mkdir(parents=True, exist_ok=True)
    cfg = json.dumps({"sizes": sizes, "repeats": repeats})
    say(f"[prefect] running {PREFECT_RUNNER.name}; Prefect's own log: {PREFECT_LOG}")
    try:
        t0 = time.perf_counter()
        with PREFECT_LOG.open("w") as log_file:
            proc = subprocess.Popen(
                [str(python), str(PREFECT_RUNNER), cfg],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=prefect_env(home),
                cwd=home,
            )
            pump = threading.Thread(target=_pump_stderr, args=(proc, log_file), daemon=True)
            pump.start()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                return {"available": False, "error": f"Prefect runner timed out after {timeout_s:.0f} s"}
            finally:
                pump.join(timeout=10)
        process_s = time.perf_counter() - t0
        assert proc.stdout is not None
        lines = [ln for ln in proc.stdout.read().splitlines() if ln.strip()]
        result = json.loads(lines[-1]) if lines else {"available": False, "error": "runner printed nothing"}
        result.setdefault("process_wall_s", process_s)
        if not result.get("available"):
            tail = PREFECT_LOG.read_text(errors="replace").splitlines()[-15:]
            say("[prefect] runner failed; last lines of its log:\n" + "\n".join(tail))
        return result
    except (json.JSONDecodeError, OSError) as exc:
        return {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _pump_stderr(proc: subprocess.Popen[str], log_file: Any) -> None:
    """Copy the runner's stderr to the log file, echoing its own ``[prefect]`` progress lines."""
    assert proc.stderr is not None
    for line in proc.stderr:
        log_file.write(line)
        if line.startswith("[prefect]"):
            say(line.rstrip())


# ---------------------------------------------------------------------------
# reporting


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, bool]]:
    """(label, workload key, metric, show ratio) for each table row."""
    s = results["sizes"]
    return [
        (f"fan-out/fan-in, {s['fanout']} tasks (µs/task)", "fanout", "per_task_us", True),
        (f"chain of {s['chain']} (µs/task)", "chain", "per_task_us", True),
        (f"5-step diamond, {s['diamond_runs']} runs (ms/run)", "diamond", "per_run_ms", True),
        (f"fan-out/fan-in, {s['scale']} tasks (µs/task)", "scale", "per_task_us", True),
        ("start-up (s)", "startup", "startup_s", False),
    ]


def value(results: dict[str, Any], system: str, workload: str, metric: str) -> float | None:
    """One number from the results, or None when the system did not run it."""
    sysres = results["systems"].get(system, {})
    if not sysres.get("available"):
        return None
    if workload == "startup":
        return sysres.get("startup", {}).get(metric)
    return sysres.get("workloads", {}).get(workload, {}).get(metric)


def compute_ratios(results: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """system / geo-infer-ops for every overhead metric (>1 means geo-infer-ops is cheaper)."""
    ratios: dict[str, dict[str, float | None]] = {}
    for _label, workload, metric, with_ratio in rows(results):
        if not with_ratio:
            continue
        base = value(results, GIO, workload, metric)
        ratios[workload] = {}
        for system in SYSTEMS[1:]:
            v = value(results, system, workload, metric)
            ratios[workload][system] = v / base if v is not None and base else None
    return ratios


def _fmt(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _fmt_ratio(r: float) -> str:
    if r >= 10:
        return f"{r:,.0f}x"
    return f"{r:.1f}x" if r >= 1 else f"{r:.2f}x"


def cells(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and body of the comparison table (shared by Rich and markdown)."""
    header = ["Workload", *(LABELS[s] for s in SYSTEMS)]
    body: list[list[str]] = []
    for label, workload, metric, with_ratio in rows(results):
        line = [label]
        for system in SYSTEMS:
            v = value(results, system, workload, metric)
            text = _fmt(v)
            ratio = results["ratios_vs_geo_infer_ops"].get(workload, {}).get(system) if with_ratio else None
            if ratio is not None:
                text += f" ({_fmt_ratio(ratio)})"
            line.append(text)
        body.append(line)
    define = results["systems"].get(GIO, {}).get("define_workflow")
    if define:
        body.append(
            [f"define_workflow, {define['tasks']} tasks (ms)", _fmt(define["best_ms"]), "-", "-", "-"]
        )
    return header, body


def footnotes(results: dict[str, Any]) -> list[str]:
    """Explanatory lines printed under the table."""
    m = results["meta"]
    notes = [
        f"Best of {m['repeats']} repeats after one warm-up; {m['cpu_count']} cores, Python {m['python']}, "
        f"{m['platform']}. (Nx) = system ÷ geo-infer-ops: above 1 means geo-infer-ops has less overhead.",
    ]
    for system in SYSTEMS:
        res = results["systems"].get(system, {})
        if not res.get("available"):
            notes.append(f"{LABELS[system]}: unavailable — {res.get('error', 'skipped')}")
        for name, w in res.get("workloads", {}).items():
            if w.get("errors"):
                what = "failed" if w.get("error") else f"{len(w['errors'])} failed batch(es) retried"
                notes.append(f"{LABELS[system]} {name}: {what}: {w['errors'][-1][:160]}")
    pf = results["systems"].get(PREFECT, {})
    direct = pf.get("workloads", {}).get("chain_direct", {})
    if direct.get("per_task_us") is not None:
        notes.append(
            "Prefect chain as plain sequential task calls (no .submit): "
            f"{_fmt(direct['per_task_us'])} µs/task."
        )
    if pf.get("available"):
        st = pf["startup"]
        notes.append(
            f"Prefect {pf['version']} start-up = import {st['import_s']:.1f} s + first flow run "
            f"{st['first_flow_run_s']:.1f} s (ephemeral server + SQLite); not included in per-task numbers. "
            f"A warm one-task Prefect flow run takes {st['warm_one_task_flow_run_s']:.2f} s, which dominates "
            "its diamond time (the flow-run heartbeat thread is joined at exit)."
        )
    return notes


def print_rich(results: dict[str, Any], console: Console) -> None:
    """Print the comparison as a Rich table."""
    header, body = cells(results)
    table = Table(title="Orchestration overhead (no-op tasks)", title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i == 0 else "right")
    for line in body:
        table.add_row(*line)
    console.print(table)
    for note in footnotes(results):
        console.print(f"[dim]{note}[/dim]")


def markdown(results: dict[str, Any]) -> str:
    """The comparison as a GitHub-flavoured markdown table (for docs/performance.md)."""
    header, body = cells(results)
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in body]
    out += ["", *(f"- {note}" for note in footnotes(results))]
    return "\n".join(out)


# ---------------------------------------------------------------------------


def build_results(args: argparse.Namespace) -> dict[str, Any]:
    """Run every selected system and return the full results document."""
    sizes = wl.sizes(args.quick)
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "quick": args.quick,
            "repeats": args.repeats,
            "python": platform.python_version(),
            "platform": platform.platform(terse=True),
            "cpu_count": os.cpu_count(),
            "metric": "per-task overhead = wall time of one run / tasks in the run; best of repeats",
        },
        "sizes": sizes,
        "systems": {},
    }
    results["systems"][GIO] = run_geo_infer_ops_isolated(sizes, args.repeats, 120 if args.quick else 1800)
    if not results["systems"][GIO]["available"]:
        log.print(f"[yellow]geo-infer-ops skipped: {results['systems'][GIO]['error']}[/yellow]")
    results["systems"].update(run_dask(sizes, args.repeats))
    if args.skip_prefect:
        results["systems"][PREFECT] = {"available": False, "error": "skipped (--skip-prefect)"}
    else:
        pf_sizes = {k: v for k, v in sizes.items() if k != "scale"}
        results["systems"][PREFECT] = run_prefect(
            pf_sizes, args.repeats, timeout_s=600 if args.quick else 3600
        )

    for sysres in results["systems"].values():
        for name, raw in sysres.get("workloads", {}).items():
            sysres["workloads"][name] = summarize(raw)
    results["ratios_vs_geo_infer_ops"] = compute_ratios(results)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes: whole run in under a minute")
    p.add_argument(
        "--markdown", action="store_true", help="print a markdown table on stdout (Rich table to stderr)"
    )
    p.add_argument("--skip-prefect", action="store_true", help="do not install or run Prefect")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats per workload, the best is kept (3; --quick: 2)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=None,
        help="JSON results path (default bench/results/engine_overhead.json; with --quick, "
        "bench/results/engine_overhead.quick.json)",
    )
    p.add_argument("--gio-worker", metavar="CONFIG", help=argparse.SUPPRESS)  # internal: child-process mode
    args = p.parse_args(argv)
    if args.output is None:
        args.output = QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, write the JSON, print the tables."""
    args = parse_args(argv)
    if args.gio_worker:
        return _gio_worker(args.gio_worker)
    results = build_results(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    out = log if args.markdown else Console(width=None if sys.stdout.isatty() else 130)
    print_rich(results, out)
    log.print(f"[dim]results written to {args.output}[/dim]")
    if args.markdown:
        print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
