"""Alertmanager semantics, fake clock: group_wait, dedup, repeat, resolved, silences, inhibition."""

from __future__ import annotations

import pytest

from geo_infer_ops.clock import FakeClock
from geo_infer_ops.errors import ConfigError
from geo_infer_ops.monitoring.alerting import Dispatcher, Route, Silence, alertmanager_config, parse_matchers
from geo_infer_ops.monitoring.rules import RuleEngine, parse_alerts


class Pipeline:
    def __init__(self, rules: dict, **route: object) -> None:
        self.clock = FakeClock(0.0)
        self.engine = RuleEngine(parse_alerts(rules))
        self.dispatcher = Dispatcher(Route.from_config(route))
        self.data: dict = {}

    def set(self, name: str, value: float, **labels: str) -> None:
        self.data[(name, tuple(sorted(labels.items())))] = (self.clock.time(), value)

    def drop(self, name: str, **labels: str) -> None:
        self.data.pop((name, tuple(sorted(labels.items()))), None)

    def step(self, seconds: float = 0.0) -> list:
        self.clock.advance(seconds)
        now = self.clock.time()
        self.dispatcher.update(self.engine.evaluate(self.data, now), now)
        return self.dispatcher.flush(now)


def test_group_wait_then_dedup_then_repeat_interval_then_resolved() -> None:
    p = Pipeline(
        {"high_cpu_usage": {"threshold": 80}}, group_wait="30s", group_interval="5m", repeat_interval="1h"
    )
    p.set("cpu_usage", 90)
    assert p.step() == []  # waiting group_wait
    [n] = p.step(30)
    assert (n.status, [a.labels["alertname"] for a in n.alerts]) == ("firing", ["high_cpu_usage"])
    for _ in range(11):  # unchanged and still firing: nothing until repeat_interval
        assert p.step(300) == []
    [n] = p.step(300)  # 3600 s after the first notification
    assert n.status == "firing"
    p.set("cpu_usage", 10)
    [n] = p.step(300)
    assert n.status == "resolved" and n.alerts[0].ends_at is not None
    assert p.dispatcher.groups == {}
    assert p.step(300) == []


def test_alerts_that_fire_together_are_grouped() -> None:
    p = Pipeline(
        {"high_error_rate": {"threshold": 5}},
        group_by=["alertname"],
        group_wait="10s",
        group_interval="1m",
    )
    p.set("error_rate", 9, module="SPACE")
    p.step()
    p.set("error_rate", 7, module="AI")
    p.step(5)
    [n] = p.step(5)
    assert sorted(a.labels["module"] for a in n.alerts) == ["AI", "SPACE"]
    assert n.common_labels()["alertname"] == "high_error_rate"
    p.set("error_rate", 8, module="TIME")  # joins the existing group: sent at the next group_interval
    assert p.step(30) == []
    [n] = p.step(30)
    assert len(n.firing) == 3


def test_group_by_module_sends_separate_notifications() -> None:
    p = Pipeline({"high_error_rate": {"threshold": 5}}, group_by=["module"], group_wait=0)
    p.set("error_rate", 9, module="SPACE")
    p.set("error_rate", 7, module="AI")
    out = p.step()
    assert sorted(n.group_labels["module"] for n in out) == ["AI", "SPACE"]


def test_alert_resolved_before_group_wait_sends_nothing() -> None:
    p = Pipeline({"high_cpu_usage": {"threshold": 80}}, group_wait="30s")
    p.set("cpu_usage", 90)
    p.step()
    p.set("cpu_usage", 10)
    assert p.step(10) == []
    assert p.step(30) == []


def test_silence_mutes_until_it_expires() -> None:
    p = Pipeline({"high_cpu_usage": {"threshold": 80}}, group_wait=0, group_interval="1m")
    p.dispatcher.add_silence(Silence.new(["alertname=high_cpu_usage"], "10m", "maintenance", "ops", 0.0))
    p.set("cpu_usage", 90)
    assert p.step() == []
    assert p.dispatcher.suppressed_by({"alertname": "high_cpu_usage"}, 0.0).startswith("silenced")
    for _ in range(9):
        assert p.step(60) == []
    [n] = p.step(60)  # 600 s: the silence has ended
    assert n.status == "firing"


def test_silence_matchers_regex_and_negative() -> None:
    s = Silence.new({"module": "SPACE"}, 60, "", "", 0.0)
    assert s.matches({"module": "SPACE", "alertname": "x"}) and not s.matches({"module": "AI"})
    [m] = parse_matchers(["module=~SP.*"])
    assert m.matches({"module": "SPACE"})
    [m] = parse_matchers("module!=AI")
    assert m.matches({"module": "SPACE"}) and not m.matches({"module": "AI"})
    with pytest.raises(ConfigError):
        parse_matchers(["no matcher here", "a=~("])
    with pytest.raises(ConfigError):
        Silence.new({"a": "b"}, "0s", "", "", 0.0)


def test_system_down_inhibits_the_rest() -> None:
    p = Pipeline(
        {
            "system_down": {"metric": "up", "comparison": "<", "threshold": 1},
            "high_cpu_usage": {"threshold": 80},
        },
        group_by=["alertname"],
        group_wait=0,
        group_interval="1m",
    )
    p.set("up", 0)
    p.set("cpu_usage", 95)
    out = p.step()
    assert [n.group_labels["alertname"] for n in out] == ["system_down"]
    assert out[0].alerts[0].labels["severity"] == "critical"
    p.set("up", 1)  # the system is back: cpu alert is no longer inhibited
    out = p.step(60)
    assert sorted((n.group_labels["alertname"], n.status) for n in out) == [
        ("high_cpu_usage", "firing"),
        ("system_down", "resolved"),
    ]


def test_alertmanager_config_structure() -> None:
    cfg = alertmanager_config(Route(), {})
    assert set(cfg) == {"global", "route", "receivers", "inhibit_rules"}
    assert cfg["route"]["group_wait"] == "30s" and cfg["route"]["repeat_interval"] == "4h"
    assert cfg["inhibit_rules"][0]["source_matchers"] == ["alertname=system_down"]
    with pytest.raises(ConfigError):
        Route.from_config({"group_wait": "soon", "group_by": "alertname", "bogus": 1})
