"""Notifiers: one interface (``send(notification)``), interchangeable implementations.

* :class:`WebhookNotifier` posts Alertmanager's webhook JSON (version 4);
* :class:`SlackNotifier` posts the Slack incoming-webhook format (``text`` + ``blocks``);
* :class:`PagerDutyNotifier` posts PagerDuty Events API v2 events (``routing_key``,
  ``event_action`` trigger/resolve, ``dedup_key`` = alert fingerprint, ``payload``);
* :class:`EmailNotifier` sends a plain-text mail over SMTP (smtplib, optional STARTTLS/login);
* :class:`LogNotifier` writes a line per alert to the ``geo_infer_ops.alerts`` logger.

:func:`deliver` retries a failing notifier with exponential backoff and returns an
outcome instead of raising, so that a broken notifier never stops evaluation.
"""

from __future__ import annotations

import logging
import os
import smtplib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from ..errors import ConfigError, Problem
from .alerting import Notification, rfc3339

log = logging.getLogger("geo_infer_ops.alerts")

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITY_TO_PD = {"critical": "critical", "warning": "warning", "info": "info", "error": "error"}


class NotifierError(Exception):
    """A notifier could not deliver (after its retries)."""


class Notifier(ABC):
    """Base class: subclasses implement :meth:`send` and may raise on failure."""

    kind = "notifier"

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Implemented by every subclass."""

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


def _post_json(url: str, body: Mapping[str, Any], timeout: float) -> None:
    import httpx

    response = httpx.post(url, json=body, timeout=timeout)
    if response.status_code >= 300:
        raise NotifierError(f"POST {url} answered {response.status_code}: {response.text[:200]}")


class WebhookNotifier(Notifier):
    kind = "webhook"

    def __init__(self, url: str, timeout: float = 5.0, external_url: str = "") -> None:
        self.url, self.timeout, self.external_url = url, timeout, external_url

    def payload(self, n: Notification) -> dict[str, Any]:
        return n.to_webhook(self.external_url)

    def send(self, n: Notification) -> None:
        _post_json(self.url, self.payload(n), self.timeout)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url}


class SlackNotifier(Notifier):
    kind = "slack"

    def __init__(self, webhook_url: str, channel: str | None = None, timeout: float = 5.0) -> None:
        self.webhook_url, self.channel, self.timeout = webhook_url, channel, timeout

    def payload(self, n: Notification) -> dict[str, Any]:
        lines = []
        for a in n.alerts:
            icon = ":red_circle:" if a.status == "firing" else ":large_green_circle:"
            where = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k not in ("alertname",))
            value = "" if a.value is None else f" — value {a.value:g}"
            lines.append(
                f"{icon} *{a.labels.get('alertname')}* {a.annotations.get('summary', '')}{value} ({where})"
            )
        text = n.title()
        body: dict[str, Any] = {
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": text}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines) or "-"}},
            ],
        }
        if self.channel:
            body["channel"] = self.channel
        return body

    def send(self, n: Notification) -> None:
        _post_json(self.webhook_url, self.payload(n), self.timeout)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "webhook_url": _mask(self.webhook_url)}


class PagerDutyNotifier(Notifier):
    kind = "pagerduty"

    def __init__(
        self,
        routing_key: str,
        url: str = PAGERDUTY_EVENTS_URL,
        source: str = "geo-infer-ops",
        timeout: float = 5.0,
    ) -> None:
        self.routing_key, self.url, self.source, self.timeout = routing_key, url, source, timeout

    def events(self, n: Notification) -> list[dict[str, Any]]:
        out = []
        for a in n.alerts:
            event: dict[str, Any] = {
                "routing_key": self.routing_key,
                "event_action": "trigger" if a.status == "firing" else "resolve",
                "dedup_key": a.fingerprint,
            }
            if a.status == "firing":
                event["payload"] = {
                    "summary": f"{a.labels.get('alertname')}: {a.annotations.get('summary', '')}"[:1024],
                    "source": a.labels.get("module") or a.labels.get("target") or self.source,
                    "severity": SEVERITY_TO_PD.get(a.labels.get("severity", "warning"), "warning"),
                    "timestamp": rfc3339(a.starts_at),
                    "component": a.labels.get("module"),
                    "group": n.group_key,
                    "custom_details": {"labels": a.labels, "value": a.value, "action": a.action},
                }
            out.append(event)
        return out

    def send(self, n: Notification) -> None:
        for event in self.events(n):
            _post_json(self.url, event, self.timeout)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "url": self.url, "routing_key": _mask(self.routing_key)}


class EmailNotifier(Notifier):
    kind = "email"

    def __init__(
        self,
        smtp_host: str,
        smtp_port: int = 25,
        sender: str = "geo-infer-ops@localhost",
        recipients: list[str] | str = (),
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 10.0,
    ) -> None:
        self.smtp_host, self.smtp_port, self.sender = smtp_host, int(smtp_port), sender
        self.recipients = (
            [r.strip() for r in recipients.split(",")] if isinstance(recipients, str) else list(recipients)
        )
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = n.title()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        lines = [n.title(), ""]
        for a in n.alerts:
            lines.append(
                f"{a.status.upper()}  {a.labels.get('alertname')}: {a.annotations.get('summary', '')}"
            )
            if a.value is not None:
                lines.append(f"  value: {a.value:g}")
            lines.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items())))
            lines.append(f"  since: {rfc3339(a.starts_at)}")
        msg.set_content("\n".join(lines) + "\n")
        return msg

    def send(self, n: Notification) -> None:
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.message(n))

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "smtp": f"{self.smtp_host}:{self.smtp_port}",
            "recipients": self.recipients,
        }


class LogNotifier(Notifier):
    kind = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or log
        self.sent: list[Notification] = []

    def send(self, n: Notification) -> None:
        self.sent.append(n)
        del self.sent[:-100]
        for a in n.alerts:
            level = logging.WARNING if a.status == "firing" else logging.INFO
            self.logger.log(
                level,
                "%s %s: %s",
                a.status.upper(),
                a.labels.get("alertname"),
                a.annotations.get("summary", ""),
                extra={"labels": a.labels},
            )


def _mask(secret: str) -> str:
    return secret[:12] + "…" if len(secret) > 16 else "***"


@dataclass(frozen=True)
class Delivery:
    notifier: str
    ok: bool
    attempts: int
    error: str | None = None


def deliver(
    notifier: Notifier,
    n: Notification,
    retries: int = 3,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """Send with up to ``retries`` attempts, waiting backoff_s, 2*backoff_s, ... between; never raises."""
    error = None
    for attempt in range(1, max(1, retries) + 1):
        try:
            notifier.send(n)
            return Delivery(notifier.kind, True, attempt)
        except Exception as exc:  # any failure of a notifier is reported, never raised
            error = f"{type(exc).__name__}: {exc}"
            log.warning("notifier %s failed (attempt %d/%d): %s", notifier.kind, attempt, retries, error)
            if attempt < retries:
                sleep(backoff_s * 2 ** (attempt - 1))
    return Delivery(notifier.kind, False, max(1, retries), error)


NOTIFIER_KEYS = {
    "webhook": ({"url"}, {"timeout", "external_url"}),
    "slack": ({"webhook_url"}, {"channel", "timeout"}),
    "pagerduty": ({"routing_key"}, {"url", "source", "timeout"}),
    "email": (
        {"smtp_host", "recipients"},
        {"smtp_port", "sender", "username", "password", "starttls", "timeout"},
    ),
    "log": (set(), set()),
}


def build_notifiers(config: Mapping[str, Any]) -> dict[str, Notifier]:
    """``{'webhook': {'url': ...}, 'slack': {...}, 'pagerduty': {...}, 'email': {...}, 'log': {}}``."""
    problems: list[Problem] = []
    out: dict[str, Notifier] = {}
    classes: dict[str, type[Notifier]] = {
        "webhook": WebhookNotifier,
        "slack": SlackNotifier,
        "pagerduty": PagerDutyNotifier,
        "email": EmailNotifier,
        "log": LogNotifier,
    }
    for kind, spec in (config or {}).items():
        if kind not in NOTIFIER_KEYS:
            problems.append(Problem(kind, "unknown notifier", f"use {', '.join(NOTIFIER_KEYS)}"))
            continue
        if spec is None or spec is True:
            spec = {}
        if not isinstance(spec, Mapping):
            problems.append(Problem(kind, "expected a dict of settings", ""))
            continue
        required, optional = NOTIFIER_KEYS[kind]
        bad = False
        for key in required - set(spec):
            problems.append(
                Problem(f"{kind}.{key}", "missing", f"set it, or GEO_INFER_OPS_{kind.upper()}_{key.upper()}")
            )
            bad = True
        for key in set(spec) - required - optional:
            problems.append(
                Problem(f"{kind}.{key}", "unknown key", f"allowed: {', '.join(sorted(required | optional))}")
            )
            bad = True
        if not bad:
            out[kind] = classes[kind](**dict(spec))
    if problems:
        raise ConfigError(problems, "configure_notifiers")
    return out


def notifier_config_from_env(environ: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Notifier settings from ``GEO_INFER_OPS_<KIND>_<KEY>`` (e.g. GEO_INFER_OPS_SLACK_WEBHOOK_URL)."""
    env = os.environ if environ is None else environ
    out: dict[str, dict[str, Any]] = {}
    for kind, (required, optional) in NOTIFIER_KEYS.items():
        for key in required | optional:
            value = env.get(f"GEO_INFER_OPS_{kind.upper()}_{key.upper()}")
            if value is not None:
                out.setdefault(kind, {})[key] = int(value) if key == "smtp_port" else value
    if "pagerduty" in out and "routing_key" not in out["pagerduty"]:
        out.pop("pagerduty")
    return out
