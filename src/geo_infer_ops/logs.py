"""Logging: JSON lines with the run and step ids on every line.

Step code logs through ``ctx.log`` (a stdlib ``LoggerAdapter``). One handler,
:class:`RunLogHandler`, writes each record to ``<home>/logs/<run_id>.jsonl`` and
keeps the last lines of every running attempt, which the engine stores with the
attempt so that ``debug_workflow_execution`` can show them without reading files.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

STEP_LOGGER = "geo_infer_ops.step"
TAIL_LINES = 50


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with ``run_id``/``step``/``attempt`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("run_id", "step", "attempt"):
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class RunLogHandler(logging.Handler):
    """Route step log records to one file per run and keep a tail per attempt."""

    def __init__(self, logs_dir: Path) -> None:
        super().__init__()
        self.logs_dir = logs_dir
        self.setFormatter(JsonFormatter())
        self._files: dict[str, Any] = {}
        self._tails: dict[tuple[str, str, int], deque[str]] = {}
        self._guard = threading.Lock()

    def path_for(self, run_id: str) -> Path:
        return self.logs_dir / f"{run_id}.jsonl"

    def emit(self, record: logging.LogRecord) -> None:
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            return
        try:
            line = self.format(record)
            key = (run_id, getattr(record, "step", ""), getattr(record, "attempt", 0))
            with self._guard:
                tail = self._tails.get(key)
                if tail is not None:
                    tail.append(line)
                fh = self._files.get(run_id)
                if fh is None:
                    self.logs_dir.mkdir(parents=True, exist_ok=True)
                    fh = self._files[run_id] = self.path_for(run_id).open("a", encoding="utf-8")
                fh.write(line + "\n")
                fh.flush()
        except Exception:
            self.handleError(record)

    def start_attempt(self, run_id: str, step: str, attempt: int) -> None:
        with self._guard:
            self._tails[(run_id, step, attempt)] = deque(maxlen=TAIL_LINES)

    def end_attempt(self, run_id: str, step: str, attempt: int) -> str:
        with self._guard:
            tail = self._tails.pop((run_id, step, attempt), None)
        return "\n".join(tail or ())

    def close_run(self, run_id: str) -> None:
        with self._guard:
            fh = self._files.pop(run_id, None)
        if fh is not None:
            fh.close()


_handlers: dict[str, RunLogHandler] = {}
_handlers_guard = threading.Lock()


def _reinit_locks_after_fork() -> None:
    """A forked step process must not inherit a lock held by another thread of its parent."""
    global _handlers_guard
    _handlers_guard = threading.Lock()
    for handler in _handlers.values():
        handler._guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_locks_after_fork)


def run_log_handler(logs_dir: str | Path) -> RunLogHandler:
    """The one handler for a logs folder, attached to the step logger on first use."""
    key = str(logs_dir)
    handler = _handlers.get(key)  # every step asks: no lock, no Path on the common path
    if handler is not None:
        return handler
    with _handlers_guard:
        handler = _handlers.get(key)
        if handler is None:
            handler = _handlers[key] = RunLogHandler(Path(key))
            logger = logging.getLogger(STEP_LOGGER)
            logger.addHandler(handler)
            logger.setLevel(logging.DEBUG)
            logger.propagate = False
        return handler


def read_run_log(path: Path, step: str | None = None, attempt: int | None = None) -> list[dict[str, Any]]:
    """Log records of a run, optionally of one step (and attempt)."""
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if step is not None and record.get("step") != step:
                continue
            if attempt is not None and record.get("attempt") != attempt:
                continue
            records.append(record)
    return records
