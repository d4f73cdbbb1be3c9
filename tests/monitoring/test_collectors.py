"""Collectors: psutil system metrics, TCP-connect latency, and metrics derived from real workflow runs."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from geo_infer_ops import action
from geo_infer_ops.clock import Clock, FakeClock
from geo_infer_ops.monitoring.collectors import RunHistoryCollector, SystemCollector, parse_target
from geo_infer_ops.monitoring.metrics import MetricStore
from geo_infer_ops.orchestration import WorkflowOrchestrator
from geo_infer_ops.settings import Settings


@pytest.fixture
def listener() -> Iterator[str]:
    """A TCP server on loopback that accepts connections: a latency target that exists."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        server.close()


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connecting is refused
    return port


def as_dict(samples) -> dict[tuple[str, tuple], float]:
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples}


def test_system_collector_reads_the_machine(listener: str) -> None:
    samples = SystemCollector([listener]).collect()
    got = as_dict(samples)
    for name in ("cpu_usage", "memory_usage", "free_memory", "swap_usage"):
        assert 0.0 <= got[(name, ())] <= 100.0, name
    assert 0.0 < got[("disk_usage", (("path", "/"),))] <= 100.0
    assert got[("process_count", ())] >= 1
    assert got[("network_bytes_recv", ())] >= 0
    latency = got[("network_latency", (("target", listener),))]
    assert 0.0 < latency < 1000.0
    assert got[("memory_usage", ())] + got[("free_memory", ())] == pytest.approx(100.0, abs=25.0)


def test_a_refusing_target_gives_no_sample_and_one_warning(listener: str, caplog) -> None:
    refused = f"127.0.0.1:{closed_port()}"
    collector = SystemCollector([refused, listener], timeout_s=0.5)
    with caplog.at_level(logging.DEBUG, logger="geo_infer_ops.monitoring.collectors"):
        first = collector.collect_latency()
        second = collector.collect_latency()
    assert [labels["target"] for _, labels, _ in first] == [listener]
    assert [labels["target"] for _, labels, _ in second] == [listener]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and refused in warnings[0].getMessage()  # not repeated every cycle


def test_default_target_is_loopback_postgres() -> None:
    assert [t[0] for t in SystemCollector().targets] == ["127.0.0.1:5432"]


def test_targets_are_parsed() -> None:
    assert parse_target("[::1]:5432") == ("::1", 5432)
    assert parse_target("db.internal:6379") == ("db.internal", 6379)
    with pytest.raises(ValueError, match="host:port"):
        parse_target("localhost")


def register_test_actions() -> dict[str, int]:
    calls = {"flaky": 0}

    @action("TESTMOD", "ok")
    def ok():
        return 1

    @action("TESTMOD", "flaky")
    def flaky():
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise ConnectionError("sensor gateway timed out")
        return 2

    @action("TESTMOD", "predict")
    def predict(ctx):
        ctx.metric("model_accuracy", 0.87)
        ctx.metric("data_quality_score", 93.0)
        return 3

    @action("TESTMOD", "boom")
    def boom():
        raise ValueError("bad tile")

    return calls


@pytest.fixture
def orchestrator(database_url: str, home) -> Iterator[WorkflowOrchestrator]:
    orch = WorkflowOrchestrator(settings=Settings(home=home, database_url=database_url, max_parallel=2))
    try:
        yield orch
    finally:
        orch.close()


def test_run_history_metrics_from_real_runs(orchestrator: WorkflowOrchestrator) -> None:
    register_test_actions()
    pipeline = {
        "name": "pipeline",
        "steps": [
            {"name": "load", "module": "TESTMOD", "action": "ok"},
            {"name": "fetch", "module": "TESTMOD", "action": "flaky", "dependencies": ["load"]},
            {"name": "model", "module": "TESTMOD", "action": "predict", "dependencies": ["fetch"]},
        ],
        "error_handling": {"retry_failed_steps": True, "max_retries": 1, "base_delay": 0},
    }
    assert orchestrator.execute_workflow(pipeline)["status"] == "succeeded"
    broken = {"name": "broken", "steps": [{"name": "tile", "module": "TESTMOD", "action": "boom"}]}
    assert orchestrator.execute_workflow(broken)["status"] == "failed"

    samples = RunHistoryCollector(orchestrator.store, Clock()).collect(window_s=3600)
    got = as_dict(samples)
    module = (("module", "TESTMOD"),)
    # 5 finished attempts of TESTMOD: load, fetch (failed, then succeeded), model, tile (failed)
    assert got[("error_rate", module)] == pytest.approx(40.0)
    assert got[("throughput", module)] == pytest.approx(3 / 60)
    p50 = got[("response_time", (*module, ("quantile", "0.5")))]
    p95 = got[("response_time", (*module, ("quantile", "0.95")))]
    assert 0 <= p50 <= p95 == got[("response_time", module)] < 10_000
    fetch = (("step", "fetch"), ("workflow", "pipeline"))
    assert got[("error_rate", fetch)] == pytest.approx(50.0)
    assert got[("error_rate", (("step", "tile"), ("workflow", "broken")))] == 100.0
    assert got[("throughput", (("step", "tile"), ("workflow", "broken")))] == 0.0
    assert ("response_time", (("quantile", "0.95"), ("step", "load"), ("workflow", "pipeline"))) in got
    reported = (("module", "TESTMOD"), ("step", "model"), ("workflow", "pipeline"))
    assert got[("model_accuracy", reported)] == 0.87
    assert got[("data_quality_score", reported)] == 93.0

    # the samples go straight into a MetricStore
    metrics = MetricStore(orchestrator.store)
    for name, labels, value in samples:
        metrics.record(name, value, labels)
    assert metrics.latest("model_accuracy", dict(reported)) == 0.87
    metrics.close()


def test_run_history_window_and_derived_data_metrics(orchestrator: WorkflowOrchestrator) -> None:
    @action("DATA", "load_test_data", override=True)
    def load():
        return [1, 2, 3]

    @action("AI", "predict_test", override=True)
    def predict():
        return 1

    wf = {
        "name": "data_and_ai",
        "steps": [
            {"name": "load", "module": "DATA", "action": "load_test_data"},
            {"name": "predict", "module": "AI", "action": "predict_test", "dependencies": ["load"]},
        ],
    }
    assert orchestrator.execute_workflow(wf)["status"] == "succeeded"
    clock = FakeClock(Clock().time() + 1)
    got = as_dict(RunHistoryCollector(orchestrator.store, clock).collect(window_s=600))
    assert got[("data_processing_time", (("module", "DATA"),))] >= 0.0
    assert got[("prediction_latency", (("module", "AI"),))] >= 0.0  # derived: no action reported it
    assert got[("error_rate", (("module", "AI"),))] == 0.0
    clock.advance(3600)  # an hour later the window is empty
    assert RunHistoryCollector(orchestrator.store, clock).collect(window_s=600) == []
