"""Metric ingestion: MetricStore vs plain batched inserts into the same indexed table.

Rows are ``metric_samples(name, labels, ts, value)`` with the index on ``(name, ts)``; samples cycle
over ``--series`` label sets. Each number is samples/s, best of ``--repeats`` on a fresh database.

- ``sqlite3 executemany (baseline)``: pre-built tuples, the stdlib driver, one transaction per batch of
  10,000: the floor of what any Python code can do through the driver.
- ``SQLAlchemy Core executemany``: ``conn.execute(insert(table), [dicts])`` per batch, the usual way.
- ``MetricStore.record_many + flush``: ``(name, labels, ts, value)`` tuples in; labels turned into
  canonical JSON, latest values kept in memory, batches of ``batch_size`` written on the store's hot path.
- ``MetricStore.record`` one sample per call.
- PostgreSQL (127.0.0.1:5432, when reachable): the psycopg baseline and record_many.

Usage::

    python bench/monitoring_ingest.py [--samples N] [--series N] [--repeats N] [--markdown]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, insert

from geo_infer_ops.clock import FakeClock
from geo_infer_ops.monitoring.metrics import MetricStore
from geo_infer_ops.store import Store
from geo_infer_ops.store import tables as t

OUTPUT = Path(__file__).resolve().parent / "results" / "monitoring_ingest.json"
POSTGRES_URL = os.environ.get("GEO_INFER_OPS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
T0 = 1_700_000_100.0
BATCH = 10_000


def make_samples(n: int, series: int) -> list[tuple[str, tuple[tuple[str, str], ...], float, float]]:
    keys = [(("module", f"M{i % 17}"), ("series", str(i))) for i in range(series)]
    return [("cpu_usage", keys[i % series], T0 + i // series, float(i % 1000)) for i in range(n)]


def sqlite_baseline(path: str, rows: list[tuple[str, str, float, float]]) -> None:
    Store(f"sqlite:///{path}").close()  # the same schema and pragmas
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    sql = "INSERT INTO metric_samples (name, labels, ts, value) VALUES (?, ?, ?, ?)"
    for i in range(0, len(rows), BATCH):
        conn.executemany(sql, rows[i : i + BATCH])
        conn.commit()
    conn.close()


def core_baseline(url: str, rows: list[tuple[str, str, float, float]]) -> None:
    Store(url).close()
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    stmt = insert(t.metric_samples)
    dicts = [{"name": n, "labels": lb, "ts": ts, "value": v} for n, lb, ts, v in rows]
    with engine.connect() as conn:
        for i in range(0, len(dicts), BATCH):
            conn.execute(stmt, dicts[i : i + BATCH])
            conn.commit()
    engine.dispose()


def psycopg_baseline(url: str, rows: list[tuple[str, str, float, float]]) -> None:
    import psycopg

    Store(url).close()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for i in range(0, len(rows), BATCH):
            cur.executemany(
                "INSERT INTO metric_samples (name, labels, ts, value) VALUES (%s, %s, %s, %s)",
                rows[i : i + BATCH],
            )
            conn.commit()


def metric_store_many(url: str, samples: list) -> None:
    store = Store(url)
    metrics = MetricStore(store, FakeClock(T0), batch_size=BATCH)
    metrics.record_many(samples)
    metrics.flush()
    store.close()


def metric_store_single(url: str, samples: list) -> None:
    store = Store(url)
    metrics = MetricStore(store, FakeClock(T0), batch_size=BATCH)
    record = metrics.record
    for name, key, ts, value in samples:
        record(name, value, dict(key), ts)
    metrics.flush()
    store.close()


def best_rate(
    n: int,
    repeats: int,
    setup: Callable[[], str],
    run: Callable[[str], None],
    teardown: Callable[[str], None] = lambda _: None,
) -> float:
    best = float("inf")
    for _ in range(repeats):
        target = setup()
        try:
            start = time.perf_counter()
            run(target)
            best = min(best, time.perf_counter() - start)
        finally:
            teardown(target)
    return n / best


def postgres_schema() -> tuple[Callable[[], str], Callable[[str], None]] | None:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            pass
    except Exception:
        return None

    def setup() -> str:
        schema = f"gio_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

    def teardown(url: str) -> None:
        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    return setup, teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-samples", type=int, default=100_000)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    samples = make_samples(args.samples, args.series)
    rows = [(n, json.dumps(dict(k), sort_keys=True, separators=(",", ":")), ts, v) for n, k, ts, v in samples]
    tmp = tempfile.mkdtemp(prefix="gio-bench-")
    counter = iter(range(10**6))

    def sqlite_path() -> str:
        return f"{tmp}/m{next(counter)}.db"

    def sqlite_url() -> str:
        return f"sqlite:///{sqlite_path()}"

    n, r = args.samples, args.repeats
    results: list[dict[str, object]] = []

    def add(db: str, method: str, rate: float, count: int) -> None:
        results.append({"database": db, "method": method, "samples": count, "samples_per_s": round(rate)})
        print(f"{db:10} {method:40} {rate:12,.0f} samples/s", file=sys.stderr)

    add(
        "SQLite",
        "sqlite3 executemany (baseline)",
        best_rate(n, r, sqlite_path, lambda p: sqlite_baseline(p, rows)),
        n,
    )
    add(
        "SQLite",
        "SQLAlchemy Core executemany",
        best_rate(n, r, sqlite_url, lambda u: core_baseline(u, rows)),
        n,
    )
    add(
        "SQLite",
        "MetricStore.record_many + flush",
        best_rate(n, r, sqlite_url, lambda u: metric_store_many(u, samples)),
        n,
    )
    single = samples[: n // 5]
    add(
        "SQLite",
        "MetricStore.record (one call per sample)",
        best_rate(len(single), r, sqlite_url, lambda u: metric_store_single(u, single)),
        len(single),
    )

    pg = postgres_schema()
    if pg is not None:
        setup, teardown = pg
        m = min(args.pg_samples, n)
        pg_rows, pg_samples = rows[:m], samples[:m]
        add(
            "PostgreSQL",
            "psycopg executemany (baseline)",
            best_rate(m, r, setup, lambda u: psycopg_baseline(u, pg_rows), teardown),
            m,
        )
        add(
            "PostgreSQL",
            "MetricStore.record_many + flush",
            best_rate(m, r, setup, lambda u: metric_store_many(u, pg_samples), teardown),
            m,
        )

    report = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
        },
        "series": args.series,
        "batch": BATCH,
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        print("| database | method | samples | samples/s |")
        print("|---|---|---:|---:|")
        for row in results:
            print(f"| {row['database']} | {row['method']} | {row['samples']:,} | {row['samples_per_s']:,} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
