"""Fuzzing the workflow parser: any input is a Workflow or a WorkflowSpecError, never another exception."""

from __future__ import annotations

import itertools
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo_infer_ops.errors import WorkflowSpecError
from geo_infer_ops.modules.registry import ActionRegistry
from geo_infer_ops.orchestration.dag import Plan
from geo_infer_ops.orchestration.spec import Workflow, parse_workflow

# A private registry: the fuzzer must not depend on (or pollute) the global one.
REGISTRY = ActionRegistry()
# no built-ins, no plug-ins: the actions below are the whole world
REGISTRY._loaded_sources.update({"entry-points", "builtins"})


def _load(source: str = "s", limit: int = 10, ctx: Any = None) -> int:
    return 1


def _any(**kwargs: Any) -> int:
    return 1


def _needs(value: float) -> float:
    return value


REGISTRY.register("DATA", "load", _load)
REGISTRY.register("DATA", "anything", _any)
REGISTRY.register("SPACE", "analyze", _needs)
REGISTRY.register("AI", "predict", _load)

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "name",
    "description",
    "schedule",
    "steps",
    "dependencies",
    "error_handling",
    "max_parallel",
    "module",
    "action",
    "parameters",
    "timeout",
    "executor",
    "max_retries",
    "retry_failed_steps",
    "fallback_actions",
    "backoff_strategy",
    "base_delay",
    "max_delay",
    "jitter",
    "non_retryable_errors",
    "DATA",
    "SPACE",
    "AI",
    "load",
    "analyze",
    "predict",
    "source",
    "limit",
    "value",
    "a",
    "b",
]
SCHEDULES = [
    "hourly",
    "daily",
    "@weekly",
    "*/5 * * * *",
    "every 15m",
    "every 0s",
    "every 1e9 d",
    "every 99999999999999999999 d",
    "61 * * * *",
    "",
    " ",
    "never",
]
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.text(max_size=12),
    st.sampled_from(KEYS),
    st.sampled_from(SCHEDULES),
    st.sampled_from(["exponential", "fixed", "linear", "thread", "process"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=4),
        st.dictionaries(st.integers(-3, 3), children, max_size=2),
    ),
    max_leaves=20,
)


def check(data: Any) -> Workflow | None:
    try:
        wf = parse_workflow(data, registry=REGISTRY)
    except WorkflowSpecError as exc:
        assert exc.problems
        assert all(isinstance(p.path, str) and p.message for p in exc.problems)
        str(exc)
        exc.to_dict()
        return None
    assert isinstance(wf, Workflow)
    plan = Plan.from_workflow(wf)
    assert sorted(plan.order) == sorted(wf.step_names)
    return wf


@FUZZ
@given(JSONISH)
def test_any_json_like_value(data: Any) -> None:
    check(data)


STEP_KEYS = st.sampled_from(
    [
        "name",
        "module",
        "action",
        "parameters",
        "dependencies",
        "timeout",
        "executor",
        "max_retries",
        "description",
        "paramters",
        "deps",
    ]
)
MODULES = st.sampled_from(["DATA", "data", "SPACE", "AI", "APP", " data ", ""])
ACTIONS = st.sampled_from(["load", "anything", "analyze", "predict", "missing", ""])
FALLBACK_TARGETS = st.one_of(ACTIONS, st.sampled_from(["AI.predict", "X.", ".load", "ai.load"]))
STEP_NAMES = st.sampled_from(["a", "b", "c", "d", "DATA.load", "DATA.load#2", "SPACE.analyze", " a "])


@st.composite
def workflow_shaped(draw: st.DrawFn) -> dict[Any, Any]:
    steps = draw(
        st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {"module": MODULES, "action": ACTIONS},
                    optional={
                        "name": st.one_of(STEP_NAMES, SCALARS),
                        "dependencies": st.one_of(st.lists(STEP_NAMES, max_size=3), JSONISH),
                        "parameters": st.one_of(
                            st.dictionaries(
                                st.sampled_from(["source", "limit", "value", "ctx", "x"]), JSONISH, max_size=3
                            ),
                            JSONISH,
                        ),
                        "timeout": st.one_of(NUMBERS, SCALARS),
                        "max_retries": st.one_of(NUMBERS, SCALARS),
                        "executor": SCALARS,
                    },
                ),
                st.dictionaries(STEP_KEYS, JSONISH, max_size=4),
                JSONISH,
            ),
            max_size=6,
        )
    )
    data: dict[Any, Any] = {"name": draw(st.one_of(st.sampled_from(["wf", " wf "]), SCALARS)), "steps": steps}
    if draw(st.booleans()):
        data["dependencies"] = draw(
            st.one_of(st.dictionaries(MODULES, st.lists(MODULES, max_size=3), max_size=3), JSONISH)
        )
    if draw(st.booleans()):
        data["error_handling"] = draw(
            st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "retry_failed_steps": SCALARS,
                        "max_retries": st.one_of(NUMBERS, SCALARS),
                        "backoff_strategy": SCALARS,
                        "base_delay": st.one_of(NUMBERS, SCALARS),
                        "max_delay": st.one_of(NUMBERS, SCALARS),
                        "jitter": st.one_of(NUMBERS, SCALARS),
                        "fallback_actions": st.one_of(
                            st.dictionaries(st.one_of(STEP_NAMES, MODULES), FALLBACK_TARGETS, max_size=3),
                            JSONISH,
                        ),
                        "non_retryable_errors": JSONISH,
                    },
                ),
                JSONISH,
            )
        )
    if draw(st.booleans()):
        data["schedule"] = draw(st.one_of(st.sampled_from(SCHEDULES), SCALARS))
    extra = draw(
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=5), st.integers()), JSONISH, max_size=2
        )
    )
    for key, value in extra.items():
        data.setdefault(key, value)
    return data


@FUZZ
@given(workflow_shaped())
def test_workflow_shaped_dicts(data: dict[Any, Any]) -> None:
    wf = check(data)
    if wf is not None:
        # what is stored re-parses to the same version (resume depends on it)
        assert parse_workflow(wf.definition, registry=REGISTRY).version == wf.version


@st.composite
def random_graph(draw: st.DrawFn, acyclic: bool) -> dict[str, list[str]]:
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"s{i}" for i in range(n)]
    edges: dict[str, list[str]] = {}
    for i, name in enumerate(names):
        candidates = names[:i] if acyclic else [m for m in names if m != name]
        if candidates:
            edges[name] = draw(st.lists(st.sampled_from(candidates), max_size=4, unique=True))
        else:
            edges[name] = []
    if acyclic:
        shuffled = draw(st.permutations(names))
        edges = {name: edges[name] for name in shuffled}
    return edges


def _workflow(edges: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "name": "graph",
        "steps": [
            {"name": name, "module": "DATA", "action": "load", "dependencies": deps}
            for name, deps in edges.items()
        ],
    }


@FUZZ
@given(random_graph(acyclic=True))
def test_random_dags_parse_and_plan_respects_dependencies(edges: dict[str, list[str]]) -> None:
    wf = parse_workflow(_workflow(edges), registry=REGISTRY)
    plan = Plan.from_workflow(wf)
    position = {name: i for i, name in enumerate(plan.order)}
    assert set(position) == set(edges)
    for name, deps in edges.items():
        assert set(wf.step(name).dependencies) == set(deps)
        for dep in deps:
            assert position[dep] < position[name]
    for root in plan.roots():
        assert not edges[root]


def _has_cycle(edges: dict[str, list[str]]) -> bool:
    from graphlib import CycleError, TopologicalSorter

    try:
        TopologicalSorter(edges).prepare()
    except CycleError:
        return True
    return False


@FUZZ
@given(random_graph(acyclic=False))
def test_random_graphs_with_cycles(edges: dict[str, list[str]]) -> None:
    if _has_cycle(edges):
        with pytest.raises(WorkflowSpecError) as info:
            parse_workflow(_workflow(edges), registry=REGISTRY)
        [problem] = info.value.problems
        nodes = problem.message.removeprefix("cycle: ").split(" -> ")
        assert len(nodes) >= 3 and nodes[0] == nodes[-1]
        assert all(b in edges[a] for a, b in itertools.pairwise(nodes))
    else:
        check(_workflow(edges))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(string.ascii_letters[:6]), st.text(max_size=8)), max_size=5))
def test_schedule_text_never_crashes(pairs: list[tuple[str, str]]) -> None:
    for prefix, rest in pairs:
        texts = (f"every {rest}", f"{prefix} {rest}", rest, f"*/{rest} * * * *", f"every {len(rest) * 9}9 d")
        for text in texts:
            check({"name": "s", "schedule": text, "steps": [{"module": "DATA", "action": "load"}]})
