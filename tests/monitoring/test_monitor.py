"""SystemMonitor end to end: the spec's snippets as written, and the alert pipeline with a fake clock."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from geo_infer_ops.clock import FakeClock
from geo_infer_ops.errors import ConfigError
from geo_infer_ops.monitoring import SystemMonitor
from geo_infer_ops.settings import Settings


class FakeCollector:
    def __init__(self, samples: list | None = None) -> None:
        self.samples = samples or []
        self.fail = False

    def collect(self, *args: object) -> list:
        if self.fail:
            raise RuntimeError("collector down")
        return list(self.samples)


def make_monitor(settings: Settings, clock: FakeClock | None = None, **kw: object) -> SystemMonitor:
    kw.setdefault("system_collector", FakeCollector())
    kw.setdefault("run_collector", FakeCollector())
    return SystemMonitor(settings=settings, clock=clock or FakeClock(), notify_backoff_s=0.0, **kw)


# -- the spec, as written ------------------------------------------------------------------------------


def test_spec_system_monitoring_snippets_run_as_written() -> None:
    from geo_infer_ops.monitoring import SystemMonitor

    # Initialize system monitor
    monitor = SystemMonitor()

    # Monitor system health
    health_status = monitor.check_system_health(
        {
            "modules": ["SPACE", "TIME", "AI", "DATA"],
            "metrics": ["cpu_usage", "memory_usage", "response_time", "error_rate"],
        }
    )

    # Set up alerts
    monitor.configure_alerts(
        {
            "high_cpu_usage": {"threshold": 80, "action": "scale_up"},
            "high_error_rate": {"threshold": 5, "action": "alert"},
            "low_memory": {"threshold": 10, "action": "restart"},
        }
    )
    assert health_status["overall_health"] in ("healthy", "degraded", "critical")
    assert set(health_status["modules"]) == {"SPACE", "TIME", "AI", "DATA"}
    assert "memory_usage" in health_status["system"]

    monitor = SystemMonitor()
    # Configure monitoring metrics
    monitor.configure_monitoring(
        {
            "system_metrics": {
                "cpu_usage": {"threshold": 80, "action": "alert"},
                "memory_usage": {"threshold": 85, "action": "scale_up"},
                "disk_usage": {"threshold": 90, "action": "cleanup"},
                "network_latency": {"threshold": 100, "action": "optimize"},
            },
            "module_metrics": {
                "SPACE": {
                    "response_time": {"threshold": 5000, "action": "optimize"},
                    "error_rate": {"threshold": 2, "action": "alert"},
                    "throughput": {"threshold": 1000, "action": "scale"},
                },
                "AI": {
                    "model_accuracy": {"threshold": 0.8, "action": "retrain"},
                    "prediction_latency": {"threshold": 2000, "action": "optimize"},
                },
            },
            "business_metrics": {
                "user_satisfaction": {"threshold": 0.9, "action": "improve"},
                "system_uptime": {"threshold": 0.99, "action": "maintain"},
            },
        }
    )

    # Start monitoring
    monitor.start_monitoring()

    # Get system status
    system_status = monitor.get_system_status()
    print(f"System Health: {system_status['overall_health']}")
    print(f"Active Alerts: {len(system_status['active_alerts'])}")
    try:
        assert system_status["monitoring"] is True
        assert len(monitor.rules) == 3 + 4 + 5 + 2  # configure_alerts' rules were saved too
        assert system_status["overall_health"] in ("healthy", "degraded", "critical")
    finally:
        monitor.stop_monitoring()
    assert not monitor.is_running

    # Monitor data operations
    monitor = SystemMonitor()
    data_monitoring = monitor.monitor_data_operations(
        {
            "data_ingestion_rate": {"threshold": 1000, "action": "scale"},
            "data_processing_time": {"threshold": 300, "action": "optimize"},
            "data_quality_score": {"threshold": 0.95, "action": "alert"},
        }
    )
    rules = {r["name"]: r for r in data_monitoring["rules"]}
    assert rules["low_data_quality_score"]["comparison"] == "<"
    assert rules["high_data_processing_time"]["comparison"] == ">"

    # Set up comprehensive monitoring
    summary = monitor.configure_comprehensive_monitoring(
        {
            "system_metrics": ["cpu", "memory", "disk", "network"],
            "application_metrics": ["response_time", "throughput", "error_rate"],
            "business_metrics": ["user_satisfaction", "system_uptime"],
            "custom_metrics": ["geo_infer_specific_metrics"],
            "alerting": {"email_alerts": True, "slack_integration": True, "pager_duty": True},
        }
    )
    assert {"cpu_usage", "free_memory", "network_latency", "geo_infer_specific_metrics"} <= set(
        summary["tracked_metrics"]
    )
    assert "not configured" in summary["notifiers"]["slack"]


def test_spec_monitor_workflow_execution_as_written(settings: Settings) -> None:
    from geo_infer_ops import action
    from geo_infer_ops.orchestration import WorkflowOrchestrator

    @action("TST", "collect", override=True)
    def collect() -> dict:
        return {"n": 3}

    @action("TST", "validate", override=True)
    def validate() -> dict:
        return {"ok": True}

    orchestrator = WorkflowOrchestrator()
    monitor = SystemMonitor()
    env_workflow = orchestrator.define_workflow(
        {
            "name": "monitored",
            "steps": [
                {"name": "sensor_data_collection", "module": "TST", "action": "collect", "timeout": 300},
                {
                    "name": "data_validation",
                    "module": "TST",
                    "action": "validate",
                    "dependencies": ["sensor_data_collection"],
                },
            ],
        }
    )
    execution_result = orchestrator.execute_workflow(env_workflow)
    progress = monitor.monitor_workflow_execution(execution_result["workflow_id"])
    assert progress["status"] == "succeeded" and progress["progress"]["percent"] == 100.0
    assert progress["eta_s"] == 0.0 and progress["alerts"] == []
    orchestrator.close()
    monitor.close()


# -- the pipeline with a fake clock ---------------------------------------------------------------------


def test_pending_firing_notified_resolved_with_history(settings: Settings, receiver) -> None:
    clock = FakeClock(1_800_000_000.0)
    monitor = make_monitor(settings, clock)
    monitor.configure_notifiers({"webhook": {"url": receiver.url}})
    monitor.configure_routing({"group_wait": "30s", "group_interval": "1m", "repeat_interval": "1h"})
    monitor.configure_alerts(
        {"high_cpu_usage": {"threshold": 80, "for": "2m", "action": "alert", "severity": "critical"}}
    )

    monitor.record_metric("cpu_usage", 95)
    assert [t["state"] for t in monitor.evaluate()] == ["pending"]
    assert monitor.get_system_status()["overall_health"] == "healthy"
    clock.advance(60)
    assert monitor.evaluate() == []
    clock.advance(60)
    monitor.record_metric("cpu_usage", 96)
    [t] = monitor.evaluate()
    assert (t["state"], t["value"], t["action_status"]) == ("firing", 96, "succeeded")
    status = monitor.get_system_status()
    assert status["overall_health"] == "critical"
    assert [a["alert"] for a in status["active_alerts"]] == ["high_cpu_usage"]
    assert receiver.bodies == []  # group_wait
    clock.advance(30)
    monitor.evaluate()
    assert [b["status"] for b in receiver.bodies] == ["firing"]
    for _ in range(5):  # de-duplicated: nothing new while it keeps firing
        clock.advance(60)
        monitor.evaluate()
    assert len(receiver.bodies) == 1
    monitor.record_metric("cpu_usage", 20)
    clock.advance(60)
    [t] = monitor.evaluate()
    assert t["state"] == "resolved"
    assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
    assert monitor.get_system_status()["overall_health"] == "healthy"

    states = [r["state"] for r in reversed(monitor.alert_history()) if r["action"] is None]
    assert states == ["pending", "firing", "resolved"]
    notes = [r for r in monitor.alert_history() if (r["action"] or "").startswith("notify_")]
    assert {r["action_status"] for r in notes} == {"succeeded"} and len(
        notes
    ) == 2  # the webhook, twice (log deliveries are not recorded)


def test_failing_notifier_is_retried_recorded_and_evaluation_continues(settings: Settings, receiver) -> None:
    clock = FakeClock()
    monitor = make_monitor(settings, clock)
    monitor.configure_notifiers(
        {"webhook": {"url": receiver.url}, "slack": {"webhook_url": "http://127.0.0.1:1/x"}}
    )
    monitor.configure_routing({"group_wait": 0})
    monitor.configure_alerts({"high_error_rate": {"threshold": 5}})
    receiver.fail_next = 1  # the webhook fails once, then succeeds on its retry
    monitor.record_metric("error_rate", 9, {"module": "SPACE"})
    [t] = monitor.evaluate()
    assert t["state"] == "firing"
    assert len(receiver.bodies) == 1
    rows = {r["action"]: r for r in monitor.alert_history() if (r["action"] or "").startswith("notify_")}
    assert rows["notify_webhook"]["action_status"] == "succeeded"
    assert "2 attempt" in rows["notify_webhook"]["action_detail"]
    assert rows["notify_slack"]["action_status"] == "failed"
    monitor.record_metric("error_rate", 1, {"module": "SPACE"})
    clock.advance(400)
    assert [t["state"] for t in monitor.evaluate()] == ["resolved"]


def test_configuration_persists_for_a_new_process_and_firing_state_is_restored(settings: Settings) -> None:
    clock = FakeClock()
    first = make_monitor(settings, clock)
    first.configure_alerts({"low_memory": {"threshold": 10, "action": "alert", "labels": {"team": "geo"}}})
    first.configure_notifiers({"pagerduty": {"routing_key": "abc", "url": "http://127.0.0.1:1"}})
    first.record_metric("free_memory", 4)
    [t] = first.evaluate()
    assert t["labels"] == {"alertname": "low_memory", "severity": "warning", "team": "geo"}
    saved = json.loads((settings.home / "monitoring.json").read_text())
    assert saved["rules"][0]["metric"] == "free_memory" and "pagerduty" in saved["notifiers"]

    second = make_monitor(settings, clock)
    assert [r.name for r in second.rules] == ["low_memory"] and set(second.notifiers) == {"pagerduty"}
    assert [a["alert"] for a in second.active_alerts()] == ["low_memory"]
    second.record_metric("free_memory", 3)
    assert second.evaluate() == []  # still firing: no new transition, no second notification
    second.record_metric("free_memory", 50)
    assert [t["state"] for t in second.evaluate()] == ["resolved"]


def test_status_modules_and_uptime_from_health_checks(settings: Settings) -> None:
    clock = FakeClock()
    system = FakeCollector([("cpu_usage", {}, 12.0), ("free_memory", {}, 60.0)])
    runs = FakeCollector(
        [("error_rate", {"module": "SPACE"}, 20.0), ("response_time", {"module": "SPACE"}, 300.0)]
    )
    monitor = make_monitor(settings, clock, system_collector=system, run_collector=runs)
    monitor.configure_monitoring(
        {
            "module_metrics": {"SPACE": {"error_rate": {"threshold": 2, "action": "alert"}}},
            "business_metrics": {"system_uptime": {"threshold": 0.99, "action": "maintain"}},
        }
    )
    health = monitor.check_system_health({"modules": ["SPACE", "AI"], "metrics": ["cpu_usage", "error_rate"]})
    assert (
        health["modules"]["SPACE"]["status"] == "degraded"
        and health["modules"]["SPACE"]["metrics"]["error_rate"] == 20
    )
    assert health["modules"]["AI"]["status"] == "unknown"
    assert health["system"]["cpu_usage"] == 12.0
    status = monitor.get_system_status()
    assert status["modules"]["SPACE"]["status"] == "degraded"
    assert status["metrics"]["system_uptime"]["value"] == 1.0
    system.fail = True  # a failed health check lowers the computed uptime
    clock.advance(10)
    monitor.sample()
    assert monitor.metrics.latest("system_uptime") == pytest.approx(0.5)
    fired = {t["alert"] for t in monitor.evaluate()}
    assert "low_system_uptime" in fired
    with pytest.raises(ConfigError):
        monitor.check_system_health({"modulez": []})


def test_pushed_uptime_wins_and_silence_api(settings: Settings) -> None:
    clock = FakeClock()
    monitor = make_monitor(settings, clock)
    monitor.record_metric("system_uptime", 0.5)
    monitor.sample()
    assert monitor.metrics.latest("system_uptime") == 0.5
    s = monitor.silence(["alertname=~high_.*"], "30m", "deploy")
    assert [x["id"] for x in monitor.silences()] == [s["id"]]
    assert monitor.expire_silence(s["id"][:8])
    assert monitor.silences() == []


def test_configuration_errors_list_every_problem(settings: Settings) -> None:
    monitor = make_monitor(settings)
    with pytest.raises(ConfigError) as info:
        monitor.configure_monitoring(
            {
                "system_metrics": {"cpu_usage": {"threshold": "high"}},
                "module_metrics": {"SPACE": {"error_rate": {"action": "nope"}}},
                "weird_metrics": {},
            }
        )
    assert len(info.value.problems) >= 4
    with pytest.raises(ConfigError):
        monitor.configure_notifiers({"email": {"smtp_host": "x"}})
    with pytest.raises(ConfigError):
        monitor.configure_comprehensive_monitoring({"alerting": {"carrier_pigeon": True}})


def test_background_thread_samples_and_evaluates(settings: Settings) -> None:
    system = FakeCollector([("cpu_usage", {}, 99.0)])
    monitor = SystemMonitor(settings=settings, system_collector=system, run_collector=FakeCollector())
    monitor.configure_alerts({"high_cpu_usage": {"threshold": 80}})
    monitor.start_monitoring(interval=0.05)
    try:
        assert monitor.is_running
        assert [a["alert"] for a in monitor.get_system_status()["active_alerts"]] == ["high_cpu_usage"]
    finally:
        monitor.stop_monitoring()
    assert not monitor.is_running


# -- docs/monitoring.md: its examples run -----------------------------------------------------------------

DOC_EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```python\n(?P<body>.*?)```", re.S)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "monitoring.md"


def doc_examples() -> dict[str, str]:
    return {m["name"]: m["body"] for m in DOC_EXAMPLE.finditer(DOCS.read_text())}


@pytest.mark.parametrize("name", ["quickstart", "errors", "lifecycle", "notifiers", "custom-action"])
def test_docs_examples_run(name: str) -> None:
    from geo_infer_ops.monitoring.actions import actions

    try:
        exec(compile(doc_examples()[name], f"monitoring.md:{name}", "exec"), {})
    finally:
        actions.unregister("page_team")
