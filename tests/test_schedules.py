"""Schedules: aliases, cron, intervals, and the next fire time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from geo_infer_ops.orchestration.schedules import ALIASES, next_fire_time, parse_schedule

T0 = datetime(2024, 3, 5, 10, 17, 30)  # a Tuesday


@pytest.mark.parametrize(
    ("text", "cron"),
    [
        ("hourly", "0 * * * *"),
        ("HOURLY", "0 * * * *"),
        ("@hourly", "0 * * * *"),
        ("  daily ", "0 0 * * *"),
        ("weekly", "0 0 * * 0"),
        ("monthly", "0 0 1 * *"),
        ("yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("minutely", "* * * * *"),
        ("midnight", "0 0 * * *"),
    ],
)
def test_aliases(text: str, cron: str) -> None:
    schedule = parse_schedule(text)
    assert schedule.cron == cron and schedule.interval is None


@pytest.mark.parametrize("text", ["*/15 * * * *", "0 6 * * 1-5", "30 2 1,15 * *", "0 0 * * * 30"])
def test_cron(text: str) -> None:
    schedule = parse_schedule(text)
    assert schedule.cron == text and schedule.interval is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("every 15m", 900),
        ("every 15 minutes", 900),
        ("every 1 minute", 60),
        ("every 30s", 30),
        ("every 10 sec", 10),
        ("every 2h", 7200),
        ("every 1.5 hours", 5400),
        ("every 1d", 86400),
        ("Every 3 Days", 3 * 86400),
    ],
)
def test_intervals(text: str, seconds: float) -> None:
    schedule = parse_schedule(text)
    assert schedule.cron is None
    assert schedule.interval == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sometimes",
        "every",
        "every 15",
        "every 15 fortnights",
        "every -5m",
        "every 0m",
        "61 * * * *",
        "* * *",
        "* * * * * * *",
        "0 25 * * *",
        "hourly please",
        "every 99999999999999999999 d",
    ],
)
def test_invalid_schedules_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_schedule(text)
    message = str(info.value)
    if "zero" not in message and "too long" not in message:
        assert "cron" in message and "every 15m" in message
        for alias in ALIASES:
            assert alias in message


def test_next_fire_times() -> None:
    assert next_fire_time("hourly", T0) == datetime(2024, 3, 5, 11, 0)
    assert next_fire_time("daily", T0) == datetime(2024, 3, 6, 0, 0)
    assert next_fire_time("*/15 * * * *", T0) == datetime(2024, 3, 5, 10, 30)
    assert next_fire_time("weekly", T0) == datetime(2024, 3, 10, 0, 0)  # the next Sunday
    assert next_fire_time("monthly", T0) == datetime(2024, 4, 1, 0, 0)
    assert next_fire_time("0 6 * * 1-5", datetime(2024, 3, 8, 7, 0)) == datetime(2024, 3, 11, 6, 0)
    assert next_fire_time("every 15m", T0) == T0 + timedelta(minutes=15)


def test_next_fire_time_is_strictly_after() -> None:
    on_the_hour = datetime(2024, 3, 5, 11, 0)
    assert next_fire_time("hourly", on_the_hour) == datetime(2024, 3, 5, 12, 0)


def test_fire_times_chain() -> None:
    schedule = parse_schedule("*/20 * * * *")
    moment, fired = T0, []
    for _ in range(4):
        moment = schedule.next_after(moment)
        fired.append(moment.strftime("%H:%M"))
    assert fired == ["10:20", "10:40", "11:00", "11:20"]
