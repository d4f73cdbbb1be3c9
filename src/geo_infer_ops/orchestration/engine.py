"""The scheduler loop of one run.

Task selection policy: a step becomes *ready* the moment its last dependency
succeeds (not level by level); ready steps start in the order they became ready,
as long as the shared :class:`~.concurrency.SlotPool` grants a slot.

State, all in memory and mirrored to the store:

- ``states``   every step's :class:`StepState` (status, attempts, result reference)
- ``waiting``  number of dependencies of each step that have not succeeded yet
- ``ready``    steps that may start now, in arrival order
- ``running``  attempts in flight: step -> :class:`_Running` (attempt, handle, executor)
- ``timers``   a heap of (due, seq, kind, step, attempt): retries after backoff and
               timeouts; no worker ever sleeps
- ``values``   results produced in this process, handed to dependents without a reload

The loop (``run``) is: seed the ready steps; then repeatedly start what the slots
allow, commit the batch of transitions, hand the started attempts to executors,
wait for the next outcome or timer, and record what came back. Transitions are
committed *before* they are acted on (an attempt is stored as running before it
is submitted, a success is stored before its dependents start), so a process
killed at any moment can be resumed without redoing finished steps.
"""

from __future__ import annotations

import heapq
import os
import random
import socket
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from queue import SimpleQueue
from typing import Any

from ..artifacts import ArtifactStore, StoredResult
from ..clock import Clock
from ..logs import RunLogHandler
from ..modules.registry import ActionRegistry
from ..store import Store, TransitionBatch
from .concurrency import SlotPool
from .dag import Plan
from .executors import Executor, StepHandle, StepOutcome, StepTask
from .retry import RetryPolicy
from .spec import Step, Workflow

TERMINAL = frozenset({"succeeded", "failed", "timed_out", "upstream_failed", "cancelled"})
UNSUCCESSFUL = frozenset({"failed", "timed_out", "upstream_failed", "cancelled"})
_WAKE = object()


def iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat() if ts is not None else None


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class StepState:
    """What the store knows about one step of one run."""

    name: str
    status: str = "pending"
    attempts: int = 0
    used_fallback: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = None
    error: str | None = None
    result: StoredResult | None = None
    run_fallback: bool = False  # the next attempt runs the fallback action
    session_attempts: int = 0  # attempts made by this engine (retry budgets count these)

    def row(self) -> dict[str, Any]:
        r = self.result
        return {
            "status": self.status,
            "attempts": self.attempts,
            "used_fallback": self.used_fallback,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": self.duration_s,
            "error": self.error,
            "result": r.inline if r is not None else None,
            "artifact_id": r.artifact_id if r is not None else None,
        }


@dataclass
class _Running:
    attempt: int
    handle: StepHandle
    executor: str
    started_at: float


@dataclass
class EngineServices:
    """What every engine in a process shares."""

    store: Store
    artifacts: ArtifactStore
    executors: Mapping[str, Executor]
    slots: SlotPool
    registry: ActionRegistry
    log_handler: RunLogHandler
    clock: Clock = field(default_factory=Clock)
    rng: random.Random = field(default_factory=random.Random)


class RunEngine:
    """Executes (or continues) one run of a workflow to a terminal status."""

    def __init__(
        self,
        services: EngineServices,
        workflow: Workflow,
        run_id: str,
        *,
        initial: Mapping[str, StepState] | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        self.s = services
        self.workflow = workflow
        self.run_id = run_id
        self.plan = Plan.from_workflow(workflow)
        self.steps: dict[str, Step] = {step.name: step for step in workflow.steps}
        self.retry_policy = retry_policy
        self.states: dict[str, StepState] = {
            name: (initial[name] if initial and name in initial else StepState(name))
            for name in self.plan.order
        }
        self.waiting: dict[str, int] = {}
        self.ready: deque[str] = deque()
        self.running: dict[str, _Running] = {}
        self.timers: list[tuple[float, int, str, str, int]] = []
        self.values: dict[str, Any] = {}
        self._seq = 0
        self._done: SimpleQueue[Any] = SimpleQueue()
        self._batch = TransitionBatch()
        self._to_submit: list[tuple[StepTask, str]] = []
        self._cancel_reason: str | None = None
        self._ancestor_cache: dict[str, set[str]] = {}
        self._local_limit = workflow.max_parallel or 1_000_000
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.status = "pending"
        self.error: str | None = None

    # -- public ---------------------------------------------------------------
    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the loop (from any thread) to cancel the run."""
        self._cancel_reason = reason
        self._done.put(_WAKE)

    def run(self) -> str:
        """Drive the run to a terminal status and return it."""
        self.s.slots.join(self, lambda: self._done.put(_WAKE))
        try:
            self._begin()
            while self._unfinished():
                if self._cancel_reason is not None:
                    self._cancel(self._cancel_reason)
                    break
                self._start_ready()
                self._flush()
                self._submit()
                item = self.s.clock.get(self._done, self._next_timeout())
                while item is not None:
                    if item is not _WAKE:
                        self._record(item)
                    item = self._poll()
                self._fire_timers()
        except KeyboardInterrupt:
            self._cancel("interrupted (Ctrl-C)")
        finally:
            self.s.slots.leave(self)
        return self._end()

    # -- the loop's small steps -------------------------------------------------
    def _begin(self) -> None:
        now = self.s.clock.time()
        self.started_at = now
        self._batch.update_run(self.run_id, status="running", started_at=now, finished_at=None, error=None)
        self._batch.event(self.run_id, "run_started", f"{self.workflow.name} started", ts=now)
        for name in self.plan.order:
            state = self.states[name]
            if state.status in TERMINAL:
                continue
            state.status = "pending"
            deps = self.plan.upstream[name]
            if any(self.states[d].status in UNSUCCESSFUL for d in deps):
                self._mark_upstream_failed(
                    name, next(d for d in deps if self.states[d].status in UNSUCCESSFUL)
                )
                continue
            unfinished = sum(1 for d in deps if self.states[d].status != "succeeded")
            if unfinished:
                self.waiting[name] = unfinished
            else:
                self.ready.append(name)

    def _unfinished(self) -> bool:
        return bool(self.ready or self.running or self.waiting or self._live_timers())

    def _live_timers(self) -> bool:
        """Drop timers that no longer matter (a finished attempt's timeout); say if any is left."""
        while self.timers:
            _, _, kind, name, attempt = self.timers[0]
            if kind == "retry" and self.states[name].status == "retrying":
                return True
            running = self.running.get(name)
            if kind == "timeout" and running is not None and running.attempt == attempt:
                return True
            heapq.heappop(self.timers)
        return False

    def _poll(self) -> Any | None:
        try:
            return self._done.get_nowait()
        except Exception:
            return None

    def _next_timeout(self) -> float | None:
        """Wait until the next timer; with none, until an outcome arrives (or a slot frees up)."""
        if not self._live_timers():
            return None
        return max(0.0, self.timers[0][0] - self.s.clock.monotonic())

    def _start_ready(self) -> None:
        while self.ready and len(self.running) < self._local_limit:
            if not self.s.slots.try_acquire(self):
                return
            self._start(self.ready.popleft())

    def _start(self, name: str) -> None:
        step = self.steps[name]
        state = self.states[name]
        now = self.s.clock.time()
        state.attempts += 1
        state.session_attempts += 1
        state.status = "running"
        if state.started_at is None:
            state.started_at = now
        module, action = step.module, step.action
        if state.run_fallback and step.fallback:
            module, _, action = step.fallback.partition(".")
        spec = self.s.registry.get(module, action)
        kind = self._executor_kind(step, spec.cpu_bound)
        task = StepTask(
            run_id=self.run_id,
            workflow=self.workflow.name,
            step=name,
            attempt=state.attempts,
            module=module,
            action=action,
            parameters=step.parameters,
            input_refs={d: self.states[d].result for d in self.plan.upstream[name] if self.states[d].result},
            ancestor_refs={a: self.states[a].result for a in self._ancestors(name) if self.states[a].result},
            database_url=self.s.store.url,
            artifacts_root=str(self.s.artifacts.root),
            inline_max_bytes=self.s.artifacts.inline_max_bytes,
            logs_dir=str(self.s.log_handler.logs_dir),
            is_fallback=state.run_fallback,
            timeout=step.timeout,
        )
        self._batch.attempt_starts.append(
            {
                "run_id": self.run_id,
                "step": name,
                "attempt": state.attempts,
                "action": f"{module}.{action}",
                "status": "running",
                "started_at": now,
                "executor": kind,
            }
        )
        self._batch.set_step(self.run_id, name, state.row())
        self._to_submit.append((task, kind))

    def _ancestors(self, name: str) -> set[str]:
        found = self._ancestor_cache.get(name)
        if found is None:
            found = self._ancestor_cache[name] = self.plan.ancestors(name)
        return found

    @staticmethod
    def _executor_kind(step: Step, cpu_bound: bool) -> str:
        if step.executor:
            return step.executor
        return "process" if (step.timeout is not None or cpu_bound) else "thread"

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, TransitionBatch()
            self.s.store.apply(batch)

    def _submit(self) -> None:
        for task, kind in self._to_submit:
            inputs = {d: self.values[d] for d in task.ancestor_refs if d in self.values}
            handle = self.s.executors[kind].submit(task, inputs, self._done.put)
            now = self.s.clock.monotonic()
            self.running[task.step] = _Running(task.attempt, handle, kind, now)
            if task.timeout is not None:
                self._push_timer(now + task.timeout, "timeout", task.step, task.attempt)
        self._to_submit.clear()

    def _push_timer(self, due: float, kind: str, step: str, attempt: int) -> None:
        self._seq += 1
        heapq.heappush(self.timers, (due, self._seq, kind, step, attempt))

    def _fire_timers(self) -> None:
        now = self.s.clock.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, kind, name, attempt = heapq.heappop(self.timers)
            if kind == "retry" and self.states[name].status == "retrying":
                self.states[name].status = "pending"
                self._batch.set_step(self.run_id, name, self.states[name].row())
                self.ready.append(name)
            elif kind == "timeout":
                self._time_out(name, attempt)

    def _time_out(self, name: str, attempt: int) -> None:
        running = self.running.get(name)
        if running is None or running.attempt != attempt:
            return
        running.handle.kill()
        limit = self.steps[name].timeout
        how = "killed" if running.executor == "process" else "abandoned (threads cannot be stopped)"
        now = self.s.clock.time()
        self._record(
            StepOutcome(
                name,
                attempt,
                ok=False,
                started_at=now - (limit or 0.0),
                finished_at=now,
                error=f"StepTimeout: step {name!r} ran longer than its timeout of {limit:g}s and was {how}",
                error_type="StepTimeout",
                timed_out=True,
                worker=running.executor,
            )
        )

    # -- outcomes ---------------------------------------------------------------
    def _record(self, outcome: StepOutcome) -> None:
        running = self.running.get(outcome.step)
        if running is None or running.attempt != outcome.attempt:
            return  # a late result of an attempt that was timed out or cancelled: fenced off
        del self.running[outcome.step]
        self.s.slots.release(self)
        name = outcome.step
        state = self.states[name]
        status = "succeeded" if outcome.ok else ("timed_out" if outcome.timed_out else "failed")
        self._batch.attempt_ends.append(
            {
                "run_id": self.run_id,
                "step": name,
                "attempt": outcome.attempt,
                "status": status,
                "finished_at": outcome.finished_at,
                "duration_s": outcome.duration_s,
                "error": outcome.error,
                "error_type": outcome.error_type,
                "traceback": outcome.traceback,
                "log_tail": outcome.log_tail,
                "worker": outcome.worker,
            }
        )
        self._batch.metrics.extend(
            {"run_id": self.run_id, "step": name, "attempt": outcome.attempt, "name": n, "value": v, "ts": ts}
            for n, v, ts in outcome.metrics
        )
        if outcome.ok:
            self._succeed(name, state, outcome)
        else:
            self._fail_attempt(name, state, outcome, status)

    def _succeed(self, name: str, state: StepState, outcome: StepOutcome) -> None:
        state.status = "succeeded"
        state.finished_at = outcome.finished_at
        state.duration_s = outcome.finished_at - (state.started_at or outcome.started_at)
        state.error = None
        state.result = outcome.result
        if state.run_fallback:
            state.used_fallback = True
        if outcome.result is not None and outcome.result.artifact_id:
            self._batch.artifacts.append(outcome.result.to_record(self.run_id, name, outcome.finished_at))
        if outcome.value is not None:
            self.values[name] = outcome.value
        self._batch.set_step(self.run_id, name, state.row())
        for child in self.plan.downstream[name]:
            if child in self.waiting:
                self.waiting[child] -= 1
                if self.waiting[child] == 0:
                    del self.waiting[child]
                    self.ready.append(child)

    def _fail_attempt(self, name: str, state: StepState, outcome: StepOutcome, status: str) -> None:
        step = self.steps[name]
        policy = self.retry_policy or self.workflow.retry_policy(step)
        now = self.s.clock.time()
        state.error = outcome.error
        if not state.run_fallback and policy.should_retry(state.session_attempts, outcome.error_type):
            delay = policy.delay(state.session_attempts, self.s.rng)
            state.status = "retrying"
            self._push_timer(self.s.clock.monotonic() + delay, "retry", name, state.attempts)
            self._batch.event(
                self.run_id,
                "retry_scheduled",
                f"attempt {state.attempts} {status}: {outcome.error}; retrying in {delay:.2f}s",
                step=name,
                ts=now,
            )
        elif step.fallback and not state.run_fallback:
            state.run_fallback = True
            state.status = "pending"
            self.ready.append(name)
            self._batch.event(
                self.run_id,
                "fallback",
                f"{outcome.error}; running fallback {step.fallback}",
                step=name,
                ts=now,
            )
        else:
            state.status = status
            state.finished_at = now
            state.duration_s = now - (state.started_at or now)
            self._batch.event(self.run_id, f"step_{status}", outcome.error or status, step=name, ts=now)
            for child in self.plan.descendants(name):
                if child in self.waiting:
                    self._mark_upstream_failed(child, name)
        self._batch.set_step(self.run_id, name, state.row())

    def _mark_upstream_failed(self, name: str, cause: str) -> None:
        state = self.states[name]
        self.waiting.pop(name, None)
        state.status = "upstream_failed"
        state.error = f"upstream step {cause!r} did not succeed"
        state.finished_at = self.s.clock.time()
        self._batch.set_step(self.run_id, name, state.row())

    def _cancel(self, reason: str) -> None:
        now = self.s.clock.time()
        for name, running in list(self.running.items()):
            running.handle.kill()
            self._batch.attempt_ends.append(
                {
                    "run_id": self.run_id,
                    "step": name,
                    "attempt": running.attempt,
                    "status": "cancelled",
                    "finished_at": now,
                    "duration_s": None,
                    "error": reason,
                    "error_type": "Cancelled",
                    "traceback": None,
                    "log_tail": None,
                    "worker": running.executor,
                }
            )
            self.s.slots.release(self)
        self.running.clear()
        for name, state in self.states.items():
            if state.status not in TERMINAL:
                state.status = "cancelled"
                state.error = reason
                state.finished_at = now
                self._batch.set_step(self.run_id, name, state.row())
        self.ready.clear()
        self.waiting.clear()
        self.timers.clear()
        self._cancel_reason = reason
        self._batch.event(self.run_id, "run_cancelled", reason, ts=now)

    def _end(self) -> str:
        now = self.s.clock.time()
        self.finished_at = now
        statuses = [s.status for s in self.states.values()]
        if self._cancel_reason is not None:
            status = "cancelled"
        elif all(s == "succeeded" for s in statuses):
            status = "succeeded"
        else:
            status = "failed"
        bad = [n for n, s in self.states.items() if s.status in ("failed", "timed_out")]
        error = f"{len(bad)} step(s) did not succeed: {', '.join(bad)}" if bad else self._cancel_reason
        self.status, self.error = status, error
        self._batch.update_run(self.run_id, status=status, finished_at=now, error=error)
        self._batch.event(self.run_id, "run_finished", f"{self.workflow.name} {status}", ts=now)
        self._flush()
        self.s.log_handler.close_run(self.run_id)
        return status


def new_run_id() -> str:
    import uuid

    return uuid.uuid4().hex
