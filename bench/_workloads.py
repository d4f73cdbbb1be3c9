"""Workload shapes shared by every system in the benchmark (stdlib only).

A workload is a list of ``(name, dependencies)`` pairs in topological order; the last
entry is the single sink. Every system builds its own native graph from the same list,
so all of them run exactly the same DAG. This module is imported both by
``engine_overhead.py`` (project venv) and by ``_prefect_runner.py`` (Prefect venv).
"""

from __future__ import annotations

Dag = list[tuple[str, list[str]]]

DIAMOND_STEPS = ("DATA", "SPACE", "TIME", "AI", "APP")


def fanout(n: int) -> Dag:
    """1 root -> ``n`` independent tasks -> 1 sink (the sink depends on all ``n``)."""
    mids = [f"t{i}" for i in range(n)]
    return [("root", []), *((m, ["root"]) for m in mids), ("sink", mids)]


def chain(n: int) -> Dag:
    """A linear chain of ``n`` tasks, each depending on the previous one."""
    return [(f"c{i}", [f"c{i - 1}"] if i else []) for i in range(n)]


def diamond() -> Dag:
    """The spec's 5-step diamond: DATA -> (SPACE, TIME) -> AI -> APP."""
    return [
        ("DATA", []),
        ("SPACE", ["DATA"]),
        ("TIME", ["DATA"]),
        ("AI", ["SPACE", "TIME"]),
        ("APP", ["AI"]),
    ]


def sink_of(dag: Dag) -> str:
    """Name of the final task (the one whose completion ends the run)."""
    return dag[-1][0]


def sizes(quick: bool) -> dict[str, int]:
    """Workload sizes for a full or a ``--quick`` run."""
    if quick:  # sized so that Prefect (~20 s start-up, ~1 s per flow run) still fits in a minute
        return {"fanout": 50, "chain": 20, "diamond_runs": 2, "scale": 1000}
    return {"fanout": 1000, "chain": 200, "diamond_runs": 50, "scale": 10000}
