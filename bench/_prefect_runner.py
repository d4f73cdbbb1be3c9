"""Prefect 3 half of the engine-overhead benchmark.

Runs inside ``bench/.venv-prefect`` (Prefect must not be installed in the project venv).
``engine_overhead.py`` starts it as a subprocess with one JSON argument::

    {"sizes": {"fanout": 1000, "chain": 200, "diamond_runs": 50, "scale": 10000}, "repeats": 3}

and reads back exactly one JSON document on stdout. Everything else (Prefect's own logging,
prints) goes to stderr: file descriptor 1 is re-pointed to stderr before Prefect is imported.

Every workload is a ``@flow`` that submits no-op ``@task`` runs with ``.submit(wait_for=[...])``
on the default ``ThreadPoolTaskRunner``; the timed wall time is the whole flow call (flow-run
creation, submission, execution and final state), with the ephemeral API server already up.
Start-up (``import prefect`` plus the first flow run, which starts the ephemeral server and
creates its SQLite database) is measured separately.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import _workloads as wl


def _noop() -> None:
    """The task body: does nothing, returns None."""
    return None


def _make_flow(name: str, dag: wl.Dag, task_obj: Any, flow_deco: Callable[..., Any]) -> Callable[[], Any]:
    """Build a parameterless ``@flow`` that submits ``dag`` in topological order and waits for its sink."""

    def body() -> None:
        futures: dict[str, Any] = {}
        for step, deps in dag:
            futures[step] = task_obj.submit(wait_for=[futures[d] for d in deps])
        futures[wl.sink_of(dag)].result()

    body.__name__ = name
    return flow_deco(name=name)(body)


def _time_flow(flow_fn: Callable[..., Any], runs: int = 1) -> float:
    """Wall seconds for ``runs`` consecutive calls of ``flow_fn``; raises unless every run completed."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(runs):
        state = flow_fn(return_state=True)
        if not state.is_completed():
            raise RuntimeError(f"flow {flow_fn.name!r} ended in state {state.type}")
    return time.perf_counter() - t0


def _measure(flow_fn: Callable[..., Any], runs: int, repeats: int, settle_s: float) -> dict[str, Any]:
    """Warm-up run, then ``repeats`` timed batches; a failed batch (e.g. a 503 from the busy ephemeral
    server) is recorded and retried, at most two extra times. ``settle_s`` of idle time after every
    batch lets the server finish persisting the previous run's events (untimed)."""
    samples: list[float] = []
    errors: list[str] = []
    for attempt in range(repeats + 3):  # warm-up + repeats + 2 retries
        if len(samples) >= repeats:
            break
        try:
            elapsed = _time_flow(flow_fn, 1 if attempt == 0 else runs)
            if attempt > 0:
                samples.append(elapsed)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            print(f"[prefect] {flow_fn.name}: batch failed ({errors[-1][:200]}); retrying", file=sys.stderr)
        time.sleep(settle_s)
    return {"samples_s": samples, "errors": errors}


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Measure start-up and the three workloads; return the raw samples."""
    sizes: dict[str, int] = cfg["sizes"]
    repeats: int = int(cfg["repeats"])

    t0 = time.perf_counter()
    import prefect
    from prefect import flow, task
    from prefect.task_runners import ThreadPoolTaskRunner

    import_s = time.perf_counter() - t0

    noop = task(name="noop")(_noop)
    hello = _make_flow("bench-startup", [("only", [])], noop, flow)
    first_run_s = _time_flow(hello)  # starts the ephemeral server + creates its SQLite DB
    warm_run_s = min(_time_flow(hello) for _ in range(3))

    out: dict[str, Any] = {
        "available": True,
        "version": prefect.__version__,
        "task_runner": "ThreadPoolTaskRunner",
        "task_runner_max_workers": getattr(ThreadPoolTaskRunner(), "_max_workers", None),
        "startup": {
            "import_s": import_s,
            "first_flow_run_s": first_run_s,
            "warm_one_task_flow_run_s": warm_run_s,
            "startup_s": import_s + first_run_s,
        },
        "workloads": {},
    }

    plan: list[tuple[str, wl.Dag, int]] = [
        ("fanout", wl.fanout(sizes["fanout"]), 1),
        ("chain", wl.chain(sizes["chain"]), 1),
        ("diamond", wl.diamond(), sizes["diamond_runs"]),
    ]
    for name, dag, runs in plan:
        print(f"[prefect] {name}: {len(dag)} tasks x {runs} run(s) x {repeats} repeats", file=sys.stderr)
        fl = _make_flow(f"bench-{name}", dag, noop, flow)
        settle = min(10.0, 0.005 * len(dag) * runs)
        out["workloads"][name] = {"tasks": len(dag), "runs": runs, **_measure(fl, runs, repeats, settle)}

    # Extra, reported in the JSON only: the same chain as plain sequential task calls inside the flow
    # (no .submit, no thread pool), to separate per-task engine cost from submit/wait_for cost.
    chain_n = sizes["chain"]

    @flow(name="bench-chain-direct")
    def chain_direct() -> None:
        for _ in range(chain_n):
            noop()

    print(f"[prefect] chain_direct: {chain_n} sequential task calls x {repeats} repeats", file=sys.stderr)
    out["workloads"]["chain_direct"] = {
        "tasks": chain_n,
        "runs": 1,
        **_measure(chain_direct, 1, repeats, min(10.0, 0.005 * chain_n)),
    }
    return out


def main() -> int:
    """Entry point: parse the JSON config, keep stdout clean for the JSON result."""
    cfg = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {"sizes": wl.sizes(True), "repeats": 1}
    result_fd = os.dup(1)
    os.dup2(2, 1)  # anything Prefect prints to stdout now lands on stderr
    try:
        result = run(cfg)
    except Exception as exc:
        traceback.print_exc()
        result = {"available": False, "error": f"{type(exc).__name__}: {exc}"}
    with os.fdopen(result_fd, "w") as fh:
        fh.write(json.dumps(result) + "\n")
    return 0 if result.get("available") else 1


if __name__ == "__main__":
    sys.exit(main())
