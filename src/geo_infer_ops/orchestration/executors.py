"""Executors: where a step's action actually runs.

Every executor has the same small interface (``submit(task, inputs, done)``
returning a :class:`StepHandle` that can be killed), like httpx's transports:

- :class:`ThreadExecutor` (default): daemon worker threads, started on demand.
  A thread cannot be stopped, so a timed-out thread step is *abandoned*: its
  result is ignored (fenced by attempt number) and a fresh thread takes its place.
- :class:`ProcessExecutor`: one forked child process per attempt, in its own
  process group, so a timeout or Ctrl-C kills the work and everything it started.
  Steps with a ``timeout`` run here unless they opt into threads.

The action itself runs in :func:`execute_step`, identical in both.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from queue import SimpleQueue
from typing import Any, Protocol

from ..artifacts import StoredResult, artifact_store
from ..logs import run_log_handler
from .context import StepArtifacts, StepContext, StepInputs


@dataclass(slots=True)
class StepTask:
    """Everything needed to run one attempt of one step (picklable)."""

    run_id: str
    workflow: str
    step: str
    attempt: int
    module: str
    action: str
    parameters: Mapping[str, Any]
    input_refs: Mapping[str, StoredResult]
    ancestor_refs: Mapping[str, StoredResult]
    artifacts_root: str
    inline_max_bytes: int
    logs_dir: str
    database_url: str = ""
    is_fallback: bool = False
    timeout: float | None = None


@dataclass
class StepOutcome:
    """What came back from an attempt. ``value`` only travels within one process."""

    step: str
    attempt: int
    ok: bool
    started_at: float
    finished_at: float
    result: StoredResult | None = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    log_tail: str = ""
    worker: str = ""
    metrics: list[tuple[str, float, float]] = field(default_factory=list)
    timed_out: bool = False
    value: Any = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.finished_at - self.started_at)


Done = Callable[[StepOutcome], None]


class StepHandle(Protocol):
    def kill(self) -> None: ...


class Executor(Protocol):
    name: str

    def submit(self, task: StepTask, inputs: Mapping[str, Any], done: Done) -> StepHandle: ...

    def shutdown(self) -> None: ...


def execute_step(task: StepTask, preloaded: Mapping[str, Any] | None = None, worker: str = "") -> StepOutcome:
    """Run one attempt of an action and store its result; never raises."""
    from ..modules.registry import registry

    started = time.time()
    handler = run_log_handler(task.logs_dir)
    handler.start_attempt(task.run_id, task.step, task.attempt)
    metrics: list[tuple[str, float, float]] = []
    artifacts = artifact_store(task.artifacts_root, task.inline_max_bytes)
    outcome = StepOutcome(
        task.step, task.attempt, ok=False, started_at=started, finished_at=started, worker=worker
    )
    try:
        spec = registry.get(task.module, task.action)
        params = dict(task.parameters)
        if task.is_fallback and not spec.accepts_any_parameter:
            params = {k: v for k, v in params.items() if k in spec.parameter_names}
        if spec.accepts_context:
            params["ctx"] = StepContext(
                run_id=task.run_id,
                workflow=task.workflow,
                step=task.step,
                attempt=task.attempt,
                parameters=task.parameters,
                inputs=StepInputs(task.input_refs, artifacts, preloaded),
                ancestors=StepInputs(task.ancestor_refs, artifacts, preloaded),
                database_url=task.database_url,
                artifacts=StepArtifacts(artifacts, task.run_id, task.step),
                record_metric=lambda n, v, ts: metrics.append((n, v, ts)),
            )
        value = spec.func(**params)
        outcome.result = artifacts.save(task.run_id, task.step, value)
        outcome.value = value
        outcome.ok = True
    except BaseException as exc:  # SystemExit from an action is a failed step, not a dead worker
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome.error = f"{type(exc).__name__}: {exc}"
        outcome.error_type = type(exc).__name__
        outcome.traceback = traceback.format_exc()
    finally:
        outcome.finished_at = time.time()
        outcome.metrics = metrics
        outcome.log_tail = handler.end_attempt(task.run_id, task.step, task.attempt)
    return outcome


# -- threads -----------------------------------------------------------------------


class _ThreadHandle:
    def kill(self) -> None:
        """Threads cannot be killed; the engine abandons the attempt instead."""


class ThreadExecutor:
    """Daemon worker threads, created when every existing one is busy."""

    name = "thread"

    def __init__(self) -> None:
        self._work: SimpleQueue[tuple[StepTask, Mapping[str, Any], Done] | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._handle = _ThreadHandle()

    def submit(self, task: StepTask, inputs: Mapping[str, Any], done: Done) -> StepHandle:
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
            else:
                thread = threading.Thread(
                    target=self._worker, name=f"gio-worker-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._work.put((task, inputs, done))
        return self._handle

    def _worker(self) -> None:
        name = threading.current_thread().name
        while True:
            item = self._work.get()
            if item is None:
                return
            task, inputs, done = item
            done(execute_step(task, inputs, worker=name))
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        for _ in self._threads:
            self._work.put(None)
        self._threads.clear()


# -- processes ---------------------------------------------------------------------


def _child_main(conn: Any, task: StepTask) -> None:
    os.setsid()  # own process group: killing it kills whatever the action started too
    outcome = execute_step(task, None, worker=f"pid:{os.getpid()}")
    outcome.value = None
    try:
        conn.send(outcome)
    finally:
        conn.close()
        os._exit(0)


class _ProcessHandle:
    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.killed = False

    def kill(self) -> None:
        self.killed = True
        pid = self.process.pid
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class ProcessExecutor:
    """One child process per attempt; killed (with its process group) on timeout or cancel."""

    name = "process"

    def __init__(self) -> None:
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")

    def submit(self, task: StepTask, inputs: Mapping[str, Any], done: Done) -> StepHandle:
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_child_main, args=(sender, task), name=f"gio-{task.step}", daemon=True
        )
        process.start()
        sender.close()
        handle = _ProcessHandle(process)
        threading.Thread(target=self._watch, args=(task, handle, receiver, done), daemon=True).start()
        return handle

    @staticmethod
    def _watch(task: StepTask, handle: _ProcessHandle, receiver: Any, done: Done) -> None:
        started = time.time()
        outcome: StepOutcome | None = None
        try:
            outcome = receiver.recv()
        except (EOFError, OSError):
            outcome = None
        finally:
            receiver.close()
        handle.process.join()
        if outcome is None:
            code = handle.process.exitcode
            reason = "killed" if handle.killed else f"exited with code {code} without a result"
            outcome = StepOutcome(
                task.step,
                task.attempt,
                ok=False,
                started_at=started,
                finished_at=time.time(),
                error=f"WorkerLost: the process running the step {reason}",
                error_type="WorkerLost",
                worker=f"pid:{handle.process.pid}",
            )
        done(outcome)

    def shutdown(self) -> None:
        """Nothing to stop: each child ends with its attempt."""
