"""MetricStore on SQLite and PostgreSQL: buffering, in-memory latest values, queries, retention, rollups."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from geo_infer_ops.clock import FakeClock
from geo_infer_ops.errors import StoreError
from geo_infer_ops.monitoring.metrics import MetricError, MetricStore, label_key
from geo_infer_ops.store import Store
from geo_infer_ops.store import tables as t

T0 = 1_700_000_100.0  # aligned to 1- and 5-minute buckets


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def metrics(store: Store, clock: FakeClock) -> Iterator[MetricStore]:
    m = MetricStore(store, clock)
    try:
        yield m
    finally:
        m.close()


def stored_rows(store: Store) -> list[tuple]:
    c = t.metric_samples.c
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(c.name, c.labels, c.ts, c.value).order_by(c.id))]


def test_label_key_is_canonical() -> None:
    assert label_key(None) == () == label_key({})
    assert label_key({"b": "2", "a": 1}) == (("a", "1"), ("b", "2"))


def test_record_is_visible_at_once_and_written_on_flush(metrics: MetricStore, store: Store, clock) -> None:
    metrics.record("cpu_usage", 42.5)
    metrics.record("response_time", 120, {"module": "SPACE", "quantile": "0.95"}, timestamp=T0 - 5)
    assert metrics.latest("cpu_usage") == 42.5
    assert metrics.latest_sample("response_time", {"quantile": "0.95", "module": "SPACE"}) == (T0 - 5, 120.0)
    assert metrics.latest("response_time") is None  # exact label set: the unlabelled series does not exist
    assert metrics.latest("nope") is None
    assert stored_rows(store) == [] and metrics.pending == 2
    assert metrics.flush() == 2
    assert stored_rows(store) == [
        ("cpu_usage", "{}", T0, 42.5),
        ("response_time", '{"module":"SPACE","quantile":"0.95"}', T0 - 5, 120.0),
    ]
    assert metrics.flush() == 0


def test_an_older_sample_does_not_replace_the_latest(metrics: MetricStore) -> None:
    metrics.record("x", 1.0, timestamp=T0)
    metrics.record("x", 2.0, timestamp=T0 - 10)  # arrives late
    assert metrics.latest("x") == 1.0
    metrics.record_many([("x", None, T0 - 20, 3.0), ("x", (), T0 + 1, 4.0)])
    assert metrics.latest_sample("x") == (T0 + 1, 4.0)


def test_series_is_an_in_memory_snapshot_by_name(metrics: MetricStore) -> None:
    n = metrics.record_many(
        [("cpu_usage", {"host": f"h{i}"}, T0, float(i)) for i in range(3)] + [("disk_usage", None, T0, 7.0)]
    )
    assert n == 4
    cpu = metrics.series("cpu_usage")
    assert cpu == {("cpu_usage", (("host", f"h{i}"),)): (T0, float(i)) for i in range(3)}
    assert len(metrics.series()) == 4 and metrics.series("nothing") == {}
    cpu.clear()  # a copy
    assert len(metrics.series("cpu_usage")) == 3
    assert metrics.names() == ["cpu_usage", "disk_usage"]


def test_record_many_accepts_unsorted_label_tuples(metrics: MetricStore, store: Store) -> None:
    metrics.record_many(
        [("m", (("b", "2"), ("a", "1")), T0, 1.0), ("m", (("a", "1"), ("b", "2")), T0 + 1, 2.0)]
    )
    assert metrics.series("m") == {("m", (("a", "1"), ("b", "2"))): (T0 + 1, 2.0)}
    metrics.flush()
    assert {r[1] for r in stored_rows(store)} == {'{"a":"1","b":"2"}'}


def test_full_batches_are_written_on_the_way(store: Store, clock) -> None:
    metrics = MetricStore(store, clock, batch_size=100)
    metrics.record_many(("m", None, T0 + i, float(i)) for i in range(250))
    assert len(stored_rows(store)) == 200 and metrics.pending == 50
    for i in range(50):
        metrics.record("m", 1.0, timestamp=T0 + 1000 + i)
    assert len(stored_rows(store)) == 300 and metrics.pending == 0  # the 100th buffered sample flushed
    metrics.record("m", 2.0)
    metrics.close()
    assert len(stored_rows(store)) == 301 and metrics.pending == 0


def test_invalid_names_and_values_are_refused(metrics: MetricStore) -> None:
    with pytest.raises(MetricError, match="invalid metric name"):
        metrics.record("9lives", 1)
    with pytest.raises(MetricError, match="must be numbers"):
        metrics.record("ok_name", "not a number")  # type: ignore[arg-type]
    with pytest.raises(MetricError):
        MetricStore(metrics.store, batch_size=0)


def test_a_failed_flush_keeps_the_samples(metrics: MetricStore, store: Store, monkeypatch) -> None:
    metrics.record("m", 1.0)

    def refuse(*a, **k):
        raise StoreError("database is locked")

    monkeypatch.setattr(store, "insert_many", refuse)
    with pytest.raises(StoreError):
        metrics.flush()
    assert metrics.pending == 1
    monkeypatch.undo()
    assert metrics.flush() == 1 and len(stored_rows(store)) == 1


def test_a_new_metric_store_seeds_latest_values_from_the_database(store: Store, clock) -> None:
    first = MetricStore(store, clock)
    first.record("uptime", 99.5, {"module": "AI"}, timestamp=T0 - 60)
    first.record("uptime", 99.9, {"module": "AI"}, timestamp=T0 - 30)
    first.close()
    second = MetricStore(store, clock)
    assert second.latest_sample("uptime", {"module": "AI"}) == (T0 - 30, 99.9)


def test_query_range_filters_by_label_matcher(metrics: MetricStore) -> None:
    for i in range(10):
        metrics.record("rt", float(i), {"module": "SPACE", "quantile": "0.95"}, timestamp=T0 + i)
        metrics.record("rt", float(100 + i), {"module": "TIME", "quantile": "0.95"}, timestamp=T0 + i)
    points = metrics.query_range("rt", T0 + 2, T0 + 4, {"module": "SPACE"})
    assert points == [(T0 + k, float(k), {"module": "SPACE", "quantile": "0.95"}) for k in (2, 3, 4)]
    assert len(metrics.query_range("rt", T0, T0 + 100)) == 20
    assert metrics.query_range("rt", T0, T0 + 100, {"module": "NONE"}) == []


def test_rate_handles_counter_resets_and_sums_series(metrics: MetricStore, clock) -> None:
    # a counter growing 5/s, reset to 0 at t=30 then growing again
    values = [5.0 * i for i in range(6)] + [5.0 * i for i in range(6)]
    for i, v in enumerate(values):
        metrics.record("requests_total", v, {"module": "A"}, timestamp=T0 + 10 * i)
        metrics.record("requests_total", 2.0 * i, {"module": "B"}, timestamp=T0 + 10 * i)
    clock.advance(110)
    a = metrics.rate("requests_total", 200, {"module": "A"})
    assert a == pytest.approx((25 + 0 + 25) / 110)
    b = metrics.rate("requests_total", 200, {"module": "B"})
    assert b == pytest.approx(0.2)
    assert metrics.rate("requests_total", 200) == pytest.approx(a + b)
    assert metrics.rate("requests_total", 5) is None  # one sample in the window is not a rate
    assert metrics.rate("unknown", 60) is None


def test_percentile_over_a_window(metrics: MetricStore, clock) -> None:
    for i in range(1, 101):
        metrics.record("latency_ms", float(i), timestamp=T0 + i)
    clock.advance(100)
    assert metrics.percentile("latency_ms", 0.5, 1000) == pytest.approx(50.5)
    assert metrics.percentile("latency_ms", 95, 1000) == pytest.approx(95.05)  # a percent is accepted
    assert metrics.percentile("latency_ms", 1.0, 9.5) == 100.0  # only t=91..100 in the window
    assert metrics.percentile("latency_ms", 0.0, 9.5) == 91.0
    assert metrics.percentile("other", 0.5, 60) is None
    with pytest.raises(MetricError):
        metrics.percentile("latency_ms", -0.1, 60)


def test_retention_rolls_up_old_samples_and_queries_see_both(store: Store, clock) -> None:
    metrics = MetricStore(store, clock, retention_days=2, rollup_after_hours=1, rollup_resolution_s=60)
    # 3 hours of 10-second samples: value = minute index, so each bucket is constant per minute
    for i in range(3 * 360):
        metrics.record("temp", float(i // 6), {"site": "a"}, timestamp=T0 + 10 * i)
    clock.advance(3 * 3600)
    counts = metrics.apply_retention()
    assert counts["rolled_up"] == 2 * 360 and counts["samples_deleted"] == 2 * 360
    assert counts["rollups_written"] == 120 and counts["rollups_deleted"] == 0
    assert metrics.row_counts() == {"samples": 360, "rollups": 120}
    buckets = metrics.query_rollups("temp", T0, T0 + 600)
    assert buckets[0]["count"] == 6 and buckets[0]["min"] == buckets[0]["max"] == 0.0
    assert (
        buckets[1]["bucket"] == T0 + 60 and buckets[1]["sum"] == 6.0 and buckets[1]["labels"] == {"site": "a"}
    )
    points = metrics.query_range("temp", T0, T0 + 3 * 3600, {"site": "a"})
    assert len(points) == 120 + 360
    assert points[0] == (T0, 0.0, {"site": "a"}) and points[119][0] == T0 + 119 * 60
    assert points[120] == (T0 + 7200, 120.0, {"site": "a"})
    assert [p[0] for p in points] == sorted(p[0] for p in points)
    # a late sample for a bucket already rolled up is merged into it
    metrics.record("temp", 50.0, {"site": "a"}, timestamp=T0 + 1)
    assert metrics.apply_retention()["rollups_written"] == 1
    first = metrics.query_rollups("temp", T0, T0)[0]
    assert (first["count"], first["sum"], first["min"], first["max"]) == (7, 50.0, 0.0, 50.0)
    # after the retention period everything goes
    clock.advance(3 * 86400)
    counts = metrics.apply_retention()
    assert counts["rollups_deleted"] == 120 and counts["samples_deleted"] == 360
    assert metrics.row_counts() == {"samples": 0, "rollups": 0}
    assert metrics.latest("temp", {"site": "a"}) == 179.0  # memory still knows the newest value


def test_a_month_of_10_second_samples_stays_small(home) -> None:
    """30 days of one series every 10 s = 259,200 samples; stored: one day raw + 5-minute buckets.

    SQLite only (1.5 s; PostgreSQL takes 9 s for the inserts alone): the retention test above runs
    the same rollup and delete statements on both.
    """
    store = Store(f"sqlite:///{home / 'month.db'}")
    clock = FakeClock(T0)
    metrics = MetricStore(store, clock, batch_size=50_000)
    day = 8640
    try:
        for d in range(30):
            base = T0 + d * 86400
            metrics.record_many(
                ("cpu_usage", (("host", "a"),), base + 10 * i, float(i % 100)) for i in range(day)
            )
            clock.advance(86400)
            metrics.apply_retention()  # the monitor runs it periodically
        counts = metrics.row_counts()
        # the last day raw, 29 older days as 5-minute buckets
        assert counts == {"samples": day, "rollups": 29 * 288}
        total = counts["samples"] + counts["rollups"]
        assert total < 259_200 / 15, counts  # 259,200 samples in < 17,280 rows
        start, end = T0, T0 + 30 * 86400
        points = metrics.query_range("cpu_usage", start, end)
        assert len(points) == total
        assert metrics.latest("cpu_usage", {"host": "a"}) == float((day - 1) % 100)
    finally:
        metrics.close()
        store.close()


def test_record_many_and_latest_are_fast(metrics: MetricStore) -> None:
    keys = [(("module", f"m{i % 20}"), ("series", str(i))) for i in range(10_000)]
    start = time.perf_counter()
    metrics.record_many(("response_time", k, T0, 1.0) for k in keys)
    metrics.flush()
    elapsed = time.perf_counter() - start
    assert elapsed < 5  # generous: the benchmark measures the real rate
    start = time.perf_counter()
    snapshot = metrics.series("response_time")
    assert len(snapshot) == 10_000 and time.perf_counter() - start < 0.1
    assert json.loads(stored_rows(metrics.store)[0][1]) == {"module": "m0", "series": "0"}
