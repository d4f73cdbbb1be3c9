"""Alert rules: parsing the spec's formats, the direction table, and the per-series state machine.

A :class:`Rule` compares the latest value of every series of one metric with a
threshold. Each (rule, label set) pair has its own small state machine, as in
Prometheus::

    inactive --cond--> pending --cond held for `for`--> firing --cond false and
    `keep_firing_for` elapsed--> resolved (--> inactive)

A rule without ``for`` fires on the first evaluation whose condition holds; a
pending alert whose condition clears goes back to inactive. A series that
disappears counts as "condition false". :meth:`RuleEngine.evaluate` is one cycle:
it takes the live series (``{(name, label_key): (ts, value)}``, held in memory)
and returns the transitions, so 1,000 rules over 10,000 series cost a few
milliseconds: the series are grouped by metric once per cycle, and a series whose
condition is false and that has no state costs one comparison.

Rule formats accepted (see docs/monitoring.md):

* ``configure_alerts``: ``{alert_name: {threshold, action, ...}}``; the metric is the
  name without a ``high_``/``low_`` prefix and the prefix sets the direction, unless
  ``metric`` / ``comparison`` are given (``low_memory`` -> ``free_memory < x``).
* ``configure_monitoring``: ``{'system_metrics': {metric: {...}}, 'module_metrics':
  {MODULE: {metric: {...}}}, 'business_metrics': {metric: {...}}}``; the direction is
  ``comparison`` when given, otherwise taken from :func:`default_comparison`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, Problem

LabelKey = tuple[tuple[str, str], ...]

#: Metrics whose *low* values are bad: a rule over a metric whose name contains one of these
#: words alerts when the value falls below the threshold. Every other metric alerts when above.
LOW_IS_BAD = (
    "accuracy",
    "uptime",
    "satisfaction",
    "quality",
    "free",
    "availability",
    "success_rate",
    "hit_rate",
    "precision",
    "recall",
    "f1",
    "score",
)

#: Short alert names and the metric they mean (``high_cpu`` is ``cpu_usage > x``).
ALIASES: dict[tuple[str, str], str] = {
    ("low", "memory"): "free_memory",
    ("high", "memory"): "memory_usage",
    ("high", "cpu"): "cpu_usage",
    ("high", "disk"): "disk_usage",
    ("high", "latency"): "network_latency",
    ("low", "disk"): "free_disk",
    ("low", "uptime"): "system_uptime",
}

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_COMPARISON_WORDS = {"above": ">", "gt": ">", "below": "<", "lt": "<", "ge": ">=", "le": "<=", "eq": "=="}

RULE_KEYS = {
    "threshold",
    "action",
    "metric",
    "comparison",
    "for",
    "keep_firing_for",
    "labels",
    "severity",
    "cooldown",
    "workflow",
    "annotations",
    "summary",
    "description",
    "matchers",
    "parameters",
    "retention_days",
    "replicas",
}


def default_comparison(metric: str) -> str:
    """``'<'`` for metrics where low is bad (accuracy, uptime, satisfaction, quality, free memory...)."""
    lowered = metric.lower()
    return "<" if any(word in lowered for word in LOW_IS_BAD) else ">"


def label_key(labels: Mapping[str, str] | None) -> LabelKey:
    return tuple(sorted((str(k), str(v)) for k, v in labels.items())) if labels else ()


def fingerprint(labels: Mapping[str, str]) -> str:
    text = json.dumps(dict(sorted(labels.items())), separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def parse_duration(value: Any, path: str, problems: list[Problem]) -> float:
    """Seconds from a number or a string such as ``'90s'``, ``'5m'``, ``'2h'``, ``'1d'``."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        problems.append(Problem(path, f"{value!r} is not a duration", "give seconds or a string like '5m'"))
        return 0.0
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
        seconds = math.nan
        for suffix in sorted(units, key=len, reverse=True):
            if text.endswith(suffix):
                with contextlib.suppress(ValueError):
                    seconds = float(text[: -len(suffix)]) * units[suffix]
                break
        else:
            with contextlib.suppress(ValueError):
                seconds = float(text)
    if math.isnan(seconds) or seconds < 0 or math.isinf(seconds):
        problems.append(
            Problem(
                path, f"{value!r} is not a duration", "give seconds (>= 0) or a string like '30s', '5m', '2h'"
            )
        )
        return 0.0
    return seconds


def format_duration(seconds: float) -> str:
    """Prometheus duration text (``90s``, ``5m``, ``2h``)."""
    s = float(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size and s % size == 0:
            return f"{int(s // size)}{unit}"
    return f"{int(s)}s" if s == int(s) else f"{int(s * 1000)}ms"


@dataclass(frozen=True)
class Rule:
    """One alerting rule: ``metric comparison threshold`` held for ``for_s`` seconds."""

    name: str
    metric: str
    comparison: str
    threshold: float
    action: str = "alert"
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    labels: tuple[tuple[str, str], ...] = ()
    matchers: tuple[tuple[str, str], ...] = ()
    severity: str = "warning"
    cooldown_s: float = 300.0
    workflow: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    group: str = "alerts"
    parameters: tuple[tuple[str, Any], ...] = ()

    @property
    def id(self) -> str:
        """Unique among the configured rules: group, matchers and alert name."""
        scope = ",".join(f"{k}={v}" for k, v in self.matchers)
        return f"{self.group}/{scope}/{self.name}" if scope else f"{self.group}/{self.name}"

    @property
    def test(self) -> Callable[[float, float], bool]:
        return COMPARISONS[self.comparison]

    @property
    def expr(self) -> str:
        """The PromQL expression equivalent to this rule (metric names prefixed ``geo_infer_ops_``)."""
        sel = ",".join(f'{k}="{v}"' for k, v in self.matchers)
        series = f"geo_infer_ops_{self.metric}" + (f"{{{sel}}}" if sel else "")
        return f"{series} {self.comparison} {_num(self.threshold)}"

    def summary(self) -> str:
        ann = dict(self.annotations)
        if "summary" in ann:
            return ann["summary"]
        word = "below" if self.comparison in ("<", "<=") else "above"
        return f"{self.metric} {word} {_num(self.threshold)}"

    def to_config(self) -> dict[str, Any]:
        """The rule as a ``configure_alerts`` entry (what monitoring.json stores)."""
        out: dict[str, Any] = {
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "action": self.action,
            "for": self.for_s,
            "keep_firing_for": self.keep_firing_for_s,
            "labels": dict(self.labels),
            "matchers": dict(self.matchers),
            "severity": self.severity,
            "cooldown": self.cooldown_s,
            "group": self.group,
        }
        if self.workflow:
            out["workflow"] = self.workflow
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.parameters:
            out["parameters"] = dict(self.parameters)
        return out

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.parameters).get(key, default)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _metric_from_alert_name(name: str) -> tuple[str, str | None]:
    """``high_cpu_usage`` -> (``cpu_usage``, ``'>'``); ``low_memory`` -> (``free_memory``, ``'<'``)."""
    for prefix, comparison in (("high_", ">"), ("low_", "<")):
        if name.startswith(prefix) and len(name) > len(prefix):
            rest = name[len(prefix) :]
            return ALIASES.get((prefix[:-1], rest), rest), comparison
    return name, None


def build_rule(
    name: str,
    spec: Any,
    path: str,
    problems: list[Problem],
    *,
    group: str,
    metric: str | None = None,
    matchers: Mapping[str, str] | None = None,
    known_actions: Iterable[str] | None = None,
) -> Rule | None:
    """Validate one rule dict; append every problem found to ``problems``."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"threshold": spec}
    if not isinstance(spec, Mapping):
        problems.append(
            Problem(path, f"expected a dict like {{'threshold': 80, 'action': 'alert'}}, got {spec!r}", "")
        )
        return None
    before = len(problems)
    for key in spec:
        if key not in RULE_KEYS:
            problems.append(
                Problem(f"{path}.{key}", "unknown key", f"allowed keys: {', '.join(sorted(RULE_KEYS))}")
            )
    if "threshold" not in spec:
        problems.append(Problem(f"{path}.threshold", "missing", "add a number, e.g. 'threshold': 80"))
        threshold = 0.0
    else:
        raw = spec["threshold"]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(float(raw)):
            problems.append(Problem(f"{path}.threshold", f"{raw!r} is not a finite number", "give a number"))
            threshold = 0.0
        else:
            threshold = float(raw)
    implied: str | None = None
    if metric is None:
        metric, implied = _metric_from_alert_name(name)
    if spec.get("metric") is not None:
        if not isinstance(spec["metric"], str) or not spec["metric"]:
            problems.append(Problem(f"{path}.metric", "must be a metric name", "e.g. 'cpu_usage'"))
        else:
            metric = spec["metric"]
    comparison = spec.get("comparison")
    if comparison is not None:
        comparison = _COMPARISON_WORDS.get(str(comparison).lower(), str(comparison))
        if comparison not in COMPARISONS:
            problems.append(
                Problem(
                    f"{path}.comparison",
                    f"unknown comparison {spec['comparison']!r}",
                    "use one of > >= < <= == !=",
                )
            )
            comparison = ">"
    else:
        comparison = implied or default_comparison(metric)
    action = spec.get("action", "alert")
    if not isinstance(action, str) or (known_actions is not None and action not in set(known_actions)):
        allowed = ", ".join(sorted(known_actions or []))
        problems.append(Problem(f"{path}.action", f"unknown action {action!r}", f"use one of: {allowed}"))
    for_s = parse_duration(spec.get("for"), f"{path}.for", problems)
    keep = parse_duration(spec.get("keep_firing_for"), f"{path}.keep_firing_for", problems)
    cooldown = parse_duration(spec.get("cooldown", 300), f"{path}.cooldown", problems)
    labels = _str_map(spec.get("labels"), f"{path}.labels", problems)
    extra_matchers = _str_map(spec.get("matchers"), f"{path}.matchers", problems)
    annotations = _str_map(spec.get("annotations"), f"{path}.annotations", problems)
    for key in ("summary", "description"):
        if spec.get(key):
            annotations[key] = str(spec[key])
    severity = (
        spec.get("severity") or labels.get("severity") or ("critical" if name == "system_down" else "warning")
    )
    if severity not in ("info", "warning", "critical"):
        problems.append(
            Problem(f"{path}.severity", f"unknown severity {severity!r}", "use info, warning or critical")
        )
    labels.pop("severity", None)
    workflow = spec.get("workflow")
    if workflow is not None and not isinstance(workflow, str):
        problems.append(Problem(f"{path}.workflow", "must be a workflow name or file path", ""))
    params = dict(spec.get("parameters") or {})
    for key in ("retention_days", "replicas"):
        if key in spec:
            params[key] = spec[key]
    if len(problems) > before:
        return None
    return Rule(
        name=name,
        metric=metric,
        comparison=comparison,
        threshold=threshold,
        action=action,
        for_s=for_s,
        keep_firing_for_s=keep,
        labels=tuple(sorted(labels.items())),
        matchers=tuple(sorted({**(matchers or {}), **extra_matchers}.items())),
        severity=severity,
        cooldown_s=cooldown,
        workflow=workflow,
        annotations=tuple(sorted(annotations.items())),
        group=str(spec.get("group", group)),
        parameters=tuple(sorted(params.items())),
    )


def _str_map(value: Any, path: str, problems: list[Problem]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(Problem(path, "must be a dict of strings", "e.g. {'team': 'geo'}"))
        return {}
    return {str(k): str(v) for k, v in value.items()}


def parse_alerts(
    config: Any, known_actions: Iterable[str] | None = None, source: str = "configure_alerts"
) -> list[Rule]:
    """``{alert_name: {threshold, action, ...}}`` -> rules; one ConfigError lists every problem."""
    problems: list[Problem] = []
    rules: list[Rule] = []
    if not isinstance(config, Mapping):
        raise ConfigError([Problem("<root>", "expected a dict of alert name -> rule", "")], source)
    for name, spec in config.items():
        group = "alerts"
        if isinstance(spec, Mapping) and "group" in spec:
            group = str(spec["group"])
        matchers = dict(spec.get("matchers") or {}) if isinstance(spec, Mapping) else {}
        rule = build_rule(
            str(name),
            {k: v for k, v in spec.items() if k not in ("group", "matchers")}
            if isinstance(spec, Mapping)
            else spec,
            str(name),
            problems,
            group=group,
            matchers=matchers,
            known_actions=known_actions,
        )
        if rule is not None:
            rules.append(rule)
    if problems:
        raise ConfigError(problems, source)
    return rules


def _alert_name(metric: str, comparison: str) -> str:
    return f"{'low' if comparison in ('<', '<=') else 'high'}_{metric}"


def _metric_rules(
    metrics: Any,
    path: str,
    group: str,
    problems: list[Problem],
    known_actions: Iterable[str] | None,
    matchers: Mapping[str, str] | None = None,
) -> list[Rule]:
    out: list[Rule] = []
    if not isinstance(metrics, Mapping):
        problems.append(Problem(path, "expected a dict of metric -> {'threshold': x, 'action': a}", ""))
        return out
    for metric, spec in metrics.items():
        probe: list[Problem] = []
        rule = build_rule(
            "_",
            spec,
            f"{path}.{metric}",
            probe,
            group=group,
            metric=str(metric),
            matchers=matchers,
            known_actions=known_actions,
        )
        problems.extend(probe)
        if rule is not None:
            name = _alert_name(rule.metric, rule.comparison)
            severity = rule.severity
            out.append(
                Rule(**{**rule.__dict__, "name": name, "severity": severity})  # type: ignore[arg-type]
            )
    return out


MONITORING_GROUPS = ("system_metrics", "module_metrics", "business_metrics", "data_metrics", "custom_metrics")


def parse_monitoring(
    config: Any, known_actions: Iterable[str] | None = None, source: str = "configure_monitoring"
) -> list[Rule]:
    """The spec's ``configure_monitoring`` dict: system / module / business metrics."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            [Problem("<root>", "expected a dict", f"keys: {', '.join(MONITORING_GROUPS)}")], source
        )
    problems: list[Problem] = []
    rules: list[Rule] = []
    for key, value in config.items():
        if key not in MONITORING_GROUPS:
            problems.append(Problem(key, "unknown group", f"use {', '.join(MONITORING_GROUPS)}"))
            continue
        group = key.removesuffix("_metrics")
        if key == "module_metrics":
            if not isinstance(value, Mapping):
                problems.append(Problem(key, "expected {MODULE: {metric: rule}}", "e.g. {'SPACE': {...}}"))
                continue
            for module, metrics in value.items():
                rules += _metric_rules(
                    metrics, f"{key}.{module}", group, problems, known_actions, {"module": str(module)}
                )
        else:
            rules += _metric_rules(value, key, group, problems, known_actions)
    if problems:
        raise ConfigError(problems, source)
    return rules


def parse_data_operations(config: Any, known_actions: Iterable[str] | None = None) -> list[Rule]:
    """``monitor_data_operations``: ``{data_metric: {threshold, action}}`` (group ``data``)."""
    problems: list[Problem] = []
    rules = _metric_rules(config, "<root>", "data", problems, known_actions)
    if problems:
        raise ConfigError(problems, "monitor_data_operations")
    return rules


# -- the state machine ---------------------------------------------------------------------------


@dataclass
class AlertState:
    """The state of one (rule, label set)."""

    rule: Rule
    labels: dict[str, str]
    state: str = "inactive"
    active_at: float = 0.0  # when the condition first held (pending since)
    fired_at: float = 0.0
    last_true: float = 0.0
    value: float | None = None
    resolved_at: float = 0.0
    _fp: str = field(default="", repr=False)

    @property
    def fingerprint(self) -> str:
        if not self._fp:
            self._fp = fingerprint(self.labels)
        return self._fp


@dataclass(frozen=True)
class Transition:
    """One change of state of one alert (what ``evaluate()`` returns and alert_events stores)."""

    alert: str
    state: str  # pending | firing | resolved | inactive
    previous: str
    labels: dict[str, str]
    value: float | None
    ts: float
    rule: Rule = field(repr=False, compare=False)
    active_at: float = 0.0
    fp: str = field(default="", repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        return self.fp or fingerprint(self.labels)

    def message(self) -> str:
        where = ", ".join(
            f"{k}={v}" for k, v in sorted(self.labels.items()) if k not in ("alertname", "severity")
        )
        value = "" if self.value is None else f" (value {self.value:g})"
        text = f"{self.alert} {self.state}: {self.rule.summary()}{value}"
        return f"{text} [{where}]" if where else text


def _hits(points: list, comparison: str, thr: float) -> list:
    """The (label_key, value) pairs whose value satisfies the comparison (one comprehension, no calls)."""
    if comparison == ">":
        return [(lk, tv[1]) for lk, tv in points if tv[1] > thr]
    if comparison == "<":
        return [(lk, tv[1]) for lk, tv in points if tv[1] < thr]
    if comparison == ">=":
        return [(lk, tv[1]) for lk, tv in points if tv[1] >= thr]
    if comparison == "<=":
        return [(lk, tv[1]) for lk, tv in points if tv[1] <= thr]
    if comparison == "==":
        return [(lk, tv[1]) for lk, tv in points if tv[1] == thr]
    return [(lk, tv[1]) for lk, tv in points if tv[1] != thr and tv[1] == tv[1]]


class RuleEngine:
    """Holds the rules and the state of every (rule, label set); :meth:`evaluate` is one cycle.

    State: ``_rules`` (id -> Rule), ``_by_metric`` (metric -> the rules over it, with what the hot
    loop needs precomputed), ``_active`` (rule id -> {label_key: AlertState}) holding only pending
    and firing alerts. A cycle does, per rule, one comprehension over the metric's series to find
    the ones meeting the condition, then touches only those and the rule's active alerts.
    """

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self._rules: dict[str, Rule] = {}
        self._active: dict[str, dict[LabelKey, AlertState]] = {}
        self._labels_cache: dict[LabelKey, dict[str, str]] = {}
        self.set_rules(rules)

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    @property
    def states(self) -> dict[tuple[str, LabelKey], AlertState]:
        return {(rid, lk): st for rid, d in self._active.items() for lk, st in d.items()}

    def set_rules(self, rules: Iterable[Rule]) -> None:
        self._rules = {}
        self.add_rules(rules)

    def add_rules(self, rules: Iterable[Rule]) -> None:
        """Add or replace (same :attr:`Rule.id`) rules; alerts of a replaced rule keep their state."""
        for rule in rules:
            self._rules[rule.id] = rule
            for st in self._active.get(rule.id, {}).values():
                st.rule = rule
        self._index()

    def remove_rules(self, ids: Iterable[str]) -> None:
        for rid in ids:
            self._rules.pop(rid, None)
        self._index()

    def _index(self) -> None:
        by_metric: dict[str, list[tuple[Rule, str, str, float, tuple[tuple[str, str], ...], bool]]] = {}
        for rid, rule in self._rules.items():
            skip_quantiles = not any(k == "quantile" for k, _ in rule.matchers)
            by_metric.setdefault(rule.metric, []).append(
                (rule, rid, rule.comparison, rule.threshold, rule.matchers, skip_quantiles)
            )
        self._by_metric = by_metric

    def _labels(self, lk: LabelKey) -> dict[str, str]:
        d = self._labels_cache.get(lk)
        if d is None:
            if len(self._labels_cache) > 200_000:
                self._labels_cache.clear()
            d = self._labels_cache[lk] = dict(lk)
        return d

    def evaluate(
        self, series: Mapping[tuple[str, LabelKey], tuple[float, float]], now: float
    ) -> list[Transition]:
        """One cycle over the live series ``{(name, label_key): (ts, value)}``; returns the transitions."""
        grouped: dict[str, dict[LabelKey, tuple[float, float]]] = {}
        wanted = self._by_metric
        for (name, lk), tv in series.items():
            if name in wanted:
                bucket = grouped.get(name)
                if bucket is None:
                    bucket = grouped[name] = {}
                bucket[lk] = tv
        return self.evaluate_grouped(grouped, now)

    def evaluate_grouped(
        self, by_name: Mapping[str, Mapping[LabelKey, tuple[float, float]]], now: float
    ) -> list[Transition]:
        """Like :meth:`evaluate`, with the series grouped by metric name (``{name: {lk: (ts, v)}}``)."""
        out: list[Transition] = []
        active_all = self._active
        for metric, entries in self._by_metric.items():
            data = by_name.get(metric)
            points = list(data.items()) if data else []
            for rule, rid, comparison, thr, matchers, skip_quantiles in entries:
                active = active_all.get(rid)
                hits = _hits(points, comparison, thr) if points else []
                if not hits and not active:
                    continue
                seen: set[LabelKey] = set()
                for lk, value in hits:
                    labels = self._labels(lk)
                    if matchers and any(labels.get(k) != v for k, v in matchers):
                        continue
                    if skip_quantiles and "quantile" in labels:
                        continue
                    st = active.get(lk) if active else None
                    if st is None:
                        alert_labels = {**labels, **dict(rule.labels), "alertname": rule.name}
                        alert_labels["severity"] = rule.severity
                        st = AlertState(rule, alert_labels)
                        if active is None:
                            active = active_all[rid] = {}
                        active[lk] = st
                    st.value = value
                    seen.add(lk)
                    self._true(st, now, out)
                if active:
                    for lk in [lk for lk in active if lk not in seen]:
                        st = active[lk]
                        tv = data.get(lk) if data else None
                        if tv is not None:
                            st.value = tv[1]
                        self._false(st, now, out)
                        if st.state == "inactive":
                            del active[lk]
                    if not active:
                        del active_all[rid]
        for rid in [rid for rid in active_all if rid not in self._rules]:  # rules removed
            for st in active_all.pop(rid).values():
                self._false(st, now, out, force=True)
        return out

    @staticmethod
    def _emit(st: AlertState, new: str, now: float, out: list[Transition]) -> None:
        out.append(
            Transition(
                st.rule.name,
                new,
                st.state,
                dict(st.labels),
                st.value,
                now,
                st.rule,
                st.active_at,
                st.fingerprint,
            )
        )
        st.state = new

    def _true(self, st: AlertState, now: float, out: list[Transition]) -> None:
        st.last_true = now
        if st.state in ("inactive", "resolved"):
            st.active_at = now
            if st.rule.for_s <= 0:
                st.fired_at = now
                self._emit(st, "firing", now, out)
            else:
                self._emit(st, "pending", now, out)
        elif st.state == "pending" and now - st.active_at >= st.rule.for_s:
            st.fired_at = now
            self._emit(st, "firing", now, out)

    def _false(self, st: AlertState, now: float, out: list[Transition], force: bool = False) -> None:
        if st.state == "pending":
            self._emit(st, "inactive", now, out)
        elif st.state == "firing":
            keep = st.rule.keep_firing_for_s
            if not force and keep > 0 and now - st.last_true < keep:
                return
            st.resolved_at = now
            self._emit(st, "resolved", now, out)
            st.state = "inactive"

    def active(self) -> list[AlertState]:
        return [st for d in self._active.values() for st in d.values()]

    def restore(self, key: tuple[str, LabelKey], state: AlertState) -> None:
        """Put back an alert's state (from alert_events) after a restart, as Prometheus does."""
        self._active.setdefault(key[0], {})[key[1]] = state


def prometheus_rules(rules: Iterable[Rule], interval_s: float = 15.0) -> dict[str, Any]:
    """A Prometheus rule file (``groups: [{name, interval, rules: [{alert, expr, for, ...}]}]``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rules:
        entry: dict[str, Any] = {"alert": r.name, "expr": r.expr}
        if r.for_s:
            entry["for"] = format_duration(r.for_s)
        if r.keep_firing_for_s:
            entry["keep_firing_for"] = format_duration(r.keep_firing_for_s)
        entry["labels"] = {"severity": r.severity, **dict(r.labels), "action": r.action}
        ann = {"summary": r.summary(), **dict(r.annotations)}
        ann.setdefault(
            "description",
            f"{{{{ $labels.alertname }}}}: {r.metric} is {{{{ $value }}}} "
            f"({r.comparison} {_num(r.threshold)}); action {r.action}"
            + (f", workflow {r.workflow}" if r.workflow else ""),
        )
        entry["annotations"] = ann
        groups.setdefault(r.group, []).append(entry)
    return {
        "groups": [
            {"name": f"geo-infer-ops-{name}", "interval": format_duration(interval_s), "rules": entries}
            for name, entries in groups.items()
        ]
    }
