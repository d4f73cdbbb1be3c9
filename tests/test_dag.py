"""The plan: topological order, roots, descendants and the critical path."""

from __future__ import annotations

from graphlib import CycleError

import pytest

from geo_infer_ops.orchestration.dag import Plan
from geo_infer_ops.orchestration.spec import parse_workflow

DIAMOND = {
    "load": [],
    "space": ["load"],
    "time": ["load"],
    "predict": ["space", "time"],
    "report": ["predict"],
    "archive": ["load"],
}


def assert_topological(plan: Plan, edges: dict[str, list[str]]) -> None:
    position = {name: i for i, name in enumerate(plan.order)}
    assert sorted(position) == sorted(edges)
    for name, deps in edges.items():
        for dep in deps:
            assert position[dep] < position[name], (dep, name)


def test_order_roots_and_neighbours() -> None:
    plan = Plan.from_edges(DIAMOND)
    assert_topological(plan, DIAMOND)
    assert plan.roots() == ["load"]
    assert plan.upstream["predict"] == ("space", "time")
    assert set(plan.downstream["load"]) == {"space", "time", "archive"}
    assert plan.downstream["report"] == ()


def test_several_roots() -> None:
    plan = Plan.from_edges({"a": [], "b": [], "c": ["a", "b"]})
    assert sorted(plan.roots()) == ["a", "b"]
    assert plan.order[-1] == "c"


def test_descendants_in_topological_order() -> None:
    plan = Plan.from_edges(DIAMOND)
    assert plan.descendants("space") == ["predict", "report"]
    assert set(plan.descendants("load")) == {"space", "time", "predict", "report", "archive"}
    below = plan.descendants("load")
    assert below.index("predict") > below.index("space") and below.index("report") > below.index("predict")
    assert plan.descendants("report") == []
    assert plan.descendants("archive") == []


def test_critical_path_with_known_durations() -> None:
    plan = Plan.from_edges(DIAMOND)
    durations = {"load": 2.0, "space": 10.0, "time": 3.0, "predict": 4.0, "report": 1.0, "archive": 15.0}
    path, total = plan.critical_path(durations)
    assert path == ["load", "archive"]
    assert total == pytest.approx(17.0)
    durations["archive"] = 5.0
    path, total = plan.critical_path(durations)
    assert path == ["load", "space", "predict", "report"]
    assert total == pytest.approx(17.0)
    durations["time"] = 11.0
    path, total = plan.critical_path(durations)
    assert path == ["load", "time", "predict", "report"]
    assert total == pytest.approx(18.0)


def test_critical_path_missing_durations_count_as_zero() -> None:
    plan = Plan.from_edges({"a": [], "b": ["a"], "c": ["b"]})
    assert plan.critical_path({"a": 1.0, "c": 2.0}) == (["a", "b", "c"], 3.0)
    assert plan.critical_path({"b": None})[1] == 0.0  # type: ignore[dict-item]
    assert Plan.from_edges({}).critical_path({}) == ([], 0.0)


def test_cycle_in_raw_edges_is_refused() -> None:
    with pytest.raises(CycleError):
        Plan.from_edges({"a": ["b"], "b": ["a"]})


def test_from_workflow() -> None:
    wf = parse_workflow(
        {
            "name": "w",
            "steps": [
                {"module": "DATA", "action": "load"},
                {"module": "SPACE", "action": "grid"},
                {"module": "APP", "action": "report"},
            ],
            "dependencies": {"SPACE": ["DATA"], "APP": ["SPACE", "DATA"]},
        },
        check_actions=False,
    )
    plan = Plan.from_workflow(wf)
    assert plan.order == ("DATA.load", "SPACE.grid", "APP.report")
    assert set(plan.upstream["APP.report"]) == {"SPACE.grid", "DATA.load"}
    assert plan.descendants("DATA.load") == ["SPACE.grid", "APP.report"]


def test_ten_thousand_nodes() -> None:
    n = 10_000
    # a layered graph: each node depends on up to three earlier ones
    edges = {f"n{i}": [f"n{j}" for j in {i - 1, i // 2, i - 7} if 0 <= j < i] for i in range(n)}
    plan = Plan.from_edges(edges)
    assert len(plan.order) == n
    assert_topological(plan, edges)
    assert plan.roots() == ["n0"]
    assert len(plan.descendants("n0")) == n - 1
    path, total = plan.critical_path(dict.fromkeys(edges, 1.0))
    assert total == float(n) and len(path) == n  # the n-1 chain runs through every node
    assert path[0] == "n0" and path[-1] == f"n{n - 1}"
