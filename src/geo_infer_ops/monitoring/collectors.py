"""Collectors: where samples come from.

- :class:`SystemCollector` reads the machine with psutil, and measures network latency as the time a
  TCP connect to each target takes (a target that refuses or times out gives no sample and a warning).
- :class:`RunHistoryCollector` derives module, step and data metrics from the run tables of the
  store (``attempts``, ``step_runs``, ``runs``, ``step_metrics``), over a sliding window.

Both return ``[(name, labels, value), ...]``; the monitor records them in the :class:`MetricStore`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import time
from collections.abc import Sequence
from typing import Any

import psutil
from sqlalchemy import and_, select

from ..clock import Clock
from ..store import Store
from ..store import tables as t

log = logging.getLogger(__name__)

Sample = tuple[str, dict[str, str], float]

DEFAULT_LATENCY_TARGETS: tuple[str, ...] = ("127.0.0.1:5432",)
"""Loopback PostgreSQL: present on the machines this runs on; configure your own targets."""


def parse_target(target: str) -> tuple[str, int]:
    """``'host:port'`` or ``'[v6]:port'`` -> ``(host, port)``."""
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"latency target {target!r} must be 'host:port', e.g. '127.0.0.1:5432'")
    return host.strip("[]"), int(port)


def tcp_connect_ms(host: str, port: int, timeout: float = 1.0) -> float:
    """Milliseconds a TCP connect to ``host:port`` takes (raises ``OSError`` when it fails)."""
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=timeout):
        return (time.perf_counter() - start) * 1000.0


_MIN_CPU_WINDOW_S = 0.25


class SystemCollector:
    """CPU, memory, disk and network of this machine (psutil), plus TCP-connect latency to targets.

    Samples: ``cpu_usage``, ``memory_usage``, ``disk_usage``, ``swap_usage`` (percent), ``free_memory``
    (percent of memory available: what ``low_memory`` compares), ``load_average`` (1 minute),
    ``process_count``, ``network_bytes_sent`` / ``network_bytes_recv`` (counters: use ``rate``),
    and ``network_latency`` (ms, label ``target``) per reachable target.
    """

    def __init__(
        self,
        latency_targets: Sequence[str] = DEFAULT_LATENCY_TARGETS,
        disk_path: str = "/",
        *,
        timeout_s: float = 1.0,
    ) -> None:
        self.targets = [(target, *parse_target(target)) for target in latency_targets]
        self.disk_path = disk_path
        self.timeout_s = timeout_s
        self._failing: set[str] = set()
        psutil.cpu_percent(interval=None)  # the first reading is meaningless: prime it
        self._cpu_read_at = time.monotonic()

    def _cpu_usage(self) -> float:
        """CPU percent since the last reading; over a window of at least 0.25 s, so that a reading
        taken right after start-up is not one busy millisecond blown up to 100 %."""
        waited = time.monotonic() - self._cpu_read_at
        interval = None if waited >= _MIN_CPU_WINDOW_S else _MIN_CPU_WINDOW_S - waited
        value = float(psutil.cpu_percent(interval=interval))
        self._cpu_read_at = time.monotonic()
        return value

    def collect(self) -> list[Sample]:
        out: list[Sample] = [("cpu_usage", {}, self._cpu_usage())]
        mem = psutil.virtual_memory()
        out.append(("memory_usage", {}, float(mem.percent)))
        out.append(("free_memory", {}, 100.0 * mem.available / mem.total if mem.total else 0.0))
        try:
            out.append(
                ("disk_usage", {"path": self.disk_path}, float(psutil.disk_usage(self.disk_path).percent))
            )
        except OSError as exc:
            log.warning("disk_usage: cannot read %s: %s", self.disk_path, exc)
        out.append(("swap_usage", {}, float(psutil.swap_memory().percent)))
        with contextlib.suppress(AttributeError, OSError):  # platforms without a load average
            out.append(("load_average", {}, float(psutil.getloadavg()[0])))
        out.append(("process_count", {}, float(len(psutil.pids()))))
        net = psutil.net_io_counters()
        if net is not None:
            out.append(("network_bytes_sent", {}, float(net.bytes_sent)))
            out.append(("network_bytes_recv", {}, float(net.bytes_recv)))
        out.extend(self.collect_latency())
        return out

    def collect_latency(self) -> list[Sample]:
        """``network_latency`` (ms) per reachable target; an unreachable one is logged, not raised."""
        out: list[Sample] = []
        for target, host, port in self.targets:
            try:
                ms = tcp_connect_ms(host, port, self.timeout_s)
            except OSError as exc:
                level = logging.DEBUG if target in self._failing else logging.WARNING
                log.log(level, "network_latency: cannot connect to %s: %s", target, exc)
                self._failing.add(target)
                continue
            if target in self._failing:
                log.info("network_latency: %s is reachable again", target)
                self._failing.discard(target)
            out.append(("network_latency", {"target": target}, ms))
        return out


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class RunHistoryCollector:
    """Module, step and data metrics derived from the runs in the store, over the last ``window_s``.

    Per module (label ``module``) and per step (labels ``workflow``, ``step``), over attempts that
    finished in the window:

    - ``response_time`` (ms): p50 and p95 with label ``quantile`` ``'0.5'`` / ``'0.95'``; per module also
      the plain p95 with only the ``module`` label (what a rule ``response_time > 1000`` compares);
    - ``error_rate``: percent of finished attempts that failed (or timed out);
    - ``throughput``: succeeded attempts per minute.

    Every value an action reported with ``ctx.metric(name, value)`` in the window is exported under its
    own name (the newest per step) with labels ``module``, ``step``, ``workflow``: ``model_accuracy``,
    ``prediction_latency``, ``data_ingestion_rate``, ``data_quality_score``, ... When no action reported
    ``prediction_latency``, it is the p95 duration (ms) of AI ``predict*`` steps.
    ``data_processing_time`` (s) is the mean duration of DATA and IOT steps, per module.
    """

    FAILED = frozenset({"failed", "timed_out", "timeout", "error", "lost"})
    DATA_MODULES = frozenset({"DATA", "IOT"})

    def __init__(self, store: Store, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or Clock()

    def collect(self, window_s: float = 3600) -> list[Sample]:
        now = self.clock.time()
        since = now - window_s
        minutes = max(window_s / 60.0, 1e-9)
        a, s, r, m = t.attempts.c, t.step_runs.c, t.runs.c, t.step_metrics.c
        attempts_q = (
            select(r.name, a.step, s.module, s.action, a.status, a.duration_s)
            .select_from(
                t.attempts.join(t.step_runs, and_(s.run_id == a.run_id, s.step == a.step)).join(
                    t.runs, r.id == a.run_id
                )
            )
            .where(a.finished_at.is_not(None), a.finished_at >= since, a.finished_at <= now)
        )
        metrics_q = (
            select(r.name, m.step, s.module, m.name, m.value, m.ts)
            .select_from(
                t.step_metrics.join(t.step_runs, and_(s.run_id == m.run_id, s.step == m.step)).join(
                    t.runs, r.id == m.run_id
                )
            )
            .where(m.ts >= since, m.ts <= now)
            .order_by(m.ts)
        )
        with self.store.engine.connect() as conn:
            attempt_rows = conn.execute(attempts_q).all()
            metric_rows = conn.execute(metrics_q).all()

        by_module: dict[str, _Stats] = {}
        by_step: dict[tuple[str, str], _Stats] = {}
        predict_ms: dict[str, list[float]] = {}
        for workflow, step, module, action_name, status, duration in attempt_rows:
            for stats in (
                by_module.setdefault(module, _Stats()),
                by_step.setdefault((workflow, step), _Stats()),
            ):
                stats.add(status in self.FAILED, status == "succeeded", duration)
            if module == "AI" and "predict" in action_name and duration is not None:
                predict_ms.setdefault(module, []).append(duration * 1000.0)

        out: list[Sample] = []
        for module, stats in sorted(by_module.items()):
            labels = {"module": module}
            out.extend(stats.samples(labels, minutes, plain_p95=True))
            if module in self.DATA_MODULES and stats.durations_ms:
                mean_s = sum(stats.durations_ms) / len(stats.durations_ms) / 1000.0
                out.append(("data_processing_time", labels, mean_s))
        for (workflow, step), stats in sorted(by_step.items()):
            out.extend(stats.samples({"workflow": workflow, "step": step}, minutes, plain_p95=False))

        reported: dict[tuple[str, tuple[str, str, str]], float] = {}
        for workflow, step, module, name, value, _ts in metric_rows:  # oldest first: the newest wins
            reported[(name, (module, step, workflow))] = float(value)
        for (name, (module, step, workflow)), value in reported.items():
            out.append((name, {"module": module, "step": step, "workflow": workflow}, value))
        if not any(name == "prediction_latency" for name, _ in reported):
            for module, values in predict_ms.items():
                out.append(("prediction_latency", {"module": module}, _quantile(values, 0.95)))
        return out


class _Stats:
    __slots__ = ("durations_ms", "failed", "finished", "succeeded")

    def __init__(self) -> None:
        self.finished = self.failed = self.succeeded = 0
        self.durations_ms: list[float] = []

    def add(self, failed: bool, succeeded: bool, duration_s: Any) -> None:
        self.finished += 1
        self.failed += failed
        self.succeeded += succeeded
        if duration_s is not None:
            self.durations_ms.append(float(duration_s) * 1000.0)

    def samples(self, labels: dict[str, str], minutes: float, plain_p95: bool) -> list[Sample]:
        out: list[Sample] = []
        if self.durations_ms:
            p50, p95 = _quantile(self.durations_ms, 0.5), _quantile(self.durations_ms, 0.95)
            out.append(("response_time", {**labels, "quantile": "0.5"}, p50))
            out.append(("response_time", {**labels, "quantile": "0.95"}, p95))
            if plain_p95:
                out.append(("response_time", dict(labels), p95))
        out.append(("error_rate", dict(labels), 100.0 * self.failed / self.finished))
        out.append(("throughput", dict(labels), self.succeeded / minutes))
        return out


__all__ = [
    "DEFAULT_LATENCY_TARGETS",
    "RunHistoryCollector",
    "SystemCollector",
    "parse_target",
    "tcp_connect_ms",
]
