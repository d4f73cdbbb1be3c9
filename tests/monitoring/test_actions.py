"""Actions: deployment (skipped without one), cleanup (never a live run), workflows, user actions."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from geo_infer_ops import action
from geo_infer_ops.clock import FakeClock
from geo_infer_ops.monitoring.actions import ActionResult, default_actions
from geo_infer_ops.monitoring.monitor import SystemMonitor
from geo_infer_ops.orchestration import WorkflowOrchestrator
from geo_infer_ops.settings import Settings

DAY = 86400.0


class NoCollector:
    def collect(self, *args: object) -> list:
        return []


def make_monitor(settings: Settings, clock: FakeClock, **kw: object) -> SystemMonitor:
    return SystemMonitor(
        settings=settings,
        clock=clock,
        system_collector=NoCollector(),
        run_collector=NoCollector(),
        notify_backoff_s=0.0,
        **kw,
    )


def test_scale_up_is_skipped_while_no_deployment_exists(settings: Settings) -> None:
    clock = FakeClock(1_000_000.0)
    monitor = make_monitor(settings, clock)
    monitor.configure_alerts({"high_cpu_usage": {"threshold": 80, "action": "scale_up", "cooldown": "5m"}})
    monitor.record_metric("cpu_usage", 95)
    [t] = monitor.evaluate()
    assert t["action_status"] == "skipped" and "no deployment exists" in t["action_detail"]
    clock.advance(60)
    monitor.evaluate()
    clock.advance(300)
    monitor.evaluate()  # still firing after the cooldown: the action runs again
    rows = [r for r in monitor.alert_history() if r["action"] == "scale_up"]
    assert len(rows) == 2 and {r["action_status"] for r in rows} == {"skipped"}


def test_scale_calls_the_deployment_manager_public_api(settings: Settings) -> None:
    class FakeDeployments:
        def __init__(self) -> None:
            self.calls: list[dict] = []

        def list_deployments(self) -> list:
            return [{"id": "prod"}]

        def scale(self, request: dict) -> dict:
            self.calls.append(request)
            return {"replicas": 4}

    manager = FakeDeployments()
    monitor = make_monitor(settings, FakeClock(), deployment_manager=manager)
    monitor.configure_monitoring(
        {"module_metrics": {"AI": {"prediction_latency": {"threshold": 2000, "action": "scale"}}}}
    )
    monitor.record_metric("prediction_latency", 2500, {"module": "AI"})
    [t] = monitor.evaluate()
    assert t["action_status"] == "succeeded"
    assert manager.calls == [{"reason": "alert high_prediction_latency", "module": "AI", "replicas_delta": 1}]


def test_cleanup_frees_an_old_runs_artifacts_but_never_a_live_runs(settings: Settings) -> None:
    @action("TST", "frame", override=True)
    def frame() -> pd.DataFrame:
        return pd.DataFrame({"x": range(5000)})

    real_now = time.time()
    orchestrator = WorkflowOrchestrator(settings=settings, clock=FakeClock(real_now - 40 * DAY))
    old = orchestrator.execute_workflow(
        {"name": "produce", "steps": [{"name": "make", "module": "TST", "action": "frame"}]}
    )
    assert old["status"] == "succeeded"
    old_dir = settings.artifacts_dir / old["workflow_id"]
    assert any(p.is_file() for p in old_dir.rglob("*"))
    wf = orchestrator.define_workflow(
        {"name": "live", "steps": [{"name": "make", "module": "TST", "action": "frame"}]}
    )
    orchestrator.store.create_run(
        "liverun0001", wf.version, wf.name, [("make", "TST", "frame")], params={}, owner="x"
    )
    live_dir = settings.artifacts_dir / "liverun0001"
    live_dir.mkdir(parents=True)
    (live_dir / "partial.parquet").write_bytes(b"x" * 1000)

    monitor = make_monitor(settings, FakeClock(real_now), orchestrator=orchestrator)
    monitor.configure_monitoring({"system_metrics": {"disk_usage": {"threshold": 90, "action": "cleanup"}}})
    monitor.record_metric("disk_usage", 97, {"path": "/"})
    [t] = monitor.evaluate()
    assert t["action_status"] == "succeeded", t
    assert "removed 1 run(s)" in t["action_detail"]
    assert not old_dir.exists()
    assert (live_dir / "partial.parquet").exists()
    assert orchestrator.store.get_run("liverun0001")["status"] == "pending"
    assert [r["workflow_id"] for r in orchestrator.list_runs()] == ["liverun0001"]
    freed = int(t["action_detail"].split("freed ")[1].split(" ")[0])
    assert freed > 1000
    orchestrator.close()


def test_retrain_runs_the_named_workflow(settings: Settings) -> None:
    calls: list[int] = []

    @action("AI", "retrain_model_now", override=True)
    def retrain() -> dict:
        calls.append(1)
        return {"accuracy": 0.93}

    orchestrator = WorkflowOrchestrator(settings=settings)
    orchestrator.define_workflow(
        {"name": "retrain_model", "steps": [{"name": "fit", "module": "AI", "action": "retrain_model_now"}]}
    )
    monitor = make_monitor(settings, FakeClock(), orchestrator=orchestrator)
    monitor.configure_monitoring(
        {
            "module_metrics": {
                "AI": {"model_accuracy": {"threshold": 0.8, "action": "retrain", "workflow": "retrain_model"}}
            }
        }
    )
    monitor.record_metric("model_accuracy", 0.61, {"module": "AI", "step": "predict", "workflow": "env"})
    [t] = monitor.evaluate()
    assert t["action_status"] == "succeeded" and "ran workflow retrain_model" in t["action_detail"]
    assert calls == [1]
    assert orchestrator.list_runs()[0]["name"] == "retrain_model"
    orchestrator.close()


def test_optimize_without_workflow_records_a_recommendation_and_unknown_workflow_fails(
    settings: Settings,
) -> None:
    monitor = make_monitor(settings, FakeClock())
    monitor.configure_alerts(
        {
            "high_network_latency": {"threshold": 100, "action": "optimize"},
            "low_user_satisfaction": {"threshold": 0.9, "action": "improve", "workflow": "nope"},
        }
    )
    monitor.record_metric("network_latency", 250, {"target": "db:5432"})
    monitor.record_metric("user_satisfaction", 0.5)
    out = {t["alert"]: t for t in monitor.evaluate()}
    assert out["high_network_latency"]["action_detail"].startswith("recommendation recorded")
    assert out["low_user_satisfaction"]["action_status"] == "failed"


def test_users_register_their_own_actions(settings: Settings) -> None:
    registry = default_actions()
    seen: list[str] = []

    @registry.register("page_oncall")
    def page(ctx) -> ActionResult:
        seen.append(ctx.labels["alertname"])
        return ActionResult("succeeded", "paged")

    def broken(ctx):
        raise RuntimeError("boom")

    registry.register("broken", broken)
    monitor = make_monitor(settings, FakeClock(), actions=registry)
    monitor.configure_alerts(
        {
            "high_queue": {"threshold": 1, "action": "page_oncall"},
            "high_other": {"threshold": 1, "action": "broken"},
        }
    )
    monitor.record_metric("queue", 5)
    monitor.record_metric("other", 5)
    out = {t["alert"]: t for t in monitor.evaluate()}
    assert seen == ["high_queue"] and out["high_queue"]["action_detail"] == "paged"
    assert out["high_other"]["action_status"] == "failed" and "boom" in out["high_other"]["action_detail"]
    with pytest.raises(Exception, match="unknown action"):
        make_monitor(settings, FakeClock()).configure_alerts(
            {"high_x": {"threshold": 1, "action": "page_oncall"}}
        )


def test_actions_do_not_run_for_silenced_alerts(settings: Settings, tmp_path: Path) -> None:
    monitor = make_monitor(settings, FakeClock())
    monitor.configure_alerts({"high_cpu_usage": {"threshold": 80, "action": "restart"}})
    monitor.silence({"alertname": "high_cpu_usage"}, "1h", "maintenance window")
    monitor.record_metric("cpu_usage", 99)
    [t] = monitor.evaluate()
    assert t["action_status"] == "skipped" and t["action_detail"].startswith("silenced")
