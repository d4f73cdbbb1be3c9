"""Rule parsing (the spec's formats, the direction table) and the per-series state machine."""

from __future__ import annotations

import pytest

from geo_infer_ops.errors import ConfigError
from geo_infer_ops.monitoring.rules import (
    RuleEngine,
    default_comparison,
    parse_alerts,
    parse_data_operations,
    parse_monitoring,
    prometheus_rules,
)


def series(**values: float) -> dict:
    return {(name, ()): (0.0, v) for name, v in values.items()}


def test_configure_alerts_names_set_metric_and_direction() -> None:
    rules = {
        r.name: r
        for r in parse_alerts(
            {
                "high_cpu_usage": {"threshold": 80, "action": "scale_up"},
                "high_error_rate": {"threshold": 5, "action": "alert"},
                "low_memory": {"threshold": 10, "action": "restart"},
                "custom": {"metric": "queue_depth", "comparison": ">=", "threshold": 3},
            }
        )
    }
    assert (rules["high_cpu_usage"].metric, rules["high_cpu_usage"].comparison) == ("cpu_usage", ">")
    assert (rules["low_memory"].metric, rules["low_memory"].comparison) == ("free_memory", "<")
    assert rules["low_memory"].expr == "geo_infer_ops_free_memory < 10"
    assert (rules["custom"].metric, rules["custom"].comparison) == ("queue_depth", ">=")


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("model_accuracy", "<"),
        ("system_uptime", "<"),
        ("user_satisfaction", "<"),
        ("data_quality_score", "<"),
        ("free_memory", "<"),
        ("cpu_usage", ">"),
        ("error_rate", ">"),
        ("throughput", ">"),
        ("response_time", ">"),
    ],
)
def test_direction_table(metric: str, expected: str) -> None:
    assert default_comparison(metric) == expected


def test_configure_monitoring_groups_and_module_matchers() -> None:
    rules = parse_monitoring(
        {
            "system_metrics": {"cpu_usage": {"threshold": 80, "action": "alert"}},
            "module_metrics": {
                "SPACE": {"error_rate": {"threshold": 2, "action": "alert"}},
                "AI": {"model_accuracy": {"threshold": 0.8, "action": "retrain", "comparison": "<"}},
            },
            "business_metrics": {"user_satisfaction": {"threshold": 0.9, "action": "improve"}},
        }
    )
    by = {(r.group, r.name): r for r in rules}
    assert by[("module", "high_error_rate")].matchers == (("module", "SPACE"),)
    assert by[("module", "low_model_accuracy")].comparison == "<"
    assert by[("business", "low_user_satisfaction")].comparison == "<"
    assert by[("module", "high_error_rate")].expr == 'geo_infer_ops_error_rate{module="SPACE"} > 2'
    assert [r.metric for r in parse_data_operations({"data_quality_score": {"threshold": 0.95}})] == [
        "data_quality_score"
    ]


def test_one_error_lists_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        parse_alerts(
            {
                "high_cpu_usage": {"threshold": "eighty", "for": "soon", "colour": "red"},
                "low_memory": {"action": "explode"},
            },
            known_actions=["alert", "restart"],
        )
    paths = {p.path for p in info.value.problems}
    assert {"high_cpu_usage.threshold", "high_cpu_usage.for", "high_cpu_usage.colour"} <= paths
    assert {"low_memory.threshold", "low_memory.action"} <= paths


def test_pending_then_firing_after_for_then_resolved() -> None:
    engine = RuleEngine(parse_alerts({"high_cpu_usage": {"threshold": 80, "for": "30s"}}))
    assert engine.evaluate(series(cpu_usage=50), 0.0) == []
    [t] = engine.evaluate(series(cpu_usage=90), 10.0)
    assert (t.state, t.previous) == ("pending", "inactive")
    assert engine.evaluate(series(cpu_usage=95), 30.0) == []  # 20 s < 30 s
    [t] = engine.evaluate(series(cpu_usage=95), 40.0)
    assert (t.state, t.labels["alertname"], t.value) == ("firing", "high_cpu_usage", 95)
    assert engine.evaluate(series(cpu_usage=95), 50.0) == []  # no duplicate transitions
    [t] = engine.evaluate(series(cpu_usage=10), 60.0)
    assert (t.state, t.previous) == ("resolved", "firing")
    assert engine.states == {}


def test_pending_that_clears_goes_inactive_and_without_for_fires_at_once() -> None:
    engine = RuleEngine(
        parse_alerts({"high_cpu_usage": {"threshold": 80, "for": 60}, "high_x": {"threshold": 1}})
    )
    states = [t.state for t in engine.evaluate(series(cpu_usage=90, x=2), 0.0)]
    assert sorted(states) == ["firing", "pending"]
    assert [t.state for t in engine.evaluate(series(cpu_usage=10, x=2), 5.0)] == ["inactive"]


def test_keep_firing_for_holds_an_alert_through_a_dip() -> None:
    engine = RuleEngine(parse_alerts({"high_cpu_usage": {"threshold": 80, "keep_firing_for": "1m"}}))
    assert [t.state for t in engine.evaluate(series(cpu_usage=90), 0.0)] == ["firing"]
    assert engine.evaluate(series(cpu_usage=10), 30.0) == []  # still firing
    assert engine.evaluate(series(cpu_usage=90), 40.0) == []  # back up: nothing new
    assert engine.evaluate(series(cpu_usage=10), 90.0) == []  # 50 s since last true
    assert [t.state for t in engine.evaluate(series(cpu_usage=10), 100.5)] == ["resolved"]


def test_rule_applies_per_label_set_and_module_matchers() -> None:
    engine = RuleEngine(parse_monitoring({"module_metrics": {"SPACE": {"error_rate": {"threshold": 2}}}}))
    data = {
        ("error_rate", (("module", "SPACE"),)): (0.0, 5.0),
        ("error_rate", (("module", "AI"),)): (0.0, 50.0),
        ("error_rate", (("module", "SPACE"), ("step", "a"), ("workflow", "w"))): (0.0, 9.0),
        ("error_rate", (("module", "SPACE"), ("quantile", "0.5"))): (0.0, 9.0),
    }
    out = engine.evaluate(data, 0.0)
    assert sorted(t.labels.get("step", "-") for t in out) == ["-", "a"]
    assert all(t.labels["module"] == "SPACE" for t in out)


def test_vanished_series_resolves_and_nan_never_fires() -> None:
    engine = RuleEngine(parse_alerts({"high_cpu_usage": {"threshold": 80}}))
    engine.evaluate(series(cpu_usage=90), 0.0)
    assert [t.state for t in engine.evaluate({}, 1.0)] == ["resolved"]
    assert engine.evaluate(series(cpu_usage=float("nan")), 2.0) == []


def test_prometheus_rules_export_shape() -> None:
    doc = prometheus_rules(
        parse_alerts({"high_cpu_usage": {"threshold": 80, "for": 300, "keep_firing_for": 60}})
    )
    rule = doc["groups"][0]["rules"][0]
    assert rule["alert"] == "high_cpu_usage"
    assert rule["expr"] == "geo_infer_ops_cpu_usage > 80"
    assert (rule["for"], rule["keep_firing_for"]) == ("5m", "1m")
    assert rule["labels"]["severity"] == "warning" and "summary" in rule["annotations"]
