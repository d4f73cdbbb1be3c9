"""Alertmanager semantics: de-duplication, grouping, repeat, silences and inhibition.

The pipeline is Alertmanager's: the rule engine's transitions update the set of
alerts (:meth:`Dispatcher.update`); :meth:`Dispatcher.flush` then, per group of
alerts sharing the ``group_by`` labels,

* waits ``group_wait`` after the group's first alert before the first notification
  (so that alerts that fire together are sent together);
* afterwards looks at the group every ``group_interval`` and notifies only when the
  set of firing alerts changed or an alert resolved (de-duplication);
* re-sends an unchanged, still firing group after ``repeat_interval``;
* leaves out alerts that are *silenced* (a time-boxed set of label matchers, expiring
  at ``ends_at``) or *inhibited* (by default a firing ``system_down`` inhibits every
  other alert).

State: ``alerts`` (fingerprint -> :class:`Alert`, firing or resolved-not-yet-sent),
``groups`` (group key -> :class:`Group`), ``silences`` (id -> :class:`Silence`). All
times come from the caller, so tests drive it with a fake clock.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ..errors import ConfigError, Problem
from .rules import Transition, fingerprint, format_duration, parse_duration

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ts: float | None) -> str:
    if ts is None:
        return ZERO_TIME
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Matcher:
    """``name=value``, ``name!=value``, ``name=~regex`` or ``name!~regex``."""

    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        hit = re.fullmatch(self.value, actual) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def to_list(self) -> list[str]:
        return [self.name, self.op, self.value]


_MATCHER_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*\"?(.*?)\"?\s*$")


def parse_matchers(spec: Any, path: str = "matchers") -> list[Matcher]:
    """A dict ``{label: value}``, a list of ``'label=value'`` strings, or ``[name, op, value]`` lists."""
    problems: list[Problem] = []
    out: list[Matcher] = []
    if isinstance(spec, Mapping):
        out = [Matcher(str(k), "=", str(v)) for k, v in spec.items()]
    elif isinstance(spec, str):
        spec = [spec]
    if not isinstance(spec, Mapping):
        for i, item in enumerate(spec or []):
            if isinstance(item, (list, tuple)) and len(item) == 3:
                out.append(Matcher(str(item[0]), str(item[1]), str(item[2])))
                continue
            m = _MATCHER_RE.match(str(item))
            if not m:
                problems.append(
                    Problem(
                        f"{path}[{i}]",
                        f"{item!r} is not a matcher",
                        "write label=value, label!=value or label=~regex",
                    )
                )
                continue
            out.append(Matcher(m.group(1), m.group(2), m.group(3)))
    for i, m in enumerate(out):
        if m.op in ("=~", "!~"):
            try:
                re.compile(m.value)
            except re.error as exc:
                problems.append(
                    Problem(f"{path}[{i}]", f"bad regex {m.value!r}: {exc}", "fix the regular expression")
                )
    if not out and not problems:
        problems.append(Problem(path, "no matchers", "give at least one, e.g. alertname=high_cpu_usage"))
    if problems:
        raise ConfigError(problems, "silence")
    return out


@dataclass
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [str(m) for m in self.matchers],
            "starts_at": rfc3339(self.starts_at),
            "ends_at": rfc3339(self.ends_at),
            "comment": self.comment,
            "created_by": self.created_by,
        }

    @classmethod
    def new(cls, matchers: Any, duration: Any, comment: str, created_by: str, now: float) -> Silence:
        problems: list[Problem] = []
        seconds = parse_duration(duration, "duration", problems)
        if not problems and seconds <= 0:
            problems.append(Problem("duration", "must be longer than zero", "e.g. '2h'"))
        if problems:
            raise ConfigError(problems, "silence")
        return cls(uuid.uuid4().hex, parse_matchers(matchers), now, now + seconds, comment, created_by)


@dataclass(frozen=True)
class InhibitRule:
    """While an alert matching ``source`` fires, alerts matching ``target`` (equal on ``equal``) are muted."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()

    def to_config(self) -> dict[str, Any]:
        return {
            "source_matchers": [str(m) for m in self.source],
            "target_matchers": [str(m) for m in self.target],
            **({"equal": list(self.equal)} if self.equal else {}),
        }


DEFAULT_INHIBIT_RULES = (
    InhibitRule(
        source=(Matcher("alertname", "=", "system_down"),),
        target=(Matcher("alertname", "!=", "system_down"),),
    ),
)


@dataclass
class Route:
    """Alertmanager's root route (one receiver: every configured notifier)."""

    receiver: str = "geo-infer-ops"
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: float = 30.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    send_resolved: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Route:
        config = dict(config or {})
        problems: list[Problem] = []
        allowed = {"receiver", "group_by", "group_wait", "group_interval", "repeat_interval", "send_resolved"}
        for key in config:
            if key not in allowed:
                problems.append(Problem(key, "unknown key", f"allowed: {', '.join(sorted(allowed))}"))
        route = cls()
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if key in config:
                setattr(route, key, parse_duration(config[key], key, problems))
        if "group_by" in config:
            gb = config["group_by"]
            if isinstance(gb, str) or not isinstance(gb, Iterable):
                problems.append(
                    Problem("group_by", "must be a list of label names", "e.g. ['alertname', 'module']")
                )
            else:
                route.group_by = tuple(str(x) for x in gb)
        if "receiver" in config:
            route.receiver = str(config["receiver"])
        if "send_resolved" in config:
            route.send_resolved = bool(config["send_resolved"])
        if problems:
            raise ConfigError(problems, "route")
        return route

    def to_config(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "group_by": list(self.group_by),
            "group_wait": self.group_wait,
            "group_interval": self.group_interval,
            "repeat_interval": self.repeat_interval,
            "send_resolved": self.send_resolved,
        }

    def to_alertmanager(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "group_by": list(self.group_by),
            "group_wait": format_duration(self.group_wait),
            "group_interval": format_duration(self.group_interval),
            "repeat_interval": format_duration(self.repeat_interval),
        }


@dataclass
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    value: float | None = None
    ends_at: float | None = None
    action: str = "alert"

    @property
    def status(self) -> str:
        return "resolved" if self.ends_at is not None else "firing"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def to_dict(self, generator_url: str = "") -> dict[str, Any]:
        """Alertmanager's webhook alert object."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "generatorURL": generator_url,
            "fingerprint": self.fingerprint,
            "value": self.value,
        }


@dataclass
class Notification:
    """What one flush of one group sends to every notifier."""

    receiver: str
    status: str  # firing | resolved
    group_key: str
    group_labels: dict[str, str]
    alerts: list[Alert]
    ts: float

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]

    def common_labels(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        common = dict(self.alerts[0].labels)
        for a in self.alerts[1:]:
            common = {k: v for k, v in common.items() if a.labels.get(k) == v}
        return common

    def common_annotations(self) -> dict[str, str]:
        if not self.alerts:
            return {}
        common = dict(self.alerts[0].annotations)
        for a in self.alerts[1:]:
            common = {k: v for k, v in common.items() if a.annotations.get(k) == v}
        return common

    def title(self) -> str:
        name = self.group_labels.get("alertname") or self.common_labels().get("alertname") or "alerts"
        count = len(self.firing) if self.status == "firing" else len(self.resolved)
        return f"[{self.status.upper()}:{count}] {name}"

    def to_webhook(self, external_url: str = "") -> dict[str, Any]:
        """Alertmanager's webhook JSON (version 4)."""
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": 0,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": dict(self.group_labels),
            "commonLabels": self.common_labels(),
            "commonAnnotations": self.common_annotations(),
            "externalURL": external_url,
            "alerts": [a.to_dict() for a in self.alerts],
        }


@dataclass
class Group:
    key: str
    labels: dict[str, str]
    created_at: float
    next_flush: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    sent_firing: frozenset[str] = frozenset()
    last_sent_at: float | None = None


class Dispatcher:
    """Turns alert transitions into notifications with Alertmanager's timing rules."""

    def __init__(
        self, route: Route | None = None, inhibit_rules: Iterable[InhibitRule] = DEFAULT_INHIBIT_RULES
    ) -> None:
        self.route = route or Route()
        self.inhibit_rules = tuple(inhibit_rules)
        self.alerts: dict[str, Alert] = {}
        self.groups: dict[str, Group] = {}
        self.silences: dict[str, Silence] = {}
        self._sources: list[tuple[InhibitRule, list[Alert]]] | None = None

    # -- input ----------------------------------------------------------------------
    def update(self, transitions: Iterable[Transition], now: float) -> None:
        for t in transitions:
            if t.state in ("firing", "resolved"):
                self._sources = None
            fp = t.fingerprint
            if t.state == "firing":
                alert = Alert(
                    dict(t.labels),
                    {"summary": t.rule.summary(), **dict(t.rule.annotations)},
                    starts_at=t.ts,
                    value=t.value,
                    action=t.rule.action,
                )
                self.alerts[fp] = alert
                self._group_for(alert, now).alerts[fp] = alert
            elif t.state == "resolved":
                alert = self.alerts.get(fp)
                if alert is not None:
                    alert.ends_at = t.ts
                    alert.value = t.value
                    del self.alerts[fp]

    def refresh_values(self, values: Mapping[str, float | None]) -> None:
        for fp, value in values.items():
            if fp in self.alerts:
                self.alerts[fp].value = value

    def _group_for(self, alert: Alert, now: float) -> Group:
        labels = {k: alert.labels.get(k, "") for k in self.route.group_by}
        key = "{}:{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = Group(key, labels, now, now + self.route.group_wait)
        return group

    # -- suppression ----------------------------------------------------------------
    def add_silence(self, silence: Silence) -> None:
        self.silences[silence.id] = silence

    def expire_silence(self, silence_id: str, now: float) -> bool:
        s = self.silences.get(silence_id)
        if s is None:
            return False
        s.ends_at = min(s.ends_at, now)
        return True

    def _inhibitors(self) -> list[tuple[InhibitRule, list[Alert]]]:
        """Per inhibit rule, the firing alerts that match its source (recomputed after every update)."""
        if self._sources is None:
            self._sources = [
                (rule, [a for a in self.alerts.values() if all(m.matches(a.labels) for m in rule.source)])
                for rule in self.inhibit_rules
            ]
        return self._sources

    def suppressed_by(self, labels: Mapping[str, str], now: float) -> str | None:
        """Why an alert with these labels is muted right now (``None``: it is not)."""
        for s in self.silences.values():
            if s.active(now) and s.matches(labels):
                return f"silenced by {s.id[:8]} ({', '.join(map(str, s.matchers))})"
        for rule, sources in self._inhibitors():
            if not sources or not all(m.matches(labels) for m in rule.target):
                continue
            for src in sources:
                if src.labels is not labels and all(src.labels.get(k) == labels.get(k) for k in rule.equal):
                    return f"inhibited by {src.labels.get('alertname')}"
        return None

    # -- output ---------------------------------------------------------------------
    def flush(self, now: float) -> list[Notification]:
        """Notifications due now, one per group at most."""
        out: list[Notification] = []
        for key, group in list(self.groups.items()):
            if now < group.next_flush:
                continue
            firing = [
                a
                for a in group.alerts.values()
                if a.status == "firing" and self.suppressed_by(a.labels, now) is None
            ]
            firing_fps = frozenset(a.fingerprint for a in firing)
            resolved = [
                a for fp, a in group.alerts.items() if a.status == "resolved" and fp in group.sent_firing
            ]
            changed = firing_fps != group.sent_firing and bool(firing_fps - group.sent_firing)
            repeat = (
                bool(firing)
                and group.last_sent_at is not None
                and now - group.last_sent_at >= self.route.repeat_interval
            )
            send_resolved = bool(resolved) and self.route.send_resolved
            if changed or repeat or send_resolved:
                alerts = firing + (resolved if self.route.send_resolved else [])
                status = "firing" if firing else "resolved"
                out.append(Notification(self.route.receiver, status, key, dict(group.labels), alerts, now))
                group.last_sent_at = now
            # forget resolved alerts; what was (silently) muted is no longer "sent"
            group.sent_firing = firing_fps
            for fp in [fp for fp, a in group.alerts.items() if a.status == "resolved"]:
                del group.alerts[fp]
            group.next_flush = now + self.route.group_interval
            if not group.alerts:
                del self.groups[key]
        return out


def alertmanager_config(
    route: Route, notifiers: Mapping[str, Any], inhibit_rules: Iterable[InhibitRule] = DEFAULT_INHIBIT_RULES
) -> dict[str, Any]:
    """An Alertmanager configuration with one receiver holding every configured notifier."""
    receiver: dict[str, Any] = {"name": route.receiver}
    resolved = route.send_resolved
    for kind, n in notifiers.items():
        if kind == "webhook":
            receiver.setdefault("webhook_configs", []).append({"url": n.url, "send_resolved": resolved})
        elif kind == "slack":
            cfg = {
                "api_url": n.webhook_url,
                "send_resolved": resolved,
                "title": "[{{ .Status | toUpper }}] {{ .GroupLabels.alertname }}",
                "text": "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}",
            }
            if n.channel:
                cfg["channel"] = n.channel
            receiver.setdefault("slack_configs", []).append(cfg)
        elif kind == "pagerduty":
            receiver.setdefault("pagerduty_configs", []).append(
                {"routing_key": n.routing_key, "url": n.url, "send_resolved": resolved}
            )
        elif kind == "email":
            receiver.setdefault("email_configs", []).append(
                {
                    "to": ", ".join(n.recipients),
                    "from": n.sender,
                    "smarthost": f"{n.smtp_host}:{n.smtp_port}",
                    "require_tls": bool(n.starttls),
                    "send_resolved": resolved,
                }
            )
    return {
        "global": {"resolve_timeout": "5m"},
        "route": route.to_alertmanager(),
        "receivers": [receiver],
        "inhibit_rules": [r.to_config() for r in inhibit_rules],
    }
