"""The workflow format: the spec's examples parse as written; every mistake is reported at once."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from geo_infer_ops import action
from geo_infer_ops.errors import ActionRegistrationError, WorkflowSpecError
from geo_infer_ops.modules.registry import registry
from geo_infer_ops.orchestration.spec import Workflow, load_workflow_file, parse_workflow

# ---------------------------------------------------------------------------
# the spec's examples, verbatim

OPS_MANAGER_EXAMPLE: dict[str, Any] = {
    "name": "environmental_analysis",
    "steps": [
        {"module": "DATA", "action": "load_sensor_data"},
        {"module": "SPACE", "action": "spatial_analysis"},
        {"module": "TIME", "action": "temporal_analysis"},
        {"module": "AI", "action": "predict_conditions"},
        {"module": "APP", "action": "generate_report"},
    ],
    "dependencies": {
        "SPACE": ["DATA"],
        "TIME": ["DATA"],
        "AI": ["SPACE", "TIME"],
        "APP": ["AI"],
    },
}

COMPREHENSIVE_EXAMPLE: dict[str, Any] = {
    "name": "comprehensive_environmental_analysis",
    "description": "Complete environmental monitoring and analysis pipeline",
    "steps": [
        {
            "name": "data_ingestion",
            "module": "DATA",
            "action": "load_environmental_data",
            "parameters": {"data_sources": ["sensors", "satellite", "weather"], "time_range": "last_30_days"},
        },
        {
            "name": "spatial_processing",
            "module": "SPACE",
            "action": "analyze_spatial_patterns",
            "dependencies": ["data_ingestion"],
            "parameters": {"analysis_type": "clustering", "spatial_resolution": 0.01},
        },
        {
            "name": "temporal_analysis",
            "module": "TIME",
            "action": "analyze_temporal_trends",
            "dependencies": ["data_ingestion"],
            "parameters": {"trend_analysis": True, "seasonal_decomposition": True},
        },
        {
            "name": "ai_prediction",
            "module": "AI",
            "action": "predict_environmental_conditions",
            "dependencies": ["spatial_processing", "temporal_analysis"],
            "parameters": {"prediction_horizon": 7, "confidence_intervals": True},
        },
        {
            "name": "report_generation",
            "module": "APP",
            "action": "generate_environmental_report",
            "dependencies": ["ai_prediction"],
            "parameters": {"report_format": "pdf", "include_visualizations": True},
        },
    ],
    "error_handling": {
        "retry_failed_steps": True,
        "max_retries": 3,
        "fallback_actions": {"ai_prediction": "use_simple_regression"},
    },
}

MONITORING_EXAMPLE: dict[str, Any] = {
    "name": "environmental_monitoring_pipeline",
    "schedule": "hourly",
    "steps": [
        {"name": "sensor_data_collection", "module": "IOT", "action": "collect_sensor_data", "timeout": 300},
        {
            "name": "data_validation",
            "module": "DATA",
            "action": "validate_sensor_data",
            "dependencies": ["sensor_data_collection"],
        },
        {
            "name": "spatial_analysis",
            "module": "SPACE",
            "action": "analyze_spatial_patterns",
            "dependencies": ["data_validation"],
        },
        {
            "name": "anomaly_detection",
            "module": "AI",
            "action": "detect_environmental_anomalies",
            "dependencies": ["spatial_analysis"],
        },
        {
            "name": "alert_generation",
            "module": "APP",
            "action": "generate_environmental_alerts",
            "dependencies": ["anomaly_detection"],
        },
    ],
}


@pytest.fixture
def spec_actions() -> None:
    """The actions the spec's examples name (override=True: a built-in of the same name may exist)."""

    def reg(module: str, name: str):
        return action(module, name, override=True)

    @reg("DATA", "load_sensor_data")
    def load_sensor_data(source: str = "sensors", ctx: Any = None) -> dict:
        return {"source": source}

    @reg("SPACE", "spatial_analysis")
    def spatial_analysis() -> int:
        return 1

    @reg("TIME", "temporal_analysis")
    def temporal_analysis() -> int:
        return 1

    @reg("AI", "predict_conditions")
    def predict_conditions() -> int:
        return 1

    @reg("APP", "generate_report")
    def generate_report() -> int:
        return 1

    @reg("DATA", "load_environmental_data")
    def load_environmental_data(data_sources: list, time_range: str = "last_7_days") -> int:
        return 1

    @reg("SPACE", "analyze_spatial_patterns")
    def analyze_spatial_patterns(analysis_type: str = "clustering", spatial_resolution: float = 0.1) -> int:
        return 1

    @reg("TIME", "analyze_temporal_trends")
    def analyze_temporal_trends(trend_analysis: bool = True, seasonal_decomposition: bool = False) -> int:
        return 1

    @reg("AI", "predict_environmental_conditions")
    def predict_environmental_conditions(
        prediction_horizon: int = 1, confidence_intervals: bool = False
    ) -> int:
        return 1

    @reg("AI", "use_simple_regression")
    def use_simple_regression(**kwargs: Any) -> int:
        return 0

    @reg("APP", "generate_environmental_report")
    def generate_environmental_report(
        report_format: str = "html", include_visualizations: bool = False
    ) -> int:
        return 1

    @reg("IOT", "collect_sensor_data")
    def collect_sensor_data() -> int:
        return 1

    @reg("DATA", "validate_sensor_data")
    def validate_sensor_data() -> int:
        return 1

    @reg("AI", "detect_environmental_anomalies")
    def detect_environmental_anomalies() -> int:
        return 1

    @reg("APP", "generate_environmental_alerts")
    def generate_environmental_alerts() -> int:
        return 1

    @reg("APP", "notify")
    def notify(**kwargs: Any) -> int:
        return 1


def problems_of(data: Any, **kwargs: Any) -> list[dict[str, str]]:
    with pytest.raises(WorkflowSpecError) as info:
        parse_workflow(data, **kwargs)
    problems = info.value.to_dict()["problems"]
    assert problems, "a WorkflowSpecError must carry at least one problem"
    for p in problems:
        assert p["message"], p
        assert p["fix"], f"problem without a fix: {p}"
    return problems


def paths_of(problems: list[dict[str, str]]) -> list[str]:
    return [p["path"] for p in problems]


def one_step(**extra: Any) -> dict[str, Any]:
    return {"name": "wf", "steps": [{"module": "DATA", "action": "load_sensor_data", **extra}]}


# ---------------------------------------------------------------------------
# the spec's formats


def test_ops_manager_example_names_steps_and_expands_module_dependencies(spec_actions: None) -> None:
    wf = parse_workflow(copy.deepcopy(OPS_MANAGER_EXAMPLE))
    assert isinstance(wf, Workflow)
    assert wf.name == "environmental_analysis"
    assert wf.step_names == [
        "DATA.load_sensor_data",
        "SPACE.spatial_analysis",
        "TIME.temporal_analysis",
        "AI.predict_conditions",
        "APP.generate_report",
    ]
    deps = {s.name: set(s.dependencies) for s in wf.steps}
    assert deps == {
        "DATA.load_sensor_data": set(),
        "SPACE.spatial_analysis": {"DATA.load_sensor_data"},
        "TIME.temporal_analysis": {"DATA.load_sensor_data"},
        "AI.predict_conditions": {"SPACE.spatial_analysis", "TIME.temporal_analysis"},
        "APP.generate_report": {"AI.predict_conditions"},
    }
    assert wf.step("AI.predict_conditions").qualified_action == "AI.predict_conditions"
    assert wf["name"] == "environmental_analysis"


def test_module_dependencies_connect_every_step_of_both_modules(spec_actions: None) -> None:
    data = {
        "name": "fan",
        "steps": [
            {"name": "a", "module": "DATA", "action": "load_sensor_data"},
            {"name": "b", "module": "DATA", "action": "validate_sensor_data"},
            {"name": "c", "module": "space", "action": "spatial_analysis"},
            {"name": "d", "module": "SPACE", "action": "analyze_spatial_patterns"},
        ],
        "dependencies": {"space": ["data"]},
    }
    wf = parse_workflow(data)
    assert set(wf.step("c").dependencies) == {"a", "b"}
    assert set(wf.step("d").dependencies) == {"a", "b"}
    assert wf.step("a").dependencies == ()
    assert wf.step("c").module == "SPACE"


def test_comprehensive_example_keeps_every_field(spec_actions: None) -> None:
    wf = parse_workflow(copy.deepcopy(COMPREHENSIVE_EXAMPLE))
    assert wf.description == "Complete environmental monitoring and analysis pipeline"
    assert wf.step_names == [s["name"] for s in COMPREHENSIVE_EXAMPLE["steps"]]
    ai = wf.step("ai_prediction")
    assert ai.dependencies == ("spatial_processing", "temporal_analysis")
    assert ai.parameters == {"prediction_horizon": 7, "confidence_intervals": True}
    assert wf.step("data_ingestion").parameters["data_sources"] == ["sensors", "satellite", "weather"]
    # a bare fallback action is resolved in the failing step's module
    assert ai.fallback == "AI.use_simple_regression"
    assert wf.step("spatial_processing").fallback is None
    eh = wf.error_handling
    assert eh.retry_failed_steps is True and eh.max_retries == 3
    policy = wf.retry_policy(ai)
    assert policy.max_retries == 3
    assert policy.backoff_strategy == "exponential"


def test_monitoring_example_schedule_and_timeout(spec_actions: None) -> None:
    wf = parse_workflow(copy.deepcopy(MONITORING_EXAMPLE))
    assert wf.schedule == "hourly"
    assert wf.step("sensor_data_collection").timeout == 300
    assert wf.step("alert_generation").dependencies == ("anomaly_detection",)


def test_no_retries_unless_retry_failed_steps(spec_actions: None) -> None:
    data = one_step()
    data["error_handling"] = {"max_retries": 5}
    wf = parse_workflow(data)
    assert wf.retry_policy(wf.steps[0]).max_retries == 0
    data["error_handling"]["retry_failed_steps"] = True
    wf = parse_workflow(data)
    assert wf.retry_policy(wf.steps[0]).max_retries == 5
    data["steps"][0]["max_retries"] = 1
    wf = parse_workflow(data)
    assert wf.retry_policy(wf.steps[0]).max_retries == 1


def test_qualified_fallback_action(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["error_handling"]["fallback_actions"] = {"ai_prediction": "APP.notify", "data_ingestion": "notify"}
    with pytest.raises(WorkflowSpecError) as info:
        parse_workflow(data)
    # a bare name resolves in the step's own module: DATA.notify does not exist
    [problem] = info.value.problems
    assert problem.path == "error_handling.fallback_actions.data_ingestion"
    assert "DATA.notify" in problem.message
    del data["error_handling"]["fallback_actions"]["data_ingestion"]
    wf = parse_workflow(data)
    assert wf.step("ai_prediction").fallback == "APP.notify"


def test_step_fallback_wins_over_module_fallback(spec_actions: None) -> None:
    for order in (("AI", "ai_prediction"), ("ai_prediction", "AI")):
        data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
        targets = {"AI": "APP.notify", "ai_prediction": "use_simple_regression"}
        data["error_handling"]["fallback_actions"] = {key: targets[key] for key in order}
        wf = parse_workflow(data)
        assert wf.step("ai_prediction").fallback == "AI.use_simple_regression", order


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        ("hourly", True),
        ("daily", True),
        ("@weekly", True),
        ("*/15 * * * *", True),
        ("0 6 * * 1-5", True),
        ("every 15m", True),
        ("every 2 hours", True),
        ("sometimes", False),
        ("61 * * * *", False),
        ("every 0m", False),
        ("every 99999999999999999999 d", False),
    ],
)
def test_schedule_forms(spec_actions: None, schedule: str, ok: bool) -> None:
    data = one_step()
    data["schedule"] = schedule
    if ok:
        assert parse_workflow(data).schedule == schedule
    else:
        [problem] = problems_of(data)
        assert problem["path"] == "schedule"


@pytest.mark.parametrize("strategy", ["exponential", "fixed", "linear"])
def test_backoff_settings(spec_actions: None, strategy: str) -> None:
    data = one_step()
    data["error_handling"] = {
        "retry_failed_steps": True,
        "max_retries": 2,
        "backoff_strategy": strategy,
        "base_delay": 2,
        "max_delay": 30,
        "jitter": 0,
    }
    wf = parse_workflow(data)
    policy = wf.retry_policy(wf.steps[0])
    got = (policy.backoff_strategy, policy.base_delay, policy.max_delay, policy.jitter)
    assert got == (strategy, 2, 30, 0)
    expected_second = {"exponential": 4.0, "fixed": 2.0, "linear": 4.0}[strategy]
    assert policy.delay(2) == expected_second


@pytest.mark.parametrize(("given", "expected"), [(True, 0.1), (False, 0.0), (0.25, 0.25), (0, 0.0)])
def test_jitter_bool_or_fraction(spec_actions: None, given: Any, expected: float) -> None:
    data = one_step()
    data["error_handling"] = {"jitter": given}
    assert parse_workflow(data).error_handling.jitter == expected


def test_bad_backoff_values(spec_actions: None) -> None:
    data = one_step()
    data["error_handling"] = {
        "backoff_strategy": "random",
        "jitter": 1.5,
        "base_delay": -1,
        "max_retries": "x",
    }
    problems = problems_of(data)
    assert sorted(paths_of(problems)) == [
        "error_handling.backoff_strategy",
        "error_handling.base_delay",
        "error_handling.jitter",
        "error_handling.max_retries",
    ]
    strategy = next(p for p in problems if p["path"].endswith("backoff_strategy"))
    assert "exponential" in strategy["message"] and "'random'" in strategy["message"]


def test_auto_names_for_duplicate_actions(spec_actions: None) -> None:
    data = {
        "name": "dups",
        "steps": [
            {"module": "DATA", "action": "load_sensor_data"},
            {"module": "data", "action": "load_sensor_data", "parameters": {"source": "b"}},
            {
                "module": "DATA",
                "action": "load_sensor_data",
                "parameters": {"source": "c"},
                "dependencies": ["DATA.load_sensor_data#2"],
            },
        ],
    }
    wf = parse_workflow(data)
    assert wf.step_names == ["DATA.load_sensor_data", "DATA.load_sensor_data#2", "DATA.load_sensor_data#3"]
    assert wf.step("DATA.load_sensor_data#3").dependencies == ("DATA.load_sensor_data#2",)


def test_auto_name_avoids_explicit_names(spec_actions: None) -> None:
    data = {
        "name": "mixed",
        "steps": [
            {"module": "DATA", "action": "load_sensor_data"},
            {"name": "DATA.load_sensor_data", "module": "SPACE", "action": "spatial_analysis"},
        ],
    }
    assert parse_workflow(data).step_names == ["DATA.load_sensor_data#2", "DATA.load_sensor_data"]


# ---------------------------------------------------------------------------
# errors


def test_unknown_keys_suggest_the_right_one(spec_actions: None) -> None:
    data = one_step(parameter={"source": "x"})
    data["descripton"] = "typo"
    data["error_handling"] = {"max_retry": 3}
    problems = {p["path"]: p for p in problems_of(data)}
    assert set(problems) == {"descripton", "steps[0].parameter", "error_handling.max_retry"}
    assert "did you mean 'description'" in problems["descripton"]["fix"]
    assert "did you mean 'parameters'" in problems["steps[0].parameter"]["fix"]
    assert "did you mean 'max_retries'" in problems["error_handling.max_retry"]["fix"]


def test_unknown_dependency_suggests_a_step(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["steps"][2]["dependencies"] = ["data_ingestoin"]
    [problem] = problems_of(data)
    assert problem["path"] == "steps[2].dependencies[0]"
    assert "'data_ingestoin'" in problem["message"]
    assert "data_ingestion" in problem["fix"]


def test_dependency_on_a_step_with_other_problems_is_not_unknown(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["steps"][0]["timeout"] = "soon"  # data_ingestion itself is invalid, but it exists
    problems = problems_of(data)
    assert paths_of(problems) == ["steps[0].timeout"]


def test_unknown_module_in_top_level_dependencies(spec_actions: None) -> None:
    data = copy.deepcopy(OPS_MANAGER_EXAMPLE)
    data["dependencies"]["APP"] = ["AI", "GIS"]
    data["dependencies"]["IOT"] = ["DATA"]
    problems = {p["path"]: p for p in problems_of(data)}
    assert set(problems) == {"dependencies.APP[1]", "dependencies.IOT"}
    assert "SPACE" in problems["dependencies.IOT"]["fix"]


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, ["a", "b"]),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "b", "c"]),
    ],
)
def test_cycles_name_the_cycle(spec_actions: None, edges: dict[str, list[str]], cycle: list[str]) -> None:
    data = {
        "name": "loop",
        "steps": [
            {"name": n, "module": "DATA", "action": "load_sensor_data", "dependencies": d}
            for n, d in edges.items()
        ]
        + [{"name": "outside", "module": "DATA", "action": "load_sensor_data"}],
    }
    [problem] = problems_of(data)
    message = problem["message"]
    assert message.startswith("cycle: ")
    nodes = message[len("cycle: ") :].split(" -> ")
    assert nodes[0] == nodes[-1], message
    assert sorted(nodes[:-1]) == cycle
    assert "outside" not in message
    # each arrow is a real edge of the graph (in one direction or the other, consistently)
    pairs = list(itertools.pairwise(nodes))
    assert all(b in edges[a] for a, b in pairs) or all(a in edges[b] for a, b in pairs)


def test_cycle_through_module_dependencies(spec_actions: None) -> None:
    data = copy.deepcopy(OPS_MANAGER_EXAMPLE)
    data["dependencies"]["DATA"] = ["APP"]
    [problem] = problems_of(data)
    assert problem["message"].startswith("cycle: ")
    assert "DATA.load_sensor_data" in problem["message"] and "APP.generate_report" in problem["message"]


def test_self_dependency(spec_actions: None) -> None:
    data = one_step(name="me", dependencies=["me"])
    [problem] = problems_of(data)
    assert problem["path"] == "steps[0].dependencies[0]"
    assert "itself" in problem["message"]


def test_duplicate_names(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["steps"][3]["name"] = "spatial_processing"
    data["steps"][3]["dependencies"] = ["temporal_analysis"]
    data["steps"][4]["dependencies"] = ["spatial_processing"]
    data["error_handling"]["fallback_actions"] = {}
    [problem] = problems_of(data)
    assert problem["path"] == "steps[3].name"
    assert "duplicate" in problem["message"] and "steps[1]" in problem["message"]


def test_unknown_action_suggests_a_close_one(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["steps"][1]["action"] = "analyze_spatial_pattern"
    [problem] = problems_of(data)
    assert problem["path"] == "steps[1].action"
    assert "SPACE.analyze_spatial_pattern" in problem["message"]
    assert "SPACE.analyze_spatial_patterns" in problem["fix"]


def test_unknown_action_skipped_without_action_check() -> None:
    data = {"name": "x", "steps": [{"module": "NOPE", "action": "nothing"}]}
    wf = parse_workflow(data, check_actions=False)
    assert wf.step_names == ["NOPE.nothing"]


def test_parameters_the_action_does_not_accept_and_missing_ones(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["steps"][0]["parameters"] = {"time_rang": "last_7_days"}  # typo, and data_sources is missing
    problems = {p["path"]: p for p in problems_of(data)}
    assert set(problems) == {"steps[0].parameters.time_rang", "steps[0].parameters"}
    assert "did you mean 'time_range'" in problems["steps[0].parameters.time_rang"]["fix"]
    assert "data_sources" in problems["steps[0].parameters"]["message"]


def test_kwargs_action_accepts_any_parameter_and_ctx_is_not_a_parameter(spec_actions: None) -> None:
    data = {"name": "x", "steps": [{"module": "APP", "action": "notify", "parameters": {"anything": 1}}]}
    assert parse_workflow(data).steps[0].parameters == {"anything": 1}
    data = one_step(parameters={"ctx": 1})
    [problem] = problems_of(data)
    assert problem["path"] == "steps[0].parameters.ctx"


@pytest.mark.parametrize(
    ("step_extra", "path"),
    [
        ({"timeout": "soon"}, "steps[0].timeout"),
        ({"timeout": -5}, "steps[0].timeout"),
        ({"parameters": ["a"]}, "steps[0].parameters"),
        ({"dependencies": "a"}, "steps[0].dependencies"),
        ({"dependencies": [1]}, "steps[0].dependencies[0]"),
        ({"name": ""}, "steps[0].name"),
        ({"parameters": {"source": object()}}, "steps[0].parameters"),
        ({"executor": "gpu"}, "steps[0].executor"),
    ],
)
def test_bad_types(spec_actions: None, step_extra: dict[str, Any], path: str) -> None:
    problems = problems_of(one_step(**step_extra))
    assert path in paths_of(problems)


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"steps": [{"module": "DATA", "action": "load_sensor_data"}]}, "name"),
        ({"name": "x"}, "steps"),
        ({"name": "x", "steps": []}, "steps"),
        ({"name": "x", "steps": "DATA.load"}, "steps"),
        ({"name": "x", "steps": ["DATA.load"]}, "steps[0]"),
        ({"name": "x", "steps": [{"module": "DATA"}]}, "steps[0].action"),
        ({"name": 3, "steps": [{"module": "DATA", "action": "load_sensor_data"}]}, "name"),
        (
            {
                "name": "x",
                "dependencies": ["DATA"],
                "steps": [{"module": "DATA", "action": "load_sensor_data"}],
            },
            "dependencies",
        ),
    ],
)
def test_structural_errors(spec_actions: None, data: dict[str, Any], path: str) -> None:
    assert path in paths_of(problems_of(data))


@pytest.mark.parametrize("data", [None, [], "name: x", 42, ["steps"]])
def test_not_a_mapping(data: Any) -> None:
    [problem] = problems_of(data)
    assert problem["path"] == ""
    assert "mapping" in problem["message"]


def test_one_error_lists_every_problem(spec_actions: None) -> None:
    data = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    data["schedule"] = "now and then"
    data["owner"] = "me"  # unknown top-level key
    data["steps"][0]["parameters"]["time_range"] = 30  # wrong type is the action's business; accepted here
    data["steps"][1]["timeout"] = "long"
    data["steps"][2]["dependencies"] = ["data_ingestion", "nowhere"]
    data["steps"][3]["action"] = "predict_everything"
    data["steps"][4]["parameters"]["colour"] = "red"
    data["steps"].append({"name": "temporal_analysis", "module": "TIME", "action": "analyze_temporal_trends"})
    data["error_handling"]["fallback_actions"]["missing_step"] = "x"
    data["error_handling"]["backoff_strategy"] = "sometimes"
    data["dependencies"] = {"GIS": ["DATA"]}
    err = None
    with pytest.raises(WorkflowSpecError) as info:
        parse_workflow(data, source="pipeline.yaml")
    err = info.value
    paths = {p.path for p in err.problems}
    assert paths == {
        "schedule",
        "owner",
        "steps[1].timeout",
        "steps[2].dependencies[1]",
        "steps[3].action",
        "steps[4].parameters.colour",
        "steps[5].name",
        "error_handling.fallback_actions.missing_step",
        "error_handling.backoff_strategy",
        "dependencies.GIS",
    }
    assert all(p.fix for p in err.problems)
    text = str(err)
    assert text.startswith(f"{len(err.problems)} problem(s) in the workflow definition in pipeline.yaml:")
    for p in err.problems:
        assert p.path in text
    assert err.to_dict()["source"] == "pipeline.yaml"


def test_error_messages_do_not_dump_huge_values(spec_actions: None) -> None:
    data = one_step(timeout="x" * 10_000)
    [problem] = problems_of(data)
    assert len(problem["message"]) < 300


# ---------------------------------------------------------------------------
# version (content hash)


def test_version_is_stable_and_content_addressed(spec_actions: None) -> None:
    a = parse_workflow(copy.deepcopy(COMPREHENSIVE_EXAMPLE))
    b = parse_workflow(json.loads(json.dumps(COMPREHENSIVE_EXAMPLE)))
    assert a.version == b.version
    assert len(a.version) == 16 and int(a.version, 16) >= 0
    # key order does not matter
    reordered = dict(reversed(list(copy.deepcopy(COMPREHENSIVE_EXAMPLE).items())))
    reordered["steps"] = [dict(reversed(list(s.items()))) for s in reordered["steps"]]
    assert parse_workflow(reordered).version == a.version
    # a parameter does
    changed = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    changed["steps"][1]["parameters"]["spatial_resolution"] = 0.02
    assert parse_workflow(changed).version != a.version
    retries = copy.deepcopy(COMPREHENSIVE_EXAMPLE)
    retries["error_handling"]["max_retries"] = 4
    assert parse_workflow(retries).version != a.version


def test_normalized_definition_reparses_to_the_same_workflow(spec_actions: None) -> None:
    for example in (OPS_MANAGER_EXAMPLE, COMPREHENSIVE_EXAMPLE, MONITORING_EXAMPLE):
        wf = parse_workflow(copy.deepcopy(example))
        again = parse_workflow(json.loads(json.dumps(wf.definition)))
        assert again.version == wf.version
        assert again.steps == wf.steps
        assert again.schedule == wf.schedule
        assert [again.retry_policy(s) for s in again.steps] == [wf.retry_policy(s) for s in wf.steps]
        assert again.definition == wf.definition


def test_workflow_is_frozen(spec_actions: None) -> None:
    wf = parse_workflow(copy.deepcopy(MONITORING_EXAMPLE))
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        wf.name = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------
# files


def test_yaml_file(tmp_path: Path, spec_actions: None) -> None:
    import yaml

    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(COMPREHENSIVE_EXAMPLE, sort_keys=False))
    data = load_workflow_file(path)
    assert data == COMPREHENSIVE_EXAMPLE
    assert parse_workflow(data).version == parse_workflow(copy.deepcopy(COMPREHENSIVE_EXAMPLE)).version


def test_yaml_dates_stay_strings(tmp_path: Path, spec_actions: None) -> None:
    path = tmp_path / "wf.yml"
    path.write_text(
        "name: dated\n"
        "steps:\n"
        "  - module: DATA\n"
        "    action: load_sensor_data\n"
        "    parameters:\n"
        "      source: 2024-01-31\n"
    )
    wf = parse_workflow(load_workflow_file(path), source=str(path))
    assert wf.steps[0].parameters == {"source": "2024-01-31"}


def test_json_file(tmp_path: Path, spec_actions: None) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(OPS_MANAGER_EXAMPLE, indent=2))
    assert parse_workflow(load_workflow_file(path)).step_names[0] == "DATA.load_sensor_data"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsteps:\n  - module: DATA\n    action: [unclosed\n  - module: SPACE\n")
    with pytest.raises(WorkflowSpecError) as info:
        load_workflow_file(path)
    [problem] = info.value.problems
    assert problem.path.startswith("line ")
    assert int(problem.path.split()[1]) in (4, 5)
    assert "YAML" in problem.message and problem.fix
    assert info.value.source == str(path)


def test_json_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "steps": [\n    {"module": "DATA",}\n  ]\n}\n')
    with pytest.raises(WorkflowSpecError) as info:
        load_workflow_file(path)
    [problem] = info.value.problems
    assert problem.path == "line 4"
    assert "JSON" in problem.message and problem.fix


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WorkflowSpecError) as info:
        load_workflow_file(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: x\x80\x81")
    with pytest.raises(WorkflowSpecError):
        load_workflow_file(binary)


def test_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- module: DATA\n  action: load\n")
    with pytest.raises(WorkflowSpecError) as info:
        parse_workflow(load_workflow_file(path), source=str(path))
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------
# registration


def test_re_registration_needs_override() -> None:
    @action("TESTREG", "thing")
    def first(x: int) -> int:
        return x

    with pytest.raises(ActionRegistrationError) as info:

        @action("TESTREG", "thing")
        def second(y: int) -> int:
            return y

    assert "override=True" in str(info.value)
    assert registry.get("TESTREG", "thing").func is first

    @action("testreg", "thing", override=True)
    def third(z: int = 0) -> int:
        return z

    spec = registry.get("TESTREG", "thing")
    assert spec.func is third
    assert spec.parameter_names == {"z"}

    def wf(**parameters: Any) -> dict[str, Any]:
        return {"name": "r", "steps": [{"module": "TESTREG", "action": "thing", "parameters": parameters}]}

    assert parse_workflow(wf(z=1)).steps[0].parameters == {"z": 1}
    with pytest.raises(WorkflowSpecError):
        parse_workflow(wf(x=1))


def test_registering_the_same_function_twice_is_harmless() -> None:
    def fn() -> int:
        return 1

    action("TESTREG", "same")(fn)
    action("TESTREG", "same")(fn)
    assert registry.get("TESTREG", "same").func is fn


def test_positional_only_actions_are_refused() -> None:
    with pytest.raises(ActionRegistrationError):

        @action("TESTREG", "positional")
        def positional(a: int, /) -> int:
            return a
