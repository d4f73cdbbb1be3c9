"""Alert evaluation: 1,000 rules over 10,000 live series, time per evaluation cycle (target < 10 ms).

Two layouts:

* ``spread``: 1,000 metrics with 10 series each (label ``instance``), one rule per metric;
* ``dense``: 100 metrics with 100 series each, 10 rules per metric (every rule sees 100 series,
  so a cycle makes 100,000 comparisons).

For each: the rule engine alone (``RuleEngine.evaluate`` on the live-series dict), and a full
``SystemMonitor.evaluate()`` (MetricStore in SQLite, silences read, dispatcher, alert_events written),
in steady state (1 % of the series above threshold, already firing) and in the cycle where they fire.

    .venv/bin/python bench/monitoring_rules.py [--cycles 50]
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

from geo_infer_ops.clock import FakeClock
from geo_infer_ops.monitoring.monitor import SystemMonitor
from geo_infer_ops.monitoring.rules import RuleEngine, parse_alerts
from geo_infer_ops.settings import Settings


class NoCollector:
    def collect(self, *a: object) -> list:
        return []


def layout(kind: str) -> tuple[dict, dict]:
    rng = random.Random(7)
    rules: dict = {}
    series: dict = {}
    if kind == "spread":
        metrics, per_metric, rules_per_metric = 1000, 10, 1
    else:
        metrics, per_metric, rules_per_metric = 100, 100, 10
    for m in range(metrics):
        name = f"metric_{m:04d}"
        for r in range(rules_per_metric):
            rules[f"high_{name}_{r}"] = {
                "metric": name,
                "comparison": ">",
                "threshold": 90 + r,
                "action": "alert",
            }
        for i in range(per_metric):
            value = rng.uniform(0, 89) if rng.random() > 0.01 else 99.5
            series[(name, (("instance", f"i{i:03d}"),))] = (0.0, value)
    return rules, series


def timeit(fn, cycles: int) -> tuple[float, float, float]:
    times = []
    for _ in range(cycles):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], times[0]


def bench(kind: str, cycles: int) -> list[str]:
    rules, series = layout(kind)
    n_series, n_rules = len(series), len(rules)
    engine = RuleEngine(parse_alerts(rules))
    clock = [0.0]

    def engine_cycle() -> None:
        clock[0] += 15
        engine.evaluate(series, clock[0])

    t0 = time.perf_counter()
    first = engine.evaluate(series, 0.0)
    first_ms = (time.perf_counter() - t0) * 1000
    med, p95, _best = timeit(engine_cycle, cycles)
    lines = [
        f"| {kind} | rule engine | {n_rules} | {n_series} | {len(first)} | {first_ms:.2f} "
        f"| {med:.2f} | {p95:.2f} |"
    ]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp))
        fclock = FakeClock(1_800_000_000.0)
        monitor = SystemMonitor(
            settings=settings, clock=fclock, system_collector=NoCollector(), run_collector=NoCollector()
        )
        monitor.configure_alerts(rules)
        monitor.metrics.record_many((name, lk, fclock.time(), v) for (name, lk), (_, v) in series.items())
        monitor.metrics.flush()
        t0 = time.perf_counter()
        fired = monitor.evaluate()
        first_ms = (time.perf_counter() - t0) * 1000

        def monitor_cycle() -> None:
            fclock.advance(15)
            monitor.evaluate()

        med2, p952, _ = timeit(monitor_cycle, cycles)
        lines.append(
            f"| {kind} | SystemMonitor.evaluate() | {n_rules} | {n_series} | {len(fired)} | {first_ms:.2f} "
            f"| {med2:.2f} | {p952:.2f} |"
        )
        monitor.close()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=50)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the log notifier would print every alert
    print(
        "| layout | what | rules | series | firing | first cycle (ms) | steady median (ms) "
        "| steady p95 (ms) |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind in ("spread", "dense"):
        for line in bench(kind, args.cycles):
            print(line, flush=True)


if __name__ == "__main__":
    main()
