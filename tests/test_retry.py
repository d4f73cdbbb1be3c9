"""Retry policy: delays per strategy, the cap, jitter bounds and which failures retry."""

from __future__ import annotations

import random

import pytest

from geo_infer_ops.orchestration.retry import RetryPolicy


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("exponential", [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]),
        ("linear", [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0]),
        ("fixed", [2.0] * 7),
    ],
)
def test_delays_without_jitter(strategy: str, expected: list[float]) -> None:
    policy = RetryPolicy(max_retries=10, backoff_strategy=strategy, base_delay=2.0, max_delay=60.0, jitter=0)
    assert [policy.delay(n) for n in range(1, 8)] == expected


def test_cap_at_max_delay_for_huge_attempt_numbers() -> None:
    policy = RetryPolicy(backoff_strategy="exponential", base_delay=1.0, max_delay=300.0, jitter=0)
    assert policy.delay(10_000) == 300.0
    linear = RetryPolicy(backoff_strategy="linear", base_delay=1.0, max_delay=5.0, jitter=0)
    assert linear.delay(10**9) == 5.0


def test_attempt_zero_or_negative_counts_as_first() -> None:
    policy = RetryPolicy(backoff_strategy="exponential", base_delay=3.0, jitter=0)
    assert policy.delay(0) == policy.delay(-4) == policy.delay(1) == 3.0


def test_zero_base_delay_means_no_wait() -> None:
    policy = RetryPolicy(base_delay=0.0, jitter=0.5)
    assert policy.delay(3, random.Random(1)) == 0.0


@pytest.mark.parametrize("strategy", ["exponential", "linear", "fixed"])
def test_jitter_bounds_with_seeded_random(strategy: str) -> None:
    policy = RetryPolicy(backoff_strategy=strategy, base_delay=10.0, max_delay=100.0, jitter=0.2)
    plain = RetryPolicy(backoff_strategy=strategy, base_delay=10.0, max_delay=100.0, jitter=0.0)
    rng = random.Random(42)
    for attempt in range(1, 8):
        center = plain.delay(attempt)
        samples = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(center * 0.8 - 1e-9 <= s <= center * 1.2 + 1e-9 for s in samples)
        # the spread is real: both sides of the centre are used
        assert min(samples) < center * 0.95 and max(samples) > center * 1.05


def test_same_seed_same_delays() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=0.5)
    first = [policy.delay(n, random.Random(7)) for n in range(1, 6)]
    second = [policy.delay(n, random.Random(7)) for n in range(1, 6)]
    assert first == second
    assert first != [policy.delay(n, random.Random(8)) for n in range(1, 6)]


def test_full_jitter_never_negative() -> None:
    policy = RetryPolicy(base_delay=1.0, jitter=1.0)
    rng = random.Random(3)
    assert all(policy.delay(1, rng) >= 0.0 for _ in range(500))


def test_should_retry_counts_attempts() -> None:
    policy = RetryPolicy(max_retries=3)
    # attempts 1..3 failed -> retry; the 4th is the last (1 run + 3 retries)
    assert [policy.should_retry(n, "ValueError") for n in range(1, 6)] == [True, True, True, False, False]
    assert RetryPolicy(max_retries=0).should_retry(1, None) is False


def test_non_retryable_errors() -> None:
    policy = RetryPolicy(max_retries=5, non_retryable_errors=("PermissionError", "KeyError"))
    assert policy.should_retry(1, "PermissionError") is False
    assert policy.should_retry(1, "KeyError") is False
    assert policy.should_retry(1, "TimeoutError") is True
    assert policy.should_retry(1, None) is True


def test_with_overrides_ignores_none() -> None:
    policy = RetryPolicy(max_retries=2, base_delay=1.0)
    changed = policy.with_overrides(max_retries=5, base_delay=None)
    assert changed.max_retries == 5 and changed.base_delay == 1.0
    assert policy.max_retries == 2
