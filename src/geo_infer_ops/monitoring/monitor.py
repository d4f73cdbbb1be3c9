"""``SystemMonitor``: metrics in, alerts and actions out.

One evaluation cycle (:meth:`SystemMonitor.evaluate`):

1. the rule engine compares the latest value of every live series (held in memory by the
   :class:`~.metrics.MetricStore`) with the rules and returns the state transitions;
2. the dispatcher (Alertmanager semantics) turns them into notifications: grouping,
   ``group_wait`` / ``group_interval`` / ``repeat_interval``, silences, inhibition;
3. every notifier gets each notification (with retries; a failure is recorded, never raised);
4. an alert that starts firing runs its rule's action (again after ``cooldown`` while it fires);
5. every transition, delivery and action outcome is written to the ``alert_events`` table.

:meth:`start_monitoring` runs :meth:`sample` (psutil + run history + a health check) and
:meth:`evaluate` every ``interval`` seconds in a background thread.

The configuration (rules, notifiers, route, interval) is kept in ``<home>/monitoring.json``
so that every process (the CLI, a long-running ``monitor start``) sees the same rules; silences
and alert history are in the state store.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..errors import ConfigError, Problem
from ..settings import Settings, get_settings
from ..store import Store
from .actions import ActionContext, ActionRegistry, ActionResult
from .actions import actions as default_action_registry
from .alerting import Alert, Dispatcher, Route, Silence, alertmanager_config
from .notifiers import Delivery, LogNotifier, Notifier, build_notifiers, deliver, notifier_config_from_env
from .rules import (
    AlertState,
    Rule,
    RuleEngine,
    Transition,
    fingerprint,
    label_key,
    parse_alerts,
    parse_data_operations,
    parse_monitoring,
)

log = logging.getLogger("geo_infer_ops.monitoring")

CONFIG_FILE = "monitoring.json"
DEFAULT_INTERVAL_S = 15.0

#: configure_comprehensive_monitoring: the metrics a group name stands for.
METRIC_GROUPS = {
    "cpu": ["cpu_usage", "load_average"],
    "memory": ["memory_usage", "free_memory", "swap_usage"],
    "disk": ["disk_usage"],
    "network": ["network_latency", "network_bytes_sent", "network_bytes_recv"],
}

#: configure_comprehensive_monitoring: the rules added for listed metrics that have none yet.
DEFAULT_RULES: dict[str, dict[str, Any]] = {
    "cpu_usage": {"threshold": 90, "for": 300},
    "memory_usage": {"threshold": 90, "for": 300},
    "disk_usage": {"threshold": 90, "for": 300, "action": "cleanup"},
    "network_latency": {"threshold": 500, "for": 300},
    "response_time": {"threshold": 5000, "for": 300},
    "error_rate": {"threshold": 5, "for": 300},
    "user_satisfaction": {"threshold": 0.8},
    "system_uptime": {"threshold": 0.99, "severity": "critical"},
}

ALERTING_SWITCHES = {
    "email_alerts": "email",
    "slack_integration": "slack",
    "pager_duty": "pagerduty",
    "webhook": "webhook",
}


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


class SystemMonitor:
    """System monitoring and alerting."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        store: Store | None = None,
        clock: Clock | None = None,
        metrics: Any = None,
        system_collector: Any = None,
        run_collector: Any = None,
        actions: ActionRegistry | None = None,
        orchestrator: Any = None,
        deployment_manager: Any = None,
        notify_retries: int = 3,
        notify_backoff_s: float = 0.5,
    ) -> None:
        cfg = dict(config or {})
        overrides = {k: cfg.pop(k) for k in ("home", "database_url") if k in cfg}
        self.settings = settings or get_settings(**overrides)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.clock = clock or Clock()
        self.store = store or Store(self.settings.resolved_database_url)
        if metrics is None:
            from .metrics import MetricStore

            metrics = MetricStore(self.store, self.clock)
        self.metrics = metrics
        self._system_collector = system_collector
        self._run_collector = run_collector
        self.actions = actions or default_action_registry
        self._orchestrator = orchestrator
        self._deployment_manager = deployment_manager
        self.notify_retries, self.notify_backoff_s = notify_retries, notify_backoff_s
        self.engine = RuleEngine()
        self.dispatcher = Dispatcher()
        self.notifiers: dict[str, Notifier] = {}
        self.log_notifier = LogNotifier()
        self.interval_s = DEFAULT_INTERVAL_S
        self.latency_targets: list[str] | None = None
        self.tracked_metrics: list[str] = []
        self._notifier_config: dict[str, dict[str, Any]] = {}
        self._enabled: dict[str, bool] = {}
        self._pushed: set[str] = set()
        self._last_action: dict[tuple[str, str], float] = {}
        self._lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_sample_at: float | None = None
        self._last_retention_at: float = 0.0
        self._load_config()
        for key, value in cfg.items():
            if key == "interval":
                self.interval_s = float(value)
            elif key == "notifiers":
                self.configure_notifiers(value)
            else:
                raise ConfigError(
                    [Problem(key, "unknown key", "allowed: home, database_url, interval, notifiers")],
                    "SystemMonitor",
                )
        self._restore_state()

    # -- configuration ------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.settings.home / CONFIG_FILE

    def _load_config(self) -> None:
        data: dict[str, Any] = {}
        if self.config_path.exists():
            try:
                data = json.loads(self.config_path.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    [Problem(str(self.config_path), f"unreadable: {exc}", "fix or delete the file")],
                    "monitoring configuration",
                ) from None
        rules = data.get("rules") or []
        if rules:
            parsed: list[Rule] = []
            for entry in rules:
                entry = dict(entry)
                name = entry.pop("name")
                parsed += parse_alerts({name: entry}, self.actions.names(), source=str(self.config_path))
            self.engine.set_rules(parsed)
        self.interval_s = float(data.get("interval_s", DEFAULT_INTERVAL_S))
        self.latency_targets = data.get("latency_targets")
        self.tracked_metrics = list(data.get("tracked_metrics", []))
        self._enabled = dict(data.get("enabled_notifiers", {}))
        self.dispatcher.route = Route.from_config(data.get("route"))
        self._notifier_config = dict(data.get("notifiers", {}))
        self._build_notifiers()

    def _build_notifiers(self) -> None:
        merged = {**notifier_config_from_env(), **self._notifier_config}
        merged = {k: v for k, v in merged.items() if self._enabled.get(k, True)}
        self.notifiers = build_notifiers(merged)

    def save_config(self) -> Path:
        data = {
            "version": 1,
            "interval_s": self.interval_s,
            "rules": [{"name": r.name, **r.to_config()} for r in self.engine.rules],
            "route": self.dispatcher.route.to_config(),
            "notifiers": self._notifier_config,
            "enabled_notifiers": self._enabled,
            "latency_targets": self.latency_targets,
            "tracked_metrics": self.tracked_metrics,
        }
        path = self.config_path
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.chmod(tmp, 0o600)  # it may hold webhook URLs and routing keys
        tmp.replace(path)
        return path

    def _add_rules(self, rules: list[Rule]) -> list[dict[str, Any]]:
        with self._lock:
            self.engine.add_rules(rules)
            self.save_config()
        return [{"name": r.name, "id": r.id, "expr": r.expr, **r.to_config()} for r in rules]

    def configure_alerts(self, alert_config: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Alerting rules keyed by alert name (``high_cpu_usage``, ``low_memory``, ...); returns them."""
        return self._add_rules(parse_alerts(alert_config, self.actions.names()))

    def configure_monitoring(self, monitoring_config: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Rules grouped as system_metrics / module_metrics (per module) / business_metrics."""
        return self._add_rules(parse_monitoring(monitoring_config, self.actions.names()))

    def monitor_data_operations(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Rules over data metrics (data_ingestion_rate, data_processing_time, data_quality_score, ...)."""
        rules = self._add_rules(parse_data_operations(config, self.actions.names()))
        current: dict[str, list[dict[str, Any]]] = {}
        try:
            samples = self.run_collector.collect()
        except Exception as exc:  # a store problem must not hide the configured rules
            log.warning("run history unavailable: %s", exc)
            samples = []
        for name, labels, value in samples:
            self.metrics.record(name, value, labels)
            if name in config:
                current.setdefault(name, []).append({"labels": labels, "value": value})
        return {"rules": rules, "current": current}

    def configure_notifiers(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``{'webhook': {'url'}, 'slack': {'webhook_url'}, 'pagerduty': {'routing_key', 'url'},
        'email': {'smtp_host', 'smtp_port', 'sender', 'recipients'}}``; merged with what is configured."""
        build_notifiers(config)  # validate first: one error listing every problem
        with self._lock:
            for kind, spec in config.items():
                self._notifier_config[kind] = dict(spec or {})
                self._enabled[kind] = True
            self._build_notifiers()
            self.save_config()
        return {kind: n.describe() for kind, n in self.notifiers.items()}

    def configure_routing(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Alertmanager's route: group_by, group_wait, group_interval, repeat_interval, send_resolved."""
        with self._lock:
            self.dispatcher.route = Route.from_config({**self.dispatcher.route.to_config(), **dict(config)})
            self.save_config()
        return self.dispatcher.route.to_config()

    def configure_comprehensive_monitoring(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """Which metrics to track (groups and names), default rules for them, and which notifiers to use."""
        allowed = {
            "system_metrics",
            "application_metrics",
            "business_metrics",
            "custom_metrics",
            "alerting",
            "interval",
            "latency_targets",
        }
        problems: list[Problem] = []
        tracked: list[str] = []
        for key, value in config.items():
            if key not in allowed:
                problems.append(Problem(key, "unknown key", f"allowed: {', '.join(sorted(allowed))}"))
            elif key.endswith("_metrics"):
                if isinstance(value, Mapping):
                    problems.append(
                        Problem(
                            key, "expected a list of metric names", "thresholds go to configure_monitoring"
                        )
                    )
                    continue
                for i, name in enumerate(value or []):
                    if not isinstance(name, str):
                        problems.append(Problem(f"{key}[{i}]", "not a metric name", ""))
                    elif key == "system_metrics" and name in METRIC_GROUPS:
                        tracked += METRIC_GROUPS[name]
                    else:
                        tracked.append(name)
        alerting = config.get("alerting") or {}
        if not isinstance(alerting, Mapping):
            problems.append(Problem("alerting", "expected a dict", "e.g. {'slack_integration': True}"))
            alerting = {}
        for key in alerting:
            if key not in ALERTING_SWITCHES:
                problems.append(
                    Problem(f"alerting.{key}", "unknown switch", f"use {', '.join(ALERTING_SWITCHES)}")
                )
        if problems:
            raise ConfigError(problems, "configure_comprehensive_monitoring")
        with self._lock:
            if "interval" in config:
                self.interval_s = float(config["interval"])
            if "latency_targets" in config:
                self.latency_targets = list(config["latency_targets"])
                self._system_collector = None
            self.tracked_metrics = sorted(set(self.tracked_metrics) | set(tracked))
            have = {r.metric for r in self.engine.rules}
            defaults = {
                m: dict(DEFAULT_RULES[m], group="default")
                for m in tracked
                if m in DEFAULT_RULES and m not in have
            }
            added = []
            if defaults:
                rules = parse_monitoring({"custom_metrics": {}}, self.actions.names())
                for metric, spec in defaults.items():
                    spec.pop("group")
                    rules += [
                        Rule(**{**r.__dict__, "group": "default"})  # type: ignore[arg-type]
                        for r in parse_monitoring({"custom_metrics": {metric: spec}}, self.actions.names())
                    ]
                self.engine.add_rules(rules)
                added = [r.name for r in rules]
            status: dict[str, str] = {}
            for switch, kind in ALERTING_SWITCHES.items():
                if switch not in alerting:
                    continue
                self._enabled[kind] = bool(alerting[switch])
                if not alerting[switch]:
                    status[kind] = "disabled"
                elif kind in {**notifier_config_from_env(), **self._notifier_config}:
                    status[kind] = "enabled"
                else:
                    status[kind] = (
                        f"enabled, not configured: call configure_notifiers({{'{kind}': {{...}}}}) "
                        f"or set GEO_INFER_OPS_{kind.upper()}_* variables"
                    )
            self._build_notifiers()
            self.save_config()
        return {
            "tracked_metrics": self.tracked_metrics,
            "rules_added": added,
            "notifiers": status,
            "interval_s": self.interval_s,
        }

    def remove_rules(self, names: Iterable[str]) -> int:
        names = set(names)
        with self._lock:
            ids = [r.id for r in self.engine.rules if r.name in names or r.id in names]
            self.engine.remove_rules(ids)
            self.save_config()
        return len(ids)

    @property
    def rules(self) -> list[Rule]:
        return self.engine.rules

    # -- collaborators -----------------------------------------------------------------------------
    @property
    def system_collector(self) -> Any:
        if self._system_collector is None:
            from .collectors import SystemCollector

            if self.latency_targets is not None:
                self._system_collector = SystemCollector(self.latency_targets)
            else:
                self._system_collector = SystemCollector()
        return self._system_collector

    @property
    def run_collector(self) -> Any:
        if self._run_collector is None:
            from .collectors import RunHistoryCollector

            self._run_collector = RunHistoryCollector(self.store, self.clock)
        return self._run_collector

    def orchestrator(self) -> Any:
        if self._orchestrator is None:
            from ..orchestration.orchestrator import WorkflowOrchestrator

            self._orchestrator = WorkflowOrchestrator(
                settings=self.settings, store=self.store, clock=self.clock
            )
        return self._orchestrator

    def deployment_manager(self) -> Any:
        """The deployment manager, or ``None`` while ``geo_infer_ops.deployment`` does not exist."""
        if self._deployment_manager is None:
            try:
                from ..deployment import DeploymentManager  # type: ignore[attr-defined]
            except ImportError:
                return None
            try:
                self._deployment_manager = DeploymentManager(settings=self.settings)
            except TypeError:
                self._deployment_manager = DeploymentManager()
        return self._deployment_manager

    def live_run_ids(self) -> list[str]:
        from sqlalchemy import select

        from ..store import tables as t

        with self.store.engine.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute(select(t.runs.c.id).where(t.runs.c.status.in_(["pending", "running"])))
            ]
        if self._orchestrator is not None:
            ids += list(getattr(self._orchestrator, "_active", {}))
        return sorted(set(ids))

    # -- metrics -------------------------------------------------------------------------------------
    def record_metric(
        self, name: str, value: float, labels: Mapping[str, str] | None = None, timestamp: float | None = None
    ) -> None:
        """Push a sample of any metric (user_satisfaction, system_uptime, custom ones)."""
        self.metrics.record(name, float(value), labels, timestamp)
        self._pushed.add(name)

    def sample(self) -> int:
        """Collect system (psutil) and run-history metrics now, plus a health check; returns #samples."""
        now = self.clock.time()
        samples: list[tuple[str, dict[str, str], float]] = []
        up = 1.0
        for collector in (self.system_collector, self.run_collector):
            try:
                samples += collector.collect()
            except Exception as exc:  # a collector failing is a failed health check, not a crash
                log.warning("collector %s failed: %s", type(collector).__name__, exc)
                up = 0.0
        for name, labels, value in samples:
            self.metrics.record(name, value, labels, now)
        self._health_sample(up, now)
        self._last_sample_at = now
        return len(samples)

    def _health_sample(self, up: float, now: float) -> None:
        self.metrics.record("health_check_up", up, None, now)
        if "system_uptime" in self._pushed:
            return
        try:
            points = self.metrics.query_range("health_check_up", now - 30 * 86400, now)
        except Exception:
            points = []
        if points:
            self.metrics.record("system_uptime", sum(p[1] for p in points) / len(points), None, now)

    # -- evaluation ----------------------------------------------------------------------------------
    def evaluate(self) -> list[dict[str, Any]]:
        """One evaluation cycle now; returns the transitions (with the outcome of any action run)."""
        with self._lock:
            now = self.clock.time()
            self._load_silences(now)
            with self.metrics.reading() as latest:
                transitions = self.engine.evaluate_grouped(latest, now)
            self.dispatcher.update(transitions, now)
            self.dispatcher.refresh_values({st.fingerprint: st.value for st in self.engine.active()})
            rows: list[dict[str, Any]] = []
            out: list[dict[str, Any]] = []
            for tr in transitions:
                entry = {
                    "alert": tr.alert,
                    "state": tr.state,
                    "previous": tr.previous,
                    "labels": tr.labels,
                    "value": tr.value,
                    "ts": tr.ts,
                    "message": tr.message(),
                }
                rows.append(self._event_row(tr, tr.message()))
                if tr.state == "firing":
                    result = self._run_action(tr, now)
                    if result is not None:
                        entry.update(
                            action=tr.rule.action, action_status=result.status, action_detail=result.detail
                        )
                        rows.append(
                            self._event_row(
                                tr, f"action {tr.rule.action}: {result.status}", tr.rule.action, result
                            )
                        )
                out.append(entry)
            rows += self._repeat_actions(now, {tr.fingerprint for tr in transitions})
            for notification in self.dispatcher.flush(now):
                for d in self._notify(notification):
                    first = notification.alerts[0]
                    rows.append(
                        {
                            "ts": now,
                            "alert": first.labels.get("alertname", ""),
                            "state": notification.status,
                            "labels": json.dumps(
                                {"group": notification.group_key, "alerts": len(notification.alerts)}
                            ),
                            "value": None,
                            "message": f"notification {notification.title()} via {d.notifier}",
                            "action": f"notify_{d.notifier}"[:40],
                            "action_status": "succeeded" if d.ok else "failed",
                            "action_detail": d.error or f"delivered in {d.attempts} attempt(s)",
                        }
                    )
            self._write_events(rows)
            return out

    def _event_row(
        self, tr: Transition, message: str, action: str | None = None, result: ActionResult | None = None
    ) -> dict[str, Any]:
        return {
            "ts": tr.ts,
            "alert": tr.alert,
            "state": tr.state,
            "labels": json.dumps(tr.labels, sort_keys=True, separators=(",", ":")),
            "value": tr.value,
            "message": message,
            "action": action,
            "action_status": result.status if result else None,
            "action_detail": result.detail if result else None,
        }

    def _run_action(self, tr: Transition, now: float) -> ActionResult | None:
        rule = tr.rule
        self._last_action[(rule.id, tr.fingerprint)] = now
        reason = self.dispatcher.suppressed_by(tr.labels, now)
        if reason and rule.action != "alert":
            return ActionResult("skipped", reason)
        try:
            action = self.actions.get(rule.action)
        except KeyError:
            return ActionResult("failed", f"action {rule.action!r} is not registered")
        try:
            return action.run(ActionContext(self, rule, tr, now))
        except Exception as exc:  # an action failing is recorded; evaluation goes on
            log.exception("action %s of %s failed", rule.action, rule.name)
            return ActionResult("failed", f"{type(exc).__name__}: {exc}")

    def _repeat_actions(self, now: float, just_fired: set[str]) -> list[dict[str, Any]]:
        """Actions (other than alert) of alerts still firing after their rule's cooldown run again."""
        rows = []
        for st in self.engine.active():
            rule = st.rule
            if (
                st.state != "firing"
                or rule.action == "alert"
                or rule.cooldown_s <= 0
                or st.fingerprint in just_fired
            ):
                continue
            last = self._last_action.get((rule.id, st.fingerprint))
            if last is not None and now - last < rule.cooldown_s:
                continue
            tr = Transition(rule.name, "firing", "firing", dict(st.labels), st.value, now, rule, st.active_at)
            result = self._run_action(tr, now)
            if result is not None:
                rows.append(
                    self._event_row(
                        tr, f"action {rule.action} (repeat): {result.status}", rule.action, result
                    )
                )
        return rows

    def notify_alerts(
        self, alerts: Iterable[Mapping[str, Any]], receiver: str = "environmental"
    ) -> list[dict[str, Any]]:
        """Send alerts raised elsewhere (e.g. APP.generate_environmental_alerts) to the notifiers.

        Each alert is ``{"labels": {...}, "annotations": {...}, "value": float | None}``; one
        notification carries them all, through every configured notifier, with the same retries
        as rule alerts. Returns one delivery record per notifier (none when no alert is given).
        """
        from .alerting import Notification

        now = self.clock.time()
        batch = [
            Alert(
                labels={k: str(v) for k, v in dict(a.get("labels", {})).items()},
                annotations={k: str(v) for k, v in dict(a.get("annotations", {})).items()},
                starts_at=now,
                value=a.get("value"),
            )
            for a in alerts
        ]
        if not batch:
            return []
        notification = Notification(
            receiver=receiver,
            status="firing",
            group_key=receiver,
            group_labels={"receiver": receiver},
            alerts=batch,
            ts=now,
        )
        return [vars(d) for d in self._notify(notification)]

    def _notify(self, notification: Any) -> list[Delivery]:
        out = []
        for notifier in [self.log_notifier, *self.notifiers.values()]:
            if notifier is self.log_notifier and "log" in self.notifiers:
                continue
            out.append(deliver(notifier, notification, self.notify_retries, self.notify_backoff_s))
        return [d for d in out if d.notifier != "log" or "log" in self.notifiers]

    def _write_events(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        from sqlalchemy import insert

        from ..store import tables as t

        try:
            with self.store.engine.begin() as conn:
                conn.execute(insert(t.alert_events), rows)
        except Exception as exc:  # the history must not stop alerting
            log.error("could not write %d alert event(s): %s", len(rows), exc)

    # -- silences ------------------------------------------------------------------------------------
    def silence(
        self, matchers: Any, duration: Any = "1h", comment: str = "", created_by: str | None = None
    ) -> dict[str, Any]:
        """Mute alerts matching ``matchers`` (``{'alertname': 'high_cpu_usage'}`` or ``['module=SPACE']``)."""
        from sqlalchemy import insert

        from ..store import tables as t

        now = self.clock.time()
        s = Silence.new(matchers, duration, comment, created_by or _user(), now)
        with self.store.engine.begin() as conn:
            conn.execute(
                insert(t.silences).values(
                    id=s.id,
                    matchers=json.dumps([m.to_list() for m in s.matchers]),
                    starts_at=s.starts_at,
                    ends_at=s.ends_at,
                    comment=s.comment,
                    created_by=s.created_by,
                )
            )
        with self._lock:
            self.dispatcher.add_silence(s)
        return s.to_dict()

    def expire_silence(self, silence_id: str) -> bool:
        from sqlalchemy import update

        from ..store import tables as t

        now = self.clock.time()
        with self.store.engine.begin() as conn:
            n = conn.execute(
                update(t.silences)
                .where(t.silences.c.id.startswith(silence_id), t.silences.c.ends_at > now)
                .values(ends_at=now)
            ).rowcount
        with self._lock:
            for sid in list(self.dispatcher.silences):
                if sid.startswith(silence_id):
                    self.dispatcher.expire_silence(sid, now)
        return bool(n)

    def silences(self, include_expired: bool = False) -> list[dict[str, Any]]:
        now = self.clock.time()
        return [
            s.to_dict() | {"active": s.active(now)}
            for s in self._read_silences(None if include_expired else now)
        ]

    def _read_silences(self, active_at: float | None) -> list[Silence]:
        from sqlalchemy import select

        from ..store import tables as t
        from .alerting import parse_matchers

        stmt = select(t.silences)
        if active_at is not None:
            stmt = stmt.where(t.silences.c.ends_at > active_at)
        with self.store.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(t.silences.c.starts_at)).mappings().all()
        return [
            Silence(
                r["id"],
                parse_matchers(json.loads(r["matchers"])),
                r["starts_at"],
                r["ends_at"],
                r["comment"],
                r["created_by"],
            )
            for r in rows
        ]

    def _load_silences(self, now: float) -> None:
        try:
            for s in self._read_silences(now):
                self.dispatcher.silences[s.id] = s
        except Exception as exc:
            log.warning("could not read silences: %s", exc)
        for sid in [sid for sid, s in self.dispatcher.silences.items() if s.ends_at <= now]:
            del self.dispatcher.silences[sid]

    # -- history and state ---------------------------------------------------------------------------
    def alert_history(self, limit: int = 200, alert: str | None = None) -> list[dict[str, Any]]:
        return alert_history(self.store, limit, alert)

    def _restore_state(self) -> None:
        """Pending/firing alerts of an earlier process come back (Prometheus' ALERTS_FOR_STATE)."""
        try:
            latest = _latest_states(self.store)
        except Exception as exc:
            log.debug("no alert history to restore: %s", exc)
            return
        rules_by_name: dict[str, list[Rule]] = {}
        for r in self.engine.rules:
            rules_by_name.setdefault(r.name, []).append(r)
        for row in latest:
            if row["state"] not in ("pending", "firing"):
                continue
            labels = row["labels"]
            for rule in rules_by_name.get(row["alert"], []):
                if any(labels.get(k) != v for k, v in rule.matchers):
                    continue
                static = {"alertname", "severity", *dict(rule.labels)}
                series = {k: v for k, v in labels.items() if k not in static}
                st = AlertState(
                    rule,
                    dict(labels),
                    state=row["state"],
                    active_at=row["active_at"],
                    fired_at=row["ts"],
                    last_true=row["ts"],
                    value=row["value"],
                )
                self.engine.restore((rule.id, label_key(series)), st)
                if st.state == "firing":
                    alert = Alert(
                        dict(labels), {"summary": rule.summary()}, row["ts"], row["value"], action=rule.action
                    )
                    self.dispatcher.alerts[st.fingerprint] = alert
                    self.dispatcher._sources = None
                    group = self.dispatcher._group_for(alert, row["ts"])
                    group.alerts[st.fingerprint] = alert
                    group.sent_firing = group.sent_firing | {st.fingerprint}
                    group.last_sent_at = row["ts"]
                    self._last_action[(rule.id, st.fingerprint)] = row["ts"]
                break

    def active_alerts(self, include_pending: bool = False) -> list[dict[str, Any]]:
        now = self.clock.time()
        out = []
        for st in self.engine.active():
            if st.state == "pending" and not include_pending:
                continue
            out.append(
                {
                    "alert": st.rule.name,
                    "state": st.state,
                    "severity": st.rule.severity,
                    "labels": dict(st.labels),
                    "value": st.value,
                    "threshold": st.rule.threshold,
                    "comparison": st.rule.comparison,
                    "summary": st.rule.summary(),
                    "action": st.rule.action,
                    "active_since": _iso(st.active_at),
                    "firing_since": _iso(st.fired_at) if st.state == "firing" else None,
                    "suppressed": self.dispatcher.suppressed_by(st.labels, now),
                    "fingerprint": st.fingerprint,
                }
            )
        return sorted(out, key=lambda a: (a["severity"] != "critical", a["alert"]))

    def get_system_status(self) -> dict[str, Any]:
        """overall_health (healthy|degraded|critical), active_alerts, per-module status, last samples."""
        active = self.active_alerts()
        pending = [a for a in self.active_alerts(include_pending=True) if a["state"] == "pending"]
        series = self.metrics.series()
        modules: dict[str, dict[str, Any]] = {}
        samples: dict[str, Any] = {}
        for (name, lk), (ts, value) in sorted(series.items()):
            labels = dict(lk)
            if not lk:
                samples[name] = {"value": value, "ts": _iso(ts)}
            mod = labels.get("module")
            if mod and set(labels) <= {"module"}:
                modules.setdefault(mod, {"status": "healthy", "alerts": [], "metrics": {}})["metrics"][
                    name
                ] = value
        for a in active:
            mod = a["labels"].get("module")
            if mod:
                entry = modules.setdefault(mod, {"status": "healthy", "alerts": [], "metrics": {}})
                entry["alerts"].append(a["alert"])
                entry["status"] = (
                    "critical" if a["severity"] == "critical" or entry["status"] == "critical" else "degraded"
                )
        return {
            "overall_health": _health(active),
            "timestamp": _iso(self.clock.time()),
            "monitoring": self.is_running,
            "active_alerts": active,
            "pending_alerts": pending,
            "modules": modules,
            "metrics": samples,
            "last_sample_at": _iso(self._last_sample_at),
            "rules": len(self.engine.rules),
            "notifiers": sorted(self.notifiers),
        }

    def check_system_health(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Sample now; report the requested ``metrics`` for the system and each of ``modules``."""
        config = dict(config or {})
        problems = [
            Problem(k, "unknown key", "allowed: modules, metrics")
            for k in config
            if k not in ("modules", "metrics")
        ]
        if problems:
            raise ConfigError(problems, "check_system_health")
        modules = [str(m) for m in config.get("modules") or []]
        wanted = [str(m) for m in config.get("metrics") or []]
        self.sample()
        self.evaluate()
        series = self.metrics.series()
        system: dict[str, float | None] = {}
        per_module: dict[str, dict[str, Any]] = {}
        from ..modules.registry import registry

        registered = {s.module for s in registry.all()}
        active = self.active_alerts()
        for metric in wanted or ["cpu_usage", "memory_usage", "disk_usage"]:
            values = [v for (n, lk), (_ts, v) in series.items() if n == metric and "module" not in dict(lk)]
            if values:
                system[metric] = max(values)
        for mod in modules:
            metrics = {}
            for metric in wanted:
                sample = series.get((metric, (("module", mod),)))
                if sample is not None:
                    metrics[metric] = sample[1]
                elif metric in system:
                    continue
                else:
                    metrics[metric] = None
            alerts = [a for a in active if a["labels"].get("module") == mod]
            status = _health(alerts)
            error_rate = metrics.get("error_rate")
            if status == "healthy" and error_rate is not None and error_rate >= 50:
                status = "critical"
            elif status == "healthy" and error_rate is not None and error_rate >= 5:
                status = "degraded"
            if status == "healthy" and all(v is None for v in metrics.values()) and metrics:
                status = "unknown"
            per_module[mod] = {
                "status": status,
                "metrics": metrics,
                "alerts": [a["alert"] for a in alerts],
                "registered": (mod in registered) if registered else None,
            }
        statuses = [m["status"] for m in per_module.values()]
        overall = _health(active)
        if overall == "healthy" and any(s in ("degraded", "critical") for s in statuses):
            overall = "degraded"
        return {
            "overall_health": overall,
            "timestamp": _iso(self.clock.time()),
            "system": system,
            "modules": per_module,
            "active_alerts": active,
        }

    def monitor_workflow_execution(self, workflow_id: str) -> dict[str, Any]:
        """Live state of a run: status, progress, running steps, elapsed, ETA from history; its alerts."""
        out = dict(self.orchestrator().monitor_workflow(workflow_id))
        name = out.get("name")
        out["alerts"] = [
            a for a in self.active_alerts(include_pending=True) if a["labels"].get("workflow") == name
        ]
        self.metrics.record("workflow_progress", out["progress"]["percent"], {"workflow": str(name)})
        return out

    # -- the background loop --------------------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_monitoring(self, interval: float | None = None) -> dict[str, Any]:
        """Sample and evaluate once now, then every ``interval`` seconds in a background thread."""
        if interval is not None:
            self.interval_s = float(interval)
        if self.is_running:
            return {"running": True, "interval_s": self.interval_s}
        self.cycle()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gio-monitor", daemon=True)
        self._thread.start()
        return {"running": True, "interval_s": self.interval_s, "rules": len(self.engine.rules)}

    def cycle(self) -> list[dict[str, Any]]:
        """sample() + evaluate() + (hourly) metric retention + flush."""
        try:
            self.sample()
        except Exception as exc:
            log.warning("sampling failed: %s", exc)
        out = self.evaluate()
        now = self.clock.time()
        try:
            if now - self._last_retention_at >= 3600:
                self._last_retention_at = now
                self.metrics.apply_retention(now=now)
            self.metrics.flush()
        except Exception as exc:
            log.warning("metric store maintenance failed: %s", exc)
        return out

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.cycle()
            except Exception:  # the loop must survive anything a cycle throws
                log.exception("monitoring cycle failed")

    def stop_monitoring(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        try:
            self.metrics.flush()
        except Exception as exc:
            log.warning("could not flush metrics: %s", exc)

    def close(self) -> None:
        self.stop_monitoring()
        if self._orchestrator is not None and hasattr(self._orchestrator, "close"):
            self._orchestrator.close()

    # -- export --------------------------------------------------------------------------------------
    def export_config(self, output_dir: str | Path) -> dict[str, str]:
        """Write prometheus-rules.yml and alertmanager.yml equivalent to the configured alerts."""
        import yaml

        from .rules import prometheus_rules

        out = Path(output_dir)
        out.mkdir(parents=True, exist_ok=True)
        rules_path, am_path = out / "prometheus-rules.yml", out / "alertmanager.yml"
        rules_path.write_text(
            yaml.safe_dump(prometheus_rules(self.engine.rules, self.interval_s), sort_keys=False)
        )
        am = alertmanager_config(self.dispatcher.route, self.notifiers, self.dispatcher.inhibit_rules)
        am_path.write_text(yaml.safe_dump(am, sort_keys=False))
        return {"rules": str(rules_path), "alertmanager": str(am_path)}


def _health(alerts: list[dict[str, Any]]) -> str:
    if any(a["severity"] == "critical" or a["alert"] == "system_down" for a in alerts):
        return "critical"
    return "degraded" if alerts else "healthy"


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "unknown"


def alert_history(store: Store, limit: int = 200, alert: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` rows of alert_events, newest first."""
    from sqlalchemy import select

    from ..store import tables as t

    stmt = select(t.alert_events).order_by(t.alert_events.c.id.desc()).limit(limit)
    if alert:
        stmt = stmt.where(t.alert_events.c.alert == alert)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d["labels"] = json.loads(d["labels"] or "{}")
        d["time"] = _iso(d["ts"])
        out.append(d)
    return out


def _latest_states(store: Store) -> list[dict[str, Any]]:
    """The last state of every (alert, labels) from alert_events (transitions only, not actions)."""
    from sqlalchemy import select

    from ..store import tables as t

    e = t.alert_events.c
    stmt = select(e.ts, e.alert, e.state, e.labels, e.value).where(e.action.is_(None)).order_by(e.id)
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    with store.engine.connect() as conn:
        for ts, alert, state, labels, value in conn.execute(stmt):
            key = (alert, labels)
            prev = latest.get(key)
            active_at = ts
            if state == "firing" and prev is not None and prev["state"] == "pending":
                active_at = prev["active_at"]
            latest[key] = {
                "ts": ts,
                "alert": alert,
                "state": state,
                "labels": json.loads(labels or "{}"),
                "value": value,
                "active_at": active_at,
            }
    return list(latest.values())


def active_alerts_from_store(store: Store) -> list[dict[str, Any]]:
    """Firing and pending alerts as the alert history says (what ``geo-infer-ops alerts`` shows)."""
    out = []
    for row in _latest_states(store):
        if row["state"] in ("firing", "pending"):
            out.append(
                {
                    "alert": row["alert"],
                    "state": row["state"],
                    "labels": row["labels"],
                    "value": row["value"],
                    "severity": row["labels"].get("severity", "warning"),
                    "since": _iso(row["active_at"]),
                    "fingerprint": fingerprint(row["labels"]),
                }
            )
    return sorted(out, key=lambda a: (a["state"] != "firing", a["severity"] != "critical", a["alert"]))


__all__ = ["SystemMonitor", "active_alerts_from_store", "alert_history"]
