"""Notifiers against real servers on 127.0.0.1: webhook, Slack, PagerDuty (HTTP) and email (aiosmtpd)."""

from __future__ import annotations

import socket
import time
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from geo_infer_ops.errors import ConfigError
from geo_infer_ops.monitoring.alerting import Alert, Notification
from geo_infer_ops.monitoring.notifiers import (
    EmailNotifier,
    LogNotifier,
    PagerDutyNotifier,
    SlackNotifier,
    WebhookNotifier,
    build_notifiers,
    deliver,
    notifier_config_from_env,
)


def notification(status: str = "firing") -> Notification:
    alert = Alert(
        {"alertname": "high_cpu_usage", "severity": "critical", "module": "SPACE"},
        {"summary": "cpu_usage above 80"},
        starts_at=1_700_000_000.0,
        value=93.5,
        ends_at=None if status == "firing" else 1_700_000_600.0,
    )
    return Notification(
        "geo-infer-ops",
        status,
        '{}:{alertname="high_cpu_usage"}',
        {"alertname": "high_cpu_usage"},
        [alert],
        1_700_000_600.0,
    )


def test_webhook_sends_alertmanager_json(receiver) -> None:
    WebhookNotifier(receiver.url + "/hook").send(notification())
    [body] = receiver.bodies
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "geo-infer-ops"
    assert body["groupLabels"] == {"alertname": "high_cpu_usage"}
    assert body["commonLabels"]["module"] == "SPACE"
    [alert] = body["alerts"]
    assert set(alert) >= {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert alert["startsAt"] == "2023-11-14T22:13:20Z" and alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert receiver.paths == ["/hook"]


def test_slack_incoming_webhook_format(receiver) -> None:
    SlackNotifier(receiver.url, channel="#ops").send(notification())
    [body] = receiver.bodies
    assert body["text"].startswith("[FIRING:1] high_cpu_usage")
    assert body["channel"] == "#ops"
    assert body["blocks"][0]["type"] == "header"
    assert "cpu_usage above 80" in body["blocks"][1]["text"]["text"]


def test_pagerduty_events_v2_trigger_and_resolve(receiver) -> None:
    pd = PagerDutyNotifier("R0UTINGKEY", url=receiver.url + "/v2/enqueue")
    pd.send(notification("firing"))
    pd.send(notification("resolved"))
    trigger, resolve = receiver.bodies
    assert trigger["routing_key"] == "R0UTINGKEY" and trigger["event_action"] == "trigger"
    assert trigger["payload"]["severity"] == "critical" and trigger["payload"]["source"] == "SPACE"
    assert {"summary", "source", "severity", "timestamp"} <= set(trigger["payload"])
    assert resolve["event_action"] == "resolve" and resolve["dedup_key"] == trigger["dedup_key"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collect:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def test_email_through_a_real_smtp_server() -> None:
    handler = Collect()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        EmailNotifier("127.0.0.1", port, "ops@example.org", ["a@example.org", "b@example.org"]).send(
            notification()
        )
        deadline = time.time() + 5
        while not handler.messages and time.time() < deadline:
            time.sleep(0.01)
    finally:
        controller.stop()
    [(sender, rcpts, content)] = handler.messages
    assert sender == "ops@example.org" and rcpts == ["a@example.org", "b@example.org"]
    msg = message_from_bytes(content)
    assert msg["Subject"] == "[FIRING:1] high_cpu_usage"
    assert "value: 93.5" in msg.get_payload()


def test_retry_with_backoff_then_success_and_failure_never_raises(receiver) -> None:
    receiver.fail_next = 2
    waits: list[float] = []
    d = deliver(WebhookNotifier(receiver.url), notification(), retries=3, backoff_s=0.1, sleep=waits.append)
    assert (d.ok, d.attempts, waits) == (True, 3, [0.1, 0.2])
    receiver.fail_next = 5
    d = deliver(WebhookNotifier(receiver.url), notification(), retries=3, backoff_s=0.0, sleep=lambda s: None)
    assert not d.ok and "503" in d.error
    d = deliver(
        WebhookNotifier("http://127.0.0.1:1/"), notification(), retries=2, backoff_s=0, sleep=lambda s: None
    )
    assert not d.ok and d.attempts == 2


def test_log_notifier_and_config_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    log = LogNotifier()
    log.send(notification())
    assert log.sent
    with pytest.raises(ConfigError) as info:
        build_notifiers({"slack": {}, "pagerduty": {"routing_key": "x", "colour": 1}, "sms": {}})
    assert {p.path for p in info.value.problems} == {"slack.webhook_url", "pagerduty.colour", "sms"}
    env = {
        "GEO_INFER_OPS_SLACK_WEBHOOK_URL": "http://x",
        "GEO_INFER_OPS_EMAIL_SMTP_HOST": "mail",
        "GEO_INFER_OPS_EMAIL_SMTP_PORT": "2525",
        "GEO_INFER_OPS_EMAIL_RECIPIENTS": "a@b.c",
    }
    cfg = notifier_config_from_env(env)
    assert cfg["slack"] == {"webhook_url": "http://x"} and cfg["email"]["smtp_port"] == 2525
    assert set(build_notifiers(cfg)) == {"slack", "email"}
