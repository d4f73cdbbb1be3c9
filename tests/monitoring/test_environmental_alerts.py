"""APP.generate_environmental_alerts forwards its alerts through the monitor's notifiers."""

from __future__ import annotations

import shutil
from pathlib import Path

from geo_infer_ops.monitoring import SystemMonitor
from geo_infer_ops.orchestration import WorkflowOrchestrator

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_monitoring_pipeline_alerts_reach_the_webhook(settings, tmp_path, receiver):
    monitor = SystemMonitor()
    monitor.configure_notifiers({"webhook": {"url": receiver.url}})
    monitor.close()  # the configuration is kept in the home folder, where the step finds it
    drop = tmp_path / "iot-drop"
    shutil.copytree(EXAMPLES / "iot-drop", drop)
    result = WorkflowOrchestrator(settings=settings).execute_workflow(
        EXAMPLES / "environmental_monitoring_pipeline.yaml",
        parameters={"sensor_data_collection.source": {"type": "directory", "path": str(drop)}},
    )
    assert result["status"] == "succeeded", result["steps"]
    alerts = result["outputs"]["alert_generation"]
    assert [d["notifier"] for d in alerts["notified"] if d["ok"]] == ["webhook"]
    body = receiver.bodies[-1]
    assert body["status"] == "firing" and body["receiver"] == "environmental"
    sent = body["alerts"]
    assert len(sent) == alerts["count"] > 0
    first = sent[0]["labels"]
    assert first["alertname"] == "environmental_alert" and first["variable"] == "pm10"
    assert {f["properties"]["sensor_id"] for f in alerts["alerts"]["features"]} == {
        a["labels"]["sensor_id"] for a in sent
    }


def test_no_notifier_configured_sends_nothing(settings, tmp_path):
    drop = tmp_path / "iot-drop"
    shutil.copytree(EXAMPLES / "iot-drop", drop)
    result = WorkflowOrchestrator(settings=settings).execute_workflow(
        EXAMPLES / "environmental_monitoring_pipeline.yaml",
        parameters={"sensor_data_collection.source": {"type": "directory", "path": str(drop)}},
    )
    assert result["outputs"]["alert_generation"]["notified"] == []
