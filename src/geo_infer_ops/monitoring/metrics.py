"""The metric store: labelled time series in the state database, latest values in memory.

State, and who touches it:

- ``_latest``: ``{name: {label_key: (ts, value)}}``, the newest sample of every live series.
  :meth:`MetricStore.record` updates it at once, so rule evaluation reads memory, never the database
  (:meth:`MetricStore.series` and :meth:`MetricStore.latest` are dictionary look-ups).
- ``_buffer``: samples not yet written, as ``(name, labels_json, ts, value)`` tuples in the column order
  of ``metric_samples``. :meth:`MetricStore.flush` writes them with the driver's ``executemany`` in one
  transaction (the store's hot path, :meth:`Store.insert_many`); a full buffer (``batch_size``) flushes
  itself, and reads (:meth:`query_range`, :meth:`rate`, :meth:`percentile`) flush first.
- ``metric_samples``: raw samples younger than ``rollup_after_hours``.
- ``metric_rollups``: older samples folded into ``rollup_resolution_s`` buckets (count, sum, min, max),
  kept ``retention_days``. :meth:`apply_retention` folds and deletes; run it periodically (the
  monitor does). A month of 10-second samples of one series is ~8,640 raw rows for the last day plus
  288 buckets per older day, instead of 259,200 rows.

Labels select series in two ways: :meth:`latest` / :meth:`latest_sample` want the exact label set
(``None`` = the series without labels); :meth:`query_range`, :meth:`rate` and :meth:`percentile` take a
*matcher*: every given label must be equal, other labels may be anything (``None`` = every series).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Integer, case, cast, delete, func, select

from ..clock import Clock
from ..errors import GeoInferOpsError
from ..store import Store
from ..store import tables as t

log = logging.getLogger(__name__)

LabelKey = tuple[tuple[str, str], ...]
"""Sorted label items; ``()`` when a series has no labels."""

_SAMPLE_COLUMNS = ("name", "labels", "ts", "value")
_INSERT = "metric_sample"
_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class MetricError(GeoInferOpsError, ValueError):
    """A metric name, label or value the store cannot take."""


def label_key(labels: Mapping[str, str] | None) -> LabelKey:
    """The canonical, hashable form of a label set: sorted ``(name, value)`` pairs of strings."""
    if not labels:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in labels.items()))


def _labels_json(key: LabelKey) -> str:
    return json.dumps(dict(key), sort_keys=True, separators=(",", ":")) if key else "{}"


def _matches(key: LabelKey, matcher: LabelKey) -> bool:
    if not matcher:
        return True
    items = dict(key)
    return all(items.get(k) == v for k, v in matcher)


class MetricStore:
    """Time series with labels in the state store; the latest value of each series in memory."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        *,
        batch_size: int = 10_000,
        retention_days: float = 30,
        rollup_after_hours: float = 24,
        rollup_resolution_s: int = 300,
    ) -> None:
        if batch_size < 1 or rollup_resolution_s < 1 or retention_days <= 0 or rollup_after_hours < 0:
            raise MetricError(
                "MetricStore needs batch_size >= 1, rollup_resolution_s >= 1, retention_days > 0 and "
                f"rollup_after_hours >= 0 (got {batch_size}, {rollup_resolution_s}, {retention_days}, "
                f"{rollup_after_hours})"
            )
        self.store = store
        self.clock = clock or Clock()
        self.batch_size = int(batch_size)
        self.retention_days = float(retention_days)
        self.rollup_after_hours = float(rollup_after_hours)
        self.rollup_resolution_s = int(rollup_resolution_s)
        self._lock = threading.RLock()
        self._latest: dict[str, dict[LabelKey, tuple[float, float]]] = {}
        self._buffer: list[tuple[str, str, float, float]] = []
        self._json: dict[LabelKey, str] = {(): "{}"}  # canonical JSON per label set, computed once
        self._keys: dict[str, LabelKey] = {"{}": ()}  # and back, for rows read from the database
        self._names: set[str] = set()  # names already validated
        self._closed = False
        store.prepare_insert(_INSERT, t.metric_samples, _SAMPLE_COLUMNS)
        self._load_latest(self.clock.time() - max(3600.0, self.rollup_after_hours * 3600))

    # -- writing ----------------------------------------------------------------
    def record(
        self,
        name: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Buffer one sample; its value is the series' latest at once (if it is the newest)."""
        key = label_key(labels)
        ts = self.clock.time() if timestamp is None else float(timestamp)
        with self._lock:
            self._add(name, key, ts, value)
            if len(self._buffer) >= self.batch_size:
                self._flush_locked()

    def record_many(
        self, samples: Iterable[tuple[str, LabelKey | Mapping[str, str] | None, float, float]]
    ) -> int:
        """Buffer many ``(name, labels, ts, value)`` samples (labels: a LabelKey, a mapping or None).

        Returns how many were taken. Full batches are written on the way; call :meth:`flush` to write
        the rest now.
        """
        n = 0
        json_of = self._json
        latest = self._latest
        names = self._names
        with self._lock:
            buffer = self._buffer
            append = buffer.append
            limit = self.batch_size
            for name, labels, ts, value in samples:
                if labels is None:
                    key: LabelKey = ()
                elif isinstance(labels, tuple):
                    key = labels
                else:
                    key = label_key(labels)
                text = json_of.get(key)
                if text is None or name not in names:  # first sight of a series or name: the slow path
                    self._add(name, key, ts, value)
                else:
                    ts = float(ts)
                    value = float(value)
                    series = latest[name]
                    last = series.get(key)
                    if last is None or ts >= last[0]:
                        series[key] = (ts, value)
                    append((name, text, ts, value))
                n += 1
                if len(buffer) >= limit:
                    self._flush_locked()
                    buffer = self._buffer
                    append = buffer.append
        return n

    def _add(self, name: str, key: LabelKey, ts: float, value: float) -> None:
        """Validate and buffer one sample (caller holds the lock)."""
        if name not in self._names:
            if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) > 200:
                raise MetricError(
                    f"invalid metric name {name!r}: use letters, digits, '_' and ':' (not first a digit), "
                    "at most 200 characters, e.g. 'model_accuracy'"
                )
            self._names.add(name)
            self._latest.setdefault(name, {})
        text = self._json.get(key)
        if text is None:
            if key != tuple(sorted(key)) or any(not isinstance(x, str) for kv in key for x in kv):
                key = tuple(sorted((str(k), str(v)) for k, v in key))
                text = self._json.get(key)
            if text is None:
                text = _labels_json(key)
                self._json[key] = text
                self._keys[text] = key
        try:
            value = float(value)
            ts = float(ts)
        except (TypeError, ValueError):
            raise MetricError(
                f"metric {name!r}: value and timestamp must be numbers, got {value!r}"
            ) from None
        series = self._latest[name]
        last = series.get(key)
        if last is None or ts >= last[0]:
            series[key] = (ts, value)
        self._buffer.append((name, text, ts, value))

    def flush(self) -> int:
        """Write every buffered sample in one transaction; returns how many were written."""
        with self._lock:
            return self._flush_locked()

    def _flush_locked(self) -> int:
        rows, self._buffer = self._buffer, []
        if rows:
            try:
                self.store.insert_many([(_INSERT, rows)], what=f"{len(rows)} metric samples")
            except BaseException:
                self._buffer = rows + self._buffer  # nothing was written: keep them for the next try
                raise
        return len(rows)

    @property
    def pending(self) -> int:
        """Samples buffered and not yet written."""
        return len(self._buffer)

    # -- the in-memory view -----------------------------------------------------
    def latest(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        sample = self.latest_sample(name, labels)
        return None if sample is None else sample[1]

    def latest_sample(self, name: str, labels: Mapping[str, str] | None = None) -> tuple[float, float] | None:
        """``(ts, value)`` of the newest sample of the series with exactly these labels."""
        series = self._latest.get(name)
        return None if series is None else series.get(label_key(labels))

    def series(self, name: str | None = None) -> dict[tuple[str, LabelKey], tuple[float, float]]:
        """Every live series (of ``name``, or all) -> its newest ``(ts, value)``; a copy, from memory."""
        with self._lock:
            if name is not None:
                return {(name, key): v for key, v in self._latest.get(name, {}).items()}
            return {(n, key): v for n, series in self._latest.items() for key, v in series.items()}

    @contextmanager
    def reading(self) -> Iterator[Mapping[str, Mapping[LabelKey, tuple[float, float]]]]:
        """The live index itself, ``{name: {labels: (ts, value)}}``, held still while the block runs.

        Rule evaluation reads it once per cycle without copying 10,000 series; writers wait.
        """
        with self._lock:
            yield self._latest

    def names(self) -> list[str]:
        """The names of the live series, sorted."""
        return sorted(n for n, s in self._latest.items() if s)

    def forget(self, older_than_s: float, now: float | None = None) -> int:
        """Drop series whose newest sample is older than ``older_than_s`` from memory (stale series)."""
        cutoff = (self.clock.time() if now is None else now) - older_than_s
        dropped = 0
        with self._lock:
            for series in self._latest.values():
                for key in [k for k, (ts, _) in series.items() if ts < cutoff]:
                    del series[key]
                    dropped += 1
        return dropped

    def _load_latest(self, since: float) -> None:
        """Seed the in-memory view from samples already stored (a restarted monitor keeps its series)."""
        s = t.metric_samples.c
        stmt = select(s.name, s.labels, s.ts, s.value).where(s.ts >= since).order_by(s.ts)
        with self.store.engine.connect() as conn:
            for name, labels, ts, value in conn.execute(stmt):
                key = self._key_of(labels)
                self._names.add(name)
                self._latest.setdefault(name, {})[key] = (ts, value)

    def _key_of(self, text: str) -> LabelKey:
        key = self._keys.get(text)
        if key is None:
            key = label_key(json.loads(text or "{}"))
            self._keys[text] = key
            self._json.setdefault(key, _labels_json(key))
        return key

    # -- queries ----------------------------------------------------------------
    def query_range(
        self, name: str, start: float, end: float, labels: Mapping[str, str] | None = None
    ) -> list[tuple[float, float, dict[str, str]]]:
        """``(ts, value, labels)`` of every point in ``[start, end]``, oldest first.

        Raw samples come as they are; rolled-up periods come as one point per bucket at the bucket's
        start with the bucket's mean (see :meth:`query_rollups` for count/sum/min/max).
        """
        matcher = label_key(labels)
        self.flush()
        s, r = t.metric_samples.c, t.metric_rollups.c
        raw = select(s.ts, s.value, s.labels).where(s.name == name, s.ts >= start, s.ts <= end)
        rolled = select(r.bucket, r.sum, r.count, r.labels).where(
            r.name == name, r.bucket >= start, r.bucket <= end
        )
        points: list[tuple[float, float, dict[str, str]]] = []
        with self.store.engine.connect() as conn:
            for bucket, total, count, text in conn.execute(rolled):
                key = self._key_of(text)
                if _matches(key, matcher) and count:
                    points.append((float(bucket), float(total) / count, dict(key)))
            for ts, value, text in conn.execute(raw):
                key = self._key_of(text)
                if _matches(key, matcher):
                    points.append((float(ts), float(value), dict(key)))
        points.sort(key=lambda p: p[0])
        return points

    def query_rollups(
        self, name: str, start: float, end: float, labels: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Rolled-up buckets in ``[start, end]``: ``{bucket, resolution, count, sum, min, max, labels}``."""
        matcher = label_key(labels)
        r = t.metric_rollups.c
        stmt = (
            select(t.metric_rollups)
            .where(r.name == name, r.bucket >= start, r.bucket <= end)
            .order_by(r.bucket)
        )
        out = []
        with self.store.engine.connect() as conn:
            for row in conn.execute(stmt).mappings():
                key = self._key_of(row["labels"])
                if _matches(key, matcher):
                    out.append({**dict(row), "labels": dict(key)})
        return out

    def _window(
        self, name: str, window_s: float, labels: Mapping[str, str] | None, now: float | None
    ) -> dict[LabelKey, list[tuple[float, float]]]:
        end = self.clock.time() if now is None else float(now)
        by_series: dict[LabelKey, list[tuple[float, float]]] = {}
        for ts, value, lbl in self.query_range(name, end - window_s, end, labels):
            by_series.setdefault(label_key(lbl), []).append((ts, value))
        return by_series

    def rate(
        self,
        name: str,
        window_s: float,
        labels: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> float | None:
        """Per-second increase of a counter over the last ``window_s`` (summed over matching series).

        Like Prometheus' ``rate``: a drop in value is a counter reset (the new value counts as the
        increase since the reset); a series needs two samples in the window. None when none has.
        """
        total: float | None = None
        for points in self._window(name, window_s, labels, now).values():
            if len(points) < 2 or points[-1][0] <= points[0][0]:
                continue
            increase = 0.0
            previous = points[0][1]
            for _, value in points[1:]:
                increase += value - previous if value >= previous else value
                previous = value
            total = (total or 0.0) + increase / (points[-1][0] - points[0][0])
        return total

    def percentile(
        self,
        name: str,
        q: float,
        window_s: float,
        labels: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> float | None:
        """The ``q`` quantile (0..1; 1 < q <= 100 is read as a percent) of the samples in the window.

        Linear interpolation between closest ranks (numpy's default). Rolled-up buckets count with
        their mean, weighted by their sample count.
        """
        if q > 1:
            q = q / 100.0
        if not 0 <= q <= 1:
            raise MetricError(f"percentile: q must be within 0..1 (or a percent), got {q!r}")
        end = self.clock.time() if now is None else float(now)
        values = [v for points in self._window(name, window_s, labels, end).values() for _, v in points]
        if not values:
            return None
        values.sort()
        pos = q * (len(values) - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, len(values) - 1)
        return values[lo] + (values[hi] - values[lo]) * (pos - lo)

    # -- retention --------------------------------------------------------------
    def apply_retention(self, now: float | None = None) -> dict[str, int]:
        """Fold raw samples older than ``rollup_after_hours`` into buckets, delete what is past retention.

        The rollup cutoff is aligned down to a bucket boundary so a bucket is never split between raw
        and rolled-up rows; a late sample for an already rolled-up bucket is merged into it. Returns
        ``{'rolled_up': samples folded, 'rollups_written': buckets inserted or updated,
        'samples_deleted': raw rows removed, 'rollups_deleted': buckets past retention}``.
        """
        now = self.clock.time() if now is None else float(now)
        res = self.rollup_resolution_s
        cutoff = math.floor((now - self.rollup_after_hours * 3600) / res) * res
        expiry = now - self.retention_days * 86400
        self.flush()
        s, r = t.metric_samples.c, t.metric_rollups.c
        engine = self.store.engine
        # timestamps are positive: SQLite's integer cast truncates, which is floor here
        sqlite = engine.dialect.name == "sqlite"
        index = cast(s.ts / res, Integer) if sqlite else func.floor(s.ts / res)
        aggregate = (
            select(
                s.name,
                s.labels,
                index.label("i"),
                func.count(),
                func.sum(s.value),
                func.min(s.value),
                func.max(s.value),
            )
            .where(s.ts < cutoff, s.ts >= expiry)
            .group_by(s.name, s.labels, index)
        )
        with engine.begin() as conn:
            rows = [
                {
                    "name": n,
                    "labels": lbl,
                    "resolution": res,
                    "bucket": float(int(i) * res),
                    "count": int(c),
                    "sum": float(sm),
                    "min": float(mn),
                    "max": float(mx),
                }
                for n, lbl, i, c, sm, mn, mx in conn.execute(aggregate)
            ]
            folded = sum(row["count"] for row in rows)
            if rows:
                conn.execute(self._upsert_rollups(engine.dialect.name), rows)
            deleted = conn.execute(delete(t.metric_samples).where(s.ts < cutoff)).rowcount or 0
            expired = conn.execute(delete(t.metric_rollups).where(r.bucket < expiry)).rowcount or 0
        return {
            "rolled_up": folded,
            "rollups_written": len(rows),
            "samples_deleted": deleted,
            "rollups_deleted": expired,
        }

    @staticmethod
    def _upsert_rollups(dialect: str) -> Any:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        table = t.metric_rollups
        stmt = insert(table)
        new = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[table.c.name, table.c.labels, table.c.resolution, table.c.bucket],
            set_={
                "count": table.c.count + new["count"],
                "sum": table.c.sum + new["sum"],
                "min": case((new["min"] < table.c.min, new["min"]), else_=table.c.min),
                "max": case((new["max"] > table.c.max, new["max"]), else_=table.c.max),
            },
        )

    def row_counts(self) -> dict[str, int]:
        """Rows in ``metric_samples`` and ``metric_rollups`` (after a flush)."""
        self.flush()
        with self.store.engine.connect() as conn:
            return {
                "samples": int(
                    conn.execute(select(func.count()).select_from(t.metric_samples)).scalar() or 0
                ),
                "rollups": int(
                    conn.execute(select(func.count()).select_from(t.metric_rollups)).scalar() or 0
                ),
            }

    def close(self) -> None:
        """Write what is buffered. The store stays open (it belongs to the caller)."""
        with self._lock:
            if not self._closed:
                self._flush_locked()
                self._closed = True


__all__ = ["LabelKey", "MetricError", "MetricStore", "label_key"]
