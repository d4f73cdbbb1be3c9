"""Start runs of workflows on their ``schedule`` (cron, ``hourly``-style aliases, ``every 15m``).

One :class:`Scheduler` holds the scheduled workflows and, on every :meth:`Scheduler.tick`,
starts the runs that are due through the orchestrator (so they are stored, watched and
retried like any other run). Two policies, named as in Airflow and Temporal:

- ``catchup``: after a pause (the scheduler was not running), start one run per missed
  fire time (``True``) or a single run for all of them (``False``, the default).
- ``overlap``: when a run of the workflow started by this scheduler is still going at the next
  fire time, ``skip`` the new one (the default) or ``allow`` both.

Where a workflow was last fired is read back from the store (its newest run), so restarting
the scheduler neither repeats a run nor forgets one. The clock is injected: tests step through
days of schedule in milliseconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from ..errors import ConfigError, Problem
from .schedules import Schedule, parse_schedule
from .spec import Workflow

log = logging.getLogger("geo_infer_ops.scheduler")

Overlap = Literal["skip", "allow"]
MAX_CATCHUP_RUNS = 1000


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


@dataclass
class ScheduledWorkflow:
    """A workflow, its parsed schedule and when it fires next."""

    workflow: Workflow
    schedule: Schedule
    next_fire: float
    catchup: bool = False
    overlap: Overlap = "skip"
    parameters: Mapping[str, Any] = field(default_factory=dict)
    running: list[Future] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.workflow.name,
            "schedule": self.schedule.text,
            "next_fire": _utc(self.next_fire).isoformat(),
            "catchup": self.catchup,
            "overlap": self.overlap,
            "running": sum(1 for f in self.running if not f.done()),
        }


class Scheduler:
    """Fires scheduled runs through a :class:`~.orchestrator.WorkflowOrchestrator`."""

    def __init__(self, orchestrator: Any) -> None:
        self.orchestrator = orchestrator
        self.clock = orchestrator.services.clock
        self.entries: dict[str, ScheduledWorkflow] = {}
        self._stop = threading.Event()

    def add(
        self,
        workflow: Any,
        *,
        catchup: bool = False,
        overlap: Overlap = "skip",
        parameters: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Schedule a workflow (dict, file or Workflow) that has a ``schedule``."""
        wf = self.orchestrator.define_workflow(workflow, parameters)
        if not wf.schedule:
            raise ConfigError(
                [Problem("schedule", f"workflow {wf.name!r} has no schedule", "add e.g. 'schedule: hourly'")]
            )
        if overlap not in ("skip", "allow"):
            raise ConfigError([Problem("overlap", f"unknown policy {overlap!r}", "use 'skip' or 'allow'")])
        schedule = parse_schedule(wf.schedule)
        entry = ScheduledWorkflow(wf, schedule, 0.0, catchup, overlap, dict(parameters or {}))
        entry.next_fire = self._first_fire(entry)
        self.entries[wf.name] = entry
        log.info("scheduled %s (%s); next run %s", wf.name, schedule.text, _utc(entry.next_fire).isoformat())
        return entry.describe()

    def _first_fire(self, entry: ScheduledWorkflow) -> float:
        """After the workflow's newest stored run, or after now if it never ran."""
        runs = self.orchestrator.store.list_runs(limit=1, name=entry.workflow.name)
        last = runs[0]["created_at"] if runs else None
        base = last if last is not None else self.clock.time()
        return entry.schedule.next_after(_utc(base)).timestamp()

    def tick(self) -> list[dict[str, Any]]:
        """Start every run that is due now; returns what was started or skipped."""
        now = self.clock.time()
        out: list[dict[str, Any]] = []
        for entry in self.entries.values():
            entry.running = [f for f in entry.running if not f.done()]
            due: list[float] = []
            fire = entry.next_fire
            while fire <= now and len(due) < MAX_CATCHUP_RUNS:
                due.append(fire)
                fire = entry.schedule.next_after(_utc(fire)).timestamp()
            if not due:
                continue
            entry.next_fire = fire
            if not entry.catchup:
                due = due[-1:]
            busy = bool(entry.running)  # runs of earlier ticks; a catch-up batch queues behind itself
            for fire_time in due:
                out.append(self.fire(entry, fire_time, busy))
        return out

    def fire(self, entry: ScheduledWorkflow, fire_time: float, busy: bool) -> dict[str, Any]:
        """Start (or, by the overlap policy, skip) one run of ``entry`` for ``fire_time``."""
        when = _utc(fire_time).isoformat()
        if entry.overlap == "skip" and busy:
            log.warning("skipped %s at %s: its previous run is still going", entry.workflow.name, when)
            return {
                "name": entry.workflow.name,
                "scheduled_for": when,
                "skipped": True,
                "reason": "the previous run is still going (overlap: skip)",
            }
        future = self.orchestrator.submit_workflow(entry.workflow, entry.parameters or None)
        entry.running.append(future)
        log.info("started %s for %s: run %s", entry.workflow.name, when, future.run_id)
        return {
            "name": entry.workflow.name,
            "scheduled_for": when,
            "skipped": False,
            "workflow_id": future.run_id,
            "future": future,
        }

    def next_wake(self) -> float | None:
        return min((e.next_fire for e in self.entries.values()), default=None)

    def run_forever(self, on_event: Any = None, max_sleep: float = 60.0) -> None:
        """Tick until :meth:`stop`; sleeps until the next fire time (at most ``max_sleep`` seconds)."""
        self._stop.clear()
        while not self._stop.is_set():
            for event in self.tick():
                if on_event is not None:
                    on_event(event)
            wake = self.next_wake()
            delay = max_sleep if wake is None else min(max_sleep, max(0.0, wake - self.clock.time()))
            self._stop.wait(delay)

    def stop(self) -> None:
        self._stop.set()
