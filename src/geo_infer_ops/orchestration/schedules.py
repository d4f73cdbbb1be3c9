"""Schedules: cron expressions, ``hourly``-style aliases and ``every 15m`` intervals.

Only parsing and the next fire time live here; the scheduler loop that starts runs
uses :func:`next_fire_time`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

ALIASES = {
    "minutely": "* * * * *",
    "hourly": "0 * * * *",
    "daily": "0 0 * * *",
    "midnight": "0 0 * * *",
    "weekly": "0 0 * * 0",
    "monthly": "0 0 1 * *",
    "yearly": "0 0 1 1 *",
    "annually": "0 0 1 1 *",
}
_INTERVAL = re.compile(r"^every\s+(\d+(?:\.\d+)?)\s*(s|sec|seconds?|m|min|minutes?|h|hours?|d|days?)$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: either a cron expression or a fixed interval."""

    text: str
    cron: str | None = None
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        from croniter import croniter

        return croniter(self.cron, moment).get_next(datetime)


def parse_schedule(text: str) -> Schedule:
    """Parse a schedule or raise ``ValueError`` with a message that names the accepted forms."""
    raw = text.strip()
    key = raw.lower().lstrip("@")
    if key in ALIASES:
        return Schedule(raw, cron=ALIASES[key])
    match = _INTERVAL.match(raw)
    if match:
        amount = float(match.group(1))
        seconds = amount * _UNIT_SECONDS[match.group(2)[0].lower()]
        if seconds <= 0:
            raise ValueError("an interval schedule must be longer than zero")
        try:
            return Schedule(raw, interval=timedelta(seconds=seconds))
        except OverflowError:
            raise ValueError(f"{raw!r} is too long an interval; use at most 'every 999999999d'") from None
    from croniter import croniter

    if len(raw.split()) in (5, 6) and croniter.is_valid(raw):
        return Schedule(raw, cron=raw)
    raise ValueError(
        f"{raw!r} is not a schedule; use a cron expression ('*/15 * * * *'), an alias "
        f"({', '.join(sorted(ALIASES))}) or an interval ('every 15m')"
    )


def next_fire_time(text: str, after: datetime) -> datetime:
    return parse_schedule(text).next_after(after)
