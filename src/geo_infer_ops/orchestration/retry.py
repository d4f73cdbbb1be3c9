"""Retry policy: how many times a failed step runs again, and how long it waits.

Delays follow the usual schedules (Airflow, Dagster, Temporal): ``fixed`` waits
``base_delay`` every time, ``linear`` waits ``base_delay * n`` and ``exponential``
waits ``base_delay * 2**(n-1)``; all are capped at ``max_delay`` and then spread by
``jitter`` (a fraction: 0.1 = +/-10%) so that many failed steps do not retry in
lock-step. The random source is injected so tests are exact.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

BackoffStrategy = Literal["exponential", "fixed", "linear"]


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 0
    backoff_strategy: BackoffStrategy = "exponential"
    base_delay: float = 1.0
    max_delay: float = 60.0
    jitter: float = 0.1
    non_retryable_errors: tuple[str, ...] = ()

    def should_retry(self, attempt: int, error_type: str | None) -> bool:
        """``attempt`` is the number of the attempt that just failed (1-based)."""
        if error_type and error_type in self.non_retryable_errors:
            return False
        return attempt <= self.max_retries

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before the retry that follows failed attempt number ``attempt``."""
        n = max(1, attempt)
        if self.backoff_strategy == "fixed":
            raw = self.base_delay
        elif self.backoff_strategy == "linear":
            raw = self.base_delay * n
        else:
            raw = self.base_delay * (2 ** min(n - 1, 62))
        capped = min(raw, self.max_delay)
        if self.jitter and capped > 0:
            spread = (rng or random).uniform(-self.jitter, self.jitter)
            capped = max(0.0, capped * (1.0 + spread))
        return capped

    def with_overrides(self, **changes: object) -> RetryPolicy:
        from dataclasses import replace

        return replace(self, **{k: v for k, v in changes.items() if v is not None})
