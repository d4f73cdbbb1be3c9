"""Prometheus exposition of the metric store (prometheus_client).

A custom collector turns every live series of :meth:`MetricStore.series` into a gauge
``geo_infer_ops_<name>`` with the series' labels, read from memory at scrape time (nothing is
copied into prometheus_client's own metric objects, so there is nothing to keep in sync)::

    server, port = serve_metrics(metric_store, host="127.0.0.1", port=9464)   # GET /metrics
    app = make_wsgi_app(metric_store)                                         # mount it yourself

Series of one name with different label names are exported as separate samples of one gauge;
Prometheus accepts that. Label names that are not valid in Prometheus are rewritten
(``[^a-zA-Z0-9_]`` -> ``_``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import make_wsgi_app as _make_wsgi_app
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .metrics import MetricStore

PREFIX = "geo_infer_ops_"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
_SANITIZE = re.compile(r"[^a-zA-Z0-9_:]")


def _label_name(name: str) -> str:
    name = _INVALID.sub("_", name)
    if not name or name[0].isdigit() or name.startswith("__"):
        name = "l_" + name.lstrip("_")
    return name


class MetricStoreCollector(Collector):
    """A prometheus_client collector over the live series of a :class:`MetricStore`."""

    def __init__(self, metric_store: MetricStore, prefix: str = PREFIX) -> None:
        self.metric_store = metric_store
        self.prefix = prefix

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families: dict[str, dict[tuple[str, ...], list[tuple[list[str], float, float]]]] = {}
        for (name, key), (ts, value) in self.metric_store.series().items():
            names = tuple(_label_name(k) for k, _ in key)
            families.setdefault(name, {}).setdefault(names, []).append(([v for _, v in key], value, ts))
        for name in sorted(families):
            full = self.prefix + _SANITIZE.sub("_", name)
            for label_names, samples in families[name].items():
                family = GaugeMetricFamily(
                    full, f"geo-infer-ops metric {name} (latest value)", labels=list(label_names)
                )
                for values, value, _ts in samples:
                    family.add_metric(values, value)
                yield family

    def describe(self) -> list[Any]:
        return []  # unknown until scraped: registering must not collect


def registry_for(metric_store: MetricStore) -> CollectorRegistry:
    """A fresh registry holding only the metric store's collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricStoreCollector(metric_store))
    return registry


def make_wsgi_app(metric_store: MetricStore, registry: CollectorRegistry | None = None) -> Any:
    """A WSGI app serving the metric store in the Prometheus text format (mount it at ``/metrics``)."""
    return _make_wsgi_app(registry or registry_for(metric_store))


def serve_metrics(metric_store: MetricStore, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, int]:
    """Serve ``/metrics`` on a background thread; returns ``(server, port)`` (``port=0``: any free port).

    Stop it with ``server.shutdown(); server.server_close()`` (or :func:`stop_server`).
    """
    server, thread = _start_http_server(port, addr=host, registry=registry_for(metric_store))
    server._gio_thread = thread  # type: ignore[attr-defined]
    return server, int(server.server_address[1])


def stop_server(server: Any) -> None:
    """Stop a server of :func:`serve_metrics` and wait for its thread."""
    server.shutdown()
    server.server_close()
    thread: threading.Thread | None = getattr(server, "_gio_thread", None)
    if thread is not None:
        thread.join(timeout=5)


__all__ = ["PREFIX", "MetricStoreCollector", "make_wsgi_app", "registry_for", "serve_metrics", "stop_server"]
