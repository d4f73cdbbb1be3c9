"""``WorkflowOrchestrator``: define, execute, watch, debug and retry workflows.

It owns what runs share in one process (the store, the artifact store, the
executors and the step slot pool) and hands each run to a
:class:`~.engine.RunEngine`. Every method that takes a ``workflow_id`` takes the
id of a *run*, as returned by ``execute_workflow`` (a unique prefix will do).
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._validation import validate_into
from ..artifacts import ArtifactStore, StoredResult
from ..clock import Clock
from ..errors import ConfigError, Problem, RunStateError
from ..logs import read_run_log, run_log_handler
from ..modules.registry import ActionRegistry
from ..modules.registry import registry as default_registry
from ..settings import Settings, get_settings
from ..store import Store, TransitionBatch
from .concurrency import SlotPool
from .dag import Plan
from .engine import TERMINAL, UNSUCCESSFUL, EngineServices, RunEngine, StepState, iso, new_run_id, owner_id
from .executors import ProcessExecutor, ThreadExecutor
from .overrides import apply_overrides
from .retry import RetryPolicy
from .spec import Workflow, as_workflow_dict, parse_workflow

WorkflowLike = Workflow | Mapping[str, Any] | str | Path
DebugLevel = Literal["basic", "verbose", "full"]


class RetryConfig(BaseModel):
    """``retry_config`` of :meth:`WorkflowOrchestrator.retry_workflow` (keys as in ``error_handling``)."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int | None = Field(default=None, ge=0, le=100)
    backoff_strategy: Literal["exponential", "fixed", "linear"] | None = None
    base_delay: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_delay: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    jitter: float | None = Field(default=None, ge=0, le=1, allow_inf_nan=False)


class ParallelConfig(BaseModel):
    """``enable_parallel_execution`` settings."""

    model_config = ConfigDict(extra="forbid")

    max_parallel_workflows: int = Field(default=4, ge=1, le=1000)
    resource_allocation: Literal["dynamic", "static"] = "dynamic"
    max_parallel_steps: int | None = Field(default=None, ge=1, le=10_000)


def _validated(model: type[BaseModel], data: Any, source: str) -> Any:
    problems: list[Problem] = []
    value = validate_into(model, data or {}, "", problems)
    if problems:
        raise ConfigError(problems, source)
    return value


class WorkflowOrchestrator:
    """Workflow orchestration and management."""

    def __init__(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        settings: Settings | None = None,
        store: Store | None = None,
        registry: ActionRegistry | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        overrides = dict(config or {})
        self.settings = settings or get_settings(**overrides)
        self.registry = registry or default_registry
        self.store = store or Store(self.settings.resolved_database_url)
        self.registry.load(self.settings.imports)
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.services = EngineServices(
            store=self.store,
            artifacts=ArtifactStore(self.settings.artifacts_dir, self.settings.inline_result_max_bytes),
            executors={"thread": ThreadExecutor(), "process": ProcessExecutor()},
            slots=SlotPool(self.settings.max_parallel),
            registry=self.registry,
            log_handler=run_log_handler(self.settings.logs_dir),
            clock=clock or Clock(),
            rng=rng or random.Random(),
        )
        self._parallel = ParallelConfig(max_parallel_workflows=1)
        self._run_gate = threading.BoundedSemaphore(1)
        self._run_pool: ThreadPoolExecutor | None = None
        self._active: dict[str, RunEngine] = {}
        self._active_lock = threading.Lock()

    # -- definition -------------------------------------------------------------
    def define_workflow(
        self, workflow_config: WorkflowLike, parameters: Mapping[str, Any] | None = None
    ) -> Workflow:
        """Validate a workflow (dict, or path to YAML/JSON) and store its definition; returns it."""
        workflow = self.validate_workflow(workflow_config, parameters)
        self.store.save_workflow(workflow.version, workflow.name, workflow.definition)
        return workflow

    def validate_workflow(
        self, workflow_config: WorkflowLike, parameters: Mapping[str, Any] | None = None
    ) -> Workflow:
        """Like :meth:`define_workflow`, without storing anything."""
        if isinstance(workflow_config, Workflow):
            if not parameters:
                return workflow_config
            workflow_config = workflow_config.definition
        data, source = as_workflow_dict(workflow_config)
        if parameters and isinstance(data, Mapping):
            data = apply_overrides(data, parameters, self.registry)
        return parse_workflow(data, source=source, registry=self.registry)

    # -- execution --------------------------------------------------------------
    def execute_workflow(
        self,
        workflow: WorkflowLike,
        parameters: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Run a workflow to the end and return its result (``workflow_id`` is the run's id)."""
        wf, run_id = self._new_run(workflow, parameters, run_id)
        return self._drive(wf, run_id, None, None)

    def submit_workflow(self, workflow: WorkflowLike, parameters: Mapping[str, Any] | None = None) -> Future:
        """Start a run in the background; the future's result is ``execute_workflow``'s dict.

        The run's id is known at once as ``future.run_id`` (to watch it with :meth:`monitor_workflow`).
        """
        wf, run_id = self._new_run(workflow, parameters, None)
        if self._run_pool is None:
            self._run_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="gio-run")
        future = self._run_pool.submit(self._drive, wf, run_id, None, None)
        future.run_id = run_id  # type: ignore[attr-defined]
        return future

    def _new_run(
        self, workflow: WorkflowLike, parameters: Mapping[str, Any] | None, run_id: str | None
    ) -> tuple[Workflow, str]:
        """Define the workflow and store a new pending run of it."""
        wf = self.define_workflow(workflow, parameters)
        run_id = run_id or new_run_id()
        steps = [(step.name, step.module, step.action) for step in wf.steps]
        self.store.create_run(
            run_id,
            wf.version,
            wf.name,
            steps,
            params=dict(parameters or {}),
            owner=owner_id(),
            now=self.services.clock.time(),
        )
        return wf, run_id

    def _drive(
        self,
        workflow: Workflow,
        run_id: str,
        initial: Mapping[str, StepState] | None,
        policy: RetryPolicy | None,
    ) -> dict[str, Any]:
        with self._run_gate:
            engine = RunEngine(self.services, workflow, run_id, initial=initial, retry_policy=policy)
            if self._parallel.resource_allocation == "static" and self._parallel.max_parallel_workflows > 1:
                share = max(1, self.services.slots.capacity // self._parallel.max_parallel_workflows)
                engine._local_limit = min(engine._local_limit, share)
            with self._active_lock:
                self._active[run_id] = engine
            try:
                engine.run()
            finally:
                with self._active_lock:
                    self._active.pop(run_id, None)
            return self._result(engine)

    def _result(self, engine: RunEngine) -> dict[str, Any]:
        """The run's result from the engine's own state (the store holds the same, just committed)."""
        outputs: dict[str, Any] = {}
        for name, state in engine.states.items():
            if state.status == "succeeded":
                outputs[name] = engine.values[name] if name in engine.values else self._load(state.result)
        return {
            "workflow_id": engine.run_id,
            "run_id": engine.run_id,
            "name": engine.workflow.name,
            "version": engine.workflow.version,
            "status": engine.status,
            "steps": {
                name: {
                    "status": s.status,
                    "attempts": s.attempts,
                    "duration_s": s.duration_s,
                    "error": s.error,
                    "used_fallback": s.used_fallback,
                }
                for name, s in engine.states.items()
            },
            "outputs": outputs,
            "started_at": iso(engine.started_at),
            "finished_at": iso(engine.finished_at),
            "duration_s": (engine.finished_at - engine.started_at)
            if engine.finished_at and engine.started_at
            else None,
            "error": engine.error,
        }

    def _load(self, result: StoredResult | None) -> Any:
        return self.services.artifacts.load(result) if result is not None else None

    def cancel_workflow(self, workflow_id: str, reason: str = "cancelled by request") -> bool:
        """Cancel a run executing in this process; returns False if it is not running here."""
        run_id = self.store.resolve_run_id(workflow_id)
        with self._active_lock:
            engine = self._active.get(run_id)
        if engine is None:
            return False
        engine.cancel(reason)
        return True

    # -- continuing a run ---------------------------------------------------------
    def retry_workflow(
        self, workflow_id: str, retry_config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Continue the same run: failed, timed-out, upstream-failed and unfinished steps run again."""
        cfg = _validated(RetryConfig, retry_config, "retry_config")
        return self._continue(workflow_id, rerun=UNSUCCESSFUL, retry_config=cfg)

    def resume_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Continue a run whose process died: only steps that had not finished run."""
        return self._continue(workflow_id, rerun=frozenset(), retry_config=None)

    def _continue(
        self, workflow_id: str, rerun: frozenset[str], retry_config: RetryConfig | None
    ) -> dict[str, Any]:
        run_id = self.store.resolve_run_id(workflow_id)
        run = self.store.get_run(run_id)
        self._check_not_running_elsewhere(run)
        workflow = parse_workflow(
            self.store.get_workflow_definition(run["workflow_id"]),
            registry=self.registry,
            source=f"run {run_id}",
        )
        initial = self._states_from_store(run_id, rerun)
        policy = None
        if retry_config is not None:
            base = workflow.error_handling.retry_policy()
            policy = base.with_overrides(**retry_config.model_dump())
        allowed = ["failed", "cancelled", "running", "pending", "succeeded"]
        if not self.store.claim_run(run_id, owner_id(), allowed):
            raise RunStateError(
                f"run {run_id} could not be claimed; it may have been started by another process"
            )
        batch = TransitionBatch()
        batch.event(
            run_id,
            "run_retried" if rerun else "run_resumed",
            f"retry with {retry_config.model_dump(exclude_none=True)}" if retry_config else "resumed",
        )
        batch.update_run(
            run_id, retry_config=retry_config.model_dump_json(exclude_none=True) if retry_config else None
        )
        self._mark_lost_attempts(run_id, batch)
        self.store.apply(batch)
        return self._drive(workflow, run_id, initial, policy)

    def _check_not_running_elsewhere(self, run: Mapping[str, Any]) -> None:
        if run["status"] != "running":
            return
        with self._active_lock:
            if run["id"] in self._active:
                raise RunStateError(f"run {run['id']} is executing in this process right now")
        host, _, pid = (run.get("owner") or "").rpartition(":")
        if (
            host == owner_id().rpartition(":")[0]
            and pid.isdigit()
            and int(pid) != os.getpid()
            and _alive(int(pid))
        ):
            raise RunStateError(
                f"run {run['id']} is being executed by process {pid} on this machine; "
                "wait for it, or stop that process first"
            )

    def _states_from_store(self, run_id: str, rerun: frozenset[str]) -> dict[str, StepState]:
        states: dict[str, StepState] = {}
        artifacts = {a["id"]: a for a in self.store.get_artifacts(run_id)}
        for row in self.store.get_steps(run_id):
            status = row["status"]
            keep = status == "succeeded" or (status in TERMINAL and status not in rerun)
            state = StepState(
                row["step"],
                status=status if keep else "pending",
                attempts=row["attempts"],
                used_fallback=bool(row["used_fallback"]) if keep else False,
                started_at=row["started_at"] if keep else None,
                finished_at=row["finished_at"] if keep else None,
                duration_s=row["duration_s"] if keep else None,
                error=row["error"] if keep else None,
            )
            if status == "succeeded":
                art = artifacts.get(row["artifact_id"]) if row["artifact_id"] else None
                state.result = (
                    StoredResult(
                        artifact_id=art["id"],
                        format=art["format"],
                        path=art["path"],
                        size_bytes=art["size_bytes"],
                    )
                    if art
                    else StoredResult(inline=row["result"])
                )
            states[row["step"]] = state
        return states

    def _mark_lost_attempts(self, run_id: str, batch: TransitionBatch) -> None:
        now = self.services.clock.time()
        for a in self.store.get_attempts(run_id):
            if a["status"] == "running":
                batch.attempt_ends.append(
                    {
                        "run_id": run_id,
                        "step": a["step"],
                        "attempt": a["attempt"],
                        "status": "lost",
                        "finished_at": now,
                        "duration_s": now - a["started_at"],
                        "error": "WorkerLost: the process executing this attempt stopped before it finished",
                        "error_type": "WorkerLost",
                        "traceback": None,
                        "log_tail": None,
                        "worker": a["worker"],
                    }
                )

    # -- watching and debugging --------------------------------------------------
    def monitor_workflow(self, workflow_id: str) -> dict[str, Any]:
        """Live state of a run: counts by status, percent done, running steps, elapsed time and ETA."""
        run = self.store.get_run(workflow_id)
        steps = self.store.get_steps(run["id"])
        counts: dict[str, int] = {}
        for row in steps:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
        total = len(steps)
        done = sum(n for status, n in counts.items() if status in TERMINAL)
        now = self.services.clock.time()
        elapsed = ((run["finished_at"] or now) - run["started_at"]) if run["started_at"] else 0.0
        return {
            "workflow_id": run["id"],
            "name": run["name"],
            "status": run["status"],
            "progress": {
                "total": total,
                "finished": done,
                "percent": round(100.0 * done / total, 1) if total else 100.0,
                "by_status": counts,
            },
            "running_steps": [r["step"] for r in steps if r["status"] == "running"],
            "steps": {
                r["step"]: {
                    "status": r["status"],
                    "attempts": r["attempts"],
                    "duration_s": r["duration_s"],
                    "error": r["error"],
                }
                for r in steps
            },
            "elapsed_s": elapsed,
            "eta_s": self._eta(run, steps, now),
            "started_at": iso(run["started_at"]),
            "finished_at": iso(run["finished_at"]),
        }

    def _eta(self, run: Mapping[str, Any], steps: list[dict[str, Any]], now: float) -> float | None:
        """Remaining time along the critical path of unfinished steps, from past runs' median durations."""
        if run["status"] in TERMINAL:
            return 0.0
        history = self.store.step_durations(run["name"])
        if not history:
            return None
        remaining: dict[str, float] = {}
        for row in steps:
            if row["status"] in TERMINAL:
                continue
            expected = history.get(row["step"], 0.0)
            if row["status"] == "running" and row["started_at"]:
                expected = max(0.0, expected - (now - row["started_at"]))
            remaining[row["step"]] = expected
        if not remaining:
            return 0.0
        definition = self.store.get_workflow_definition(run["workflow_id"])
        deps = {
            s["name"]: [d for d in s.get("dependencies", []) if d in remaining]
            for s in definition["steps"]
            if s["name"] in remaining
        }
        _, total = Plan.from_edges(deps).critical_path(remaining)
        return total

    def debug_workflow_execution(self, workflow_id: str, debug_level: DebugLevel = "basic") -> dict[str, Any]:
        """Every attempt with error and timings ((verbose) traceback, log tail), plus the critical path."""
        if debug_level not in ("basic", "verbose", "full"):
            raise ConfigError(
                [Problem("debug_level", f"unknown level {debug_level!r}", "use 'basic', 'verbose' or 'full'")]
            )
        run = self.store.get_run(workflow_id)
        run_id = run["id"]
        steps = self.store.get_steps(run_id)
        attempts = self.store.get_attempts(run_id)
        verbose = debug_level != "basic"
        by_step: dict[str, list[dict[str, Any]]] = {}
        for a in attempts:
            entry = {
                k: a[k]
                for k in (
                    "attempt",
                    "action",
                    "status",
                    "duration_s",
                    "error",
                    "error_type",
                    "executor",
                    "worker",
                )
            }
            entry["started_at"], entry["finished_at"] = iso(a["started_at"]), iso(a["finished_at"])
            if verbose:
                entry["traceback"] = a["traceback"]
                entry["log_tail"] = a["log_tail"]
            by_step.setdefault(a["step"], []).append(entry)
        definition = self.store.get_workflow_definition(run["workflow_id"])
        plan = Plan.from_edges({s["name"]: s.get("dependencies", []) for s in definition["steps"]})
        path, length = plan.critical_path({r["step"]: r["duration_s"] or 0.0 for r in steps})
        out: dict[str, Any] = {
            "workflow_id": run_id,
            "name": run["name"],
            "status": run["status"],
            "error": run["error"],
            "debug_level": debug_level,
            "started_at": iso(run["started_at"]),
            "finished_at": iso(run["finished_at"]),
            "failed_steps": [r["step"] for r in steps if r["status"] in ("failed", "timed_out")],
            "steps": [
                {
                    "name": r["step"],
                    "action": f"{r['module']}.{r['action']}",
                    "status": r["status"],
                    "attempts": by_step.get(r["step"], []),
                    "duration_s": r["duration_s"],
                    "error": r["error"],
                    "used_fallback": bool(r["used_fallback"]),
                }
                for r in steps
            ],
            "critical_path": {"steps": path, "duration_s": length},
            "log_file": str(self.services.log_handler.path_for(run_id)),
        }
        if verbose:
            out["events"] = [
                {"ts": iso(e["ts"]), "kind": e["kind"], "step": e["step"], "message": e["message"]}
                for e in self.store.get_events(run_id)
            ]
            out["definition"] = definition
            out["metrics"] = [
                {k: m[k] for k in ("step", "attempt", "name", "value")}
                for m in self.store.get_metrics(run_id)
            ]
        if debug_level == "full":
            out["logs"] = read_run_log(self.services.log_handler.path_for(run_id))
        return out

    def handle_workflow_errors(self, workflow_id: str, error: BaseException | str) -> dict[str, Any]:
        """Record an error against a run and apply the workflow's ``error_handling`` policy to it.

        A failed run whose workflow has ``retry_failed_steps`` is retried (same run, failed steps
        only, with the workflow's backoff); an error of a type listed in ``non_retryable_errors``,
        or a workflow without retries, is recorded and reported with what to do next.
        """
        run = self.store.get_run(workflow_id)
        run_id = run["id"]
        message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
        error_type = type(error).__name__ if isinstance(error, BaseException) else None
        batch = TransitionBatch()
        batch.event(run_id, "error_reported", message, ts=self.services.clock.time())
        self.store.apply(batch)
        workflow = parse_workflow(
            self.store.get_workflow_definition(run["workflow_id"]), registry=self.registry
        )
        eh = workflow.error_handling
        failed = [r["step"] for r in self.store.get_steps(run_id) if r["status"] in UNSUCCESSFUL]
        out: dict[str, Any] = {
            "workflow_id": run_id,
            "error": message,
            "failed_steps": failed,
            "result": None,
        }
        if error_type and error_type in eh.non_retryable_errors:
            out.update(
                action="failed", reason=f"{error_type} is listed in error_handling.non_retryable_errors"
            )
        elif run["status"] == "running":
            out.update(action="recorded", reason="the run is still executing; its own retry policy applies")
        elif not failed:
            out.update(action="recorded", reason="no step of the run failed")
        elif eh.retry_failed_steps:
            out.update(
                action="retried",
                reason=f"error_handling.retry_failed_steps with max_retries={eh.max_retries}",
            )
            out["result"] = self.retry_workflow(run_id, {"max_retries": eh.max_retries})
        else:
            out.update(
                action="reported",
                reason="the workflow does not retry failed steps; retry it with "
                f"retry_workflow({run_id!r}, {{'max_retries': 3}}) or `geo-infer-ops retry {run_id[:8]}`",
            )
        return out

    # -- concurrency ------------------------------------------------------------
    def enable_parallel_execution(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Let up to ``max_parallel_workflows`` runs execute at once, sharing the step slots fairly."""
        cfg = _validated(ParallelConfig, config, "enable_parallel_execution")
        self._parallel = cfg
        self._run_gate = threading.BoundedSemaphore(cfg.max_parallel_workflows)
        if cfg.max_parallel_steps:
            self.services.slots.resize(cfg.max_parallel_steps)
        return {
            "max_parallel_workflows": cfg.max_parallel_workflows,
            "resource_allocation": cfg.resource_allocation,
            "max_parallel_steps": self.services.slots.capacity,
        }

    # -- history ----------------------------------------------------------------
    def list_runs(
        self, limit: int = 50, name: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        return [_public_run(r) for r in self.store.list_runs(limit, name, status)]

    def get_run(self, workflow_id: str) -> dict[str, Any]:
        """A stored run with its steps (what ``geo-infer-ops show`` prints)."""
        run = self.store.get_run(workflow_id)
        out = _public_run(run)
        out["steps"] = {
            r["step"]: {
                "status": r["status"],
                "attempts": r["attempts"],
                "duration_s": r["duration_s"],
                "error": r["error"],
                "used_fallback": bool(r["used_fallback"]),
                "action": f"{r['module']}.{r['action']}",
            }
            for r in self.store.get_steps(run["id"])
        }
        return out

    def get_logs(self, workflow_id: str, step: str | None = None) -> list[dict[str, Any]]:
        run_id = self.store.resolve_run_id(workflow_id)
        return read_run_log(self.services.log_handler.path_for(run_id), step)

    def close(self) -> None:
        if self._run_pool is not None:
            self._run_pool.shutdown(wait=True)
        self.services.executors["thread"].shutdown()


def _public_run(run: Mapping[str, Any]) -> dict[str, Any]:
    duration = run["finished_at"] - run["started_at"] if run["finished_at"] and run["started_at"] else None
    return {
        "workflow_id": run["id"],
        "name": run["name"],
        "status": run["status"],
        "version": run["workflow_id"],
        "started_at": iso(run["started_at"]),
        "finished_at": iso(run["finished_at"]),
        "duration_s": duration,
        "error": run["error"],
        "params": run["params"],
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
