"""Prometheus exposition: a real HTTP server on 127.0.0.1, scraped and parsed by prometheus_client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from geo_infer_ops.clock import FakeClock
from geo_infer_ops.monitoring.metrics import MetricStore
from geo_infer_ops.monitoring.prometheus import make_wsgi_app, serve_metrics, stop_server
from geo_infer_ops.store import Store


@pytest.fixture
def metrics(database_url: str) -> Iterator[MetricStore]:
    store = Store(database_url)
    m = MetricStore(store, FakeClock())
    try:
        yield m
    finally:
        m.close()
        store.close()


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        assert family.type == "gauge"
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_scrape_a_real_server(metrics: MetricStore) -> None:
    metrics.record("cpu_usage", 12.5)
    metrics.record("response_time", 250.0, {"module": "SPACE", "quantile": "0.95"})
    metrics.record("response_time", 80.0, {"module": "SPACE"})
    metrics.record("network_latency", 0.4, {"target": "127.0.0.1:5432"})
    metrics.record("model_accuracy", 0.87, {"module": "AI", "step": "predict", "workflow": "env"})
    server, port = serve_metrics(metrics, host="127.0.0.1", port=0)
    try:
        assert port > 0
        got = scrape(port)
        assert got["geo_infer_ops_cpu_usage"] == {(): 12.5}
        assert got["geo_infer_ops_response_time"] == {
            (("module", "SPACE"), ("quantile", "0.95")): 250.0,
            (("module", "SPACE"),): 80.0,
        }
        assert got["geo_infer_ops_network_latency"] == {(("target", "127.0.0.1:5432"),): 0.4}
        assert got["geo_infer_ops_model_accuracy"] == {
            (("module", "AI"), ("step", "predict"), ("workflow", "env")): 0.87
        }
        # a scrape reads the live values: nothing to register or update
        metrics.record("cpu_usage", 99.0)
        metrics.record("user_satisfaction", 4.2)
        got = scrape(port)
        assert got["geo_infer_ops_cpu_usage"] == {(): 99.0}
        assert got["geo_infer_ops_user_satisfaction"] == {(): 4.2}
        assert not any(name.startswith("python_") or name.startswith("process_") for name in got)
    finally:
        stop_server(server)


def test_label_names_are_made_valid(metrics: MetricStore) -> None:
    metrics.record("custom_metric", 1.0, {"data-source": "iot", "2nd": "x"})
    server, port = serve_metrics(metrics)
    try:
        assert scrape(port)["geo_infer_ops_custom_metric"] == {(("data_source", "iot"), ("l_2nd", "x")): 1.0}
    finally:
        stop_server(server)


def test_wsgi_app_serves_the_text_format(metrics: MetricStore) -> None:
    metrics.record("disk_usage", 55.0, {"path": "/"})
    app = make_wsgi_app(metrics)
    status: list[str] = []
    body = b"".join(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
            lambda s, h: status.append(s),
        )
    )
    assert status == ["200 OK"]
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    sample = families["geo_infer_ops_disk_usage"].samples[0]
    assert sample.labels == {"path": "/"} and sample.value == 55.0
