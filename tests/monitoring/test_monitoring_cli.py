"""The monitoring commands through CliRunner (each call builds a fresh SystemMonitor, like a new process)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from geo_infer_ops.cli import app
from geo_infer_ops.monitoring import SystemMonitor

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def configure() -> None:
    monitor = SystemMonitor()
    monitor.configure_alerts(
        {
            "high_cpu_usage": {"threshold": 80, "action": "scale_up", "for": "5m", "keep_firing_for": "1m"},
            "low_user_satisfaction": {"threshold": 0.9, "action": "improve", "labels": {"team": "product"}},
            "system_down": {"metric": "health_check_up", "comparison": "<", "threshold": 1},
        }
    )
    monitor.configure_notifiers(
        {
            "webhook": {"url": "http://127.0.0.1:9/hook"},
            "slack": {"webhook_url": "http://127.0.0.1:9/slack"},
            "pagerduty": {"routing_key": "k3y", "url": "http://127.0.0.1:9/pd"},
            "email": {
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "sender": "a@b.c",
                "recipients": ["ops@b.c"],
            },
        }
    )
    monitor.configure_routing({"group_by": ["alertname", "module"], "group_wait": "10s"})


def test_push_evaluate_alerts_and_history() -> None:
    configure()
    code, out = run(
        "monitor", "push", "user_satisfaction", "0.5", "--label", "region=eu", "--evaluate", "--json"
    )
    assert code == 0, out
    data = json.loads(out)
    assert data["labels"] == {"region": "eu"}
    assert [t["state"] for t in data["transitions"]] == ["firing"]
    code, out = run("alerts", "--json")
    assert code == 0
    [alert] = json.loads(out)
    assert alert["alert"] == "low_user_satisfaction" and alert["labels"]["region"] == "eu"
    code, out = run("alerts")
    assert code == 0 and "low_user_satisfaction" in out
    code, out = run("alerts", "--history", "--json")
    rows = json.loads(out)
    assert {"firing"} == {r["state"] for r in rows}
    assert any(r["action"] == "improve" and r["action_status"] == "succeeded" for r in rows)
    code, out = run("alerts", "--history")
    assert code == 0 and "improve" in out
    code, out = run("monitor", "push", "user_satisfaction", "0.97", "--label", "region=eu", "--evaluate")
    assert code == 0 and "resolved" in out
    code, out = run("alerts")
    assert "no alerts firing" in out


def test_push_rejects_a_bad_label() -> None:
    code, _ = run("monitor", "push", "x", "1", "--label", "novalue")
    assert code == 2
    code, _ = run("monitor", "push", "x", "not-a-number")
    assert code == 2


def test_silence_create_list_expire() -> None:
    code, out = run(
        "silence",
        "alertname=high_cpu_usage",
        "module=~SP.*",
        "--duration",
        "2h",
        "--comment",
        "deploy",
        "--json",
    )
    assert code == 0, out
    s = json.loads(out)
    assert s["matchers"] == ["alertname=high_cpu_usage", "module=~SP.*"] and s["comment"] == "deploy"
    code, out = run("silence", "--list", "--json")
    assert [x["id"] for x in json.loads(out)] == [s["id"]]
    code, out = run("silence", "--list")
    assert "deploy" in out
    code, _ = run("silence", "--expire", s["id"][:8])
    assert code == 0
    code, out = run("silence", "--list", "--json")
    assert json.loads(out) == []
    code, _ = run("silence", "not a matcher")
    assert code == 2


def test_export_writes_valid_prometheus_rules_and_alertmanager_config(tmp_path: Path) -> None:
    configure()
    code, out = run("monitor", "export", "--output-dir", str(tmp_path), "--json")
    assert code == 0, out
    paths = json.loads(out)
    rules = yaml.safe_load(Path(paths["rules"]).read_text())
    by_name = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    for group in rules["groups"]:
        assert {"name", "rules"} <= set(group)
    cpu = by_name["high_cpu_usage"]
    assert cpu["expr"] == "geo_infer_ops_cpu_usage > 80"
    assert (cpu["for"], cpu["keep_firing_for"]) == ("5m", "1m")
    assert cpu["labels"]["severity"] == "warning" and cpu["annotations"]["summary"]
    assert by_name["low_user_satisfaction"]["labels"]["team"] == "product"
    assert by_name["system_down"]["labels"]["severity"] == "critical"

    am = yaml.safe_load(Path(paths["alertmanager"]).read_text())
    route = am["route"]
    assert route["group_by"] == ["alertname", "module"] and route["group_wait"] == "10s"
    assert {"group_interval", "repeat_interval", "receiver"} <= set(route)
    [receiver] = am["receivers"]
    assert receiver["name"] == route["receiver"]
    assert receiver["webhook_configs"][0]["url"] == "http://127.0.0.1:9/hook"
    assert receiver["slack_configs"][0]["api_url"] == "http://127.0.0.1:9/slack"
    assert receiver["pagerduty_configs"][0]["routing_key"] == "k3y"
    assert receiver["email_configs"][0]["to"] == "ops@b.c"
    assert am["inhibit_rules"][0]["source_matchers"] == ["alertname=system_down"]


def test_status_start_rules_and_plot(tmp_path: Path) -> None:
    configure()
    code, out = run("monitor", "start", "--cycles", "2", "--interval", "0.01", "--json")
    assert code == 0, out
    assert json.loads(out)["cycles"] == 2
    code, out = run("monitor", "status", "--json")
    assert code == 0
    status = json.loads(out)
    assert status["overall_health"] in ("healthy", "degraded", "critical")
    assert "memory_usage" in status["metrics"]
    code, out = run("monitor", "status")
    assert code == 0 and "overall health" in out and "memory_usage" in out
    code, out = run("monitor", "status", "--watch", "--count", "2", "--refresh", "0.01")
    assert code == 0
    code, out = run("monitor", "rules", "--json")
    assert {r["name"] for r in json.loads(out)} == {"high_cpu_usage", "low_user_satisfaction", "system_down"}
    png = tmp_path / "cpu.png"
    code, out = run("monitor", "plot", "memory_usage", "--since", "24h", "--output", str(png))
    assert code == 0, out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _ = run("monitor", "plot", "memory_usage", "--since", "yesterday")
    assert code == 2
