"""Time, injected: the engine and the monitor read the clock and wait through it.

:class:`FakeClock` lets tests run retries with 30-second backoffs, schedules and
alert ``for`` durations in milliseconds: whenever the engine would wait for time
to pass with nothing arriving, the fake clock simply jumps forward.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any


class Clock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def get(self, q: queue.SimpleQueue[Any], timeout: float | None) -> Any | None:
        """Take the next item of ``q``, waiting at most ``timeout`` seconds (None: forever)."""
        try:
            if timeout is None:
                return q.get()
            return q.get(timeout=max(timeout, 0.0)) if timeout > 0 else q.get_nowait()
        except queue.Empty:
            return None

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FakeClock(Clock):
    """A clock that only moves when told to, or when a caller would otherwise wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        return self.time()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds

    def get(self, q: queue.SimpleQueue[Any], timeout: float | None) -> Any | None:
        if timeout is None:
            return q.get()
        try:
            return q.get(timeout=0.002)
        except queue.Empty:
            self.advance(max(timeout, 0.0))
            return None

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
