"""What a firing alert does, besides being notified: registered, testable action objects.

Built in:

* ``alert`` — notify only (every firing alert is notified anyway; see docs/monitoring.md);
* ``scale_up`` / ``scale`` / ``restart`` — ask the deployment manager (its public
  ``scale`` / ``restart``) for one more replica of the alert's module, or a restart;
  while no deployment exists the outcome is ``skipped`` with the reason;
* ``cleanup`` — retention: delete runs (rows and artifact files) that finished more than
  ``retention_days`` ago (default 30), never a pending or running run, apply the metric
  store's retention, and report the bytes freed;
* ``optimize`` / ``retrain`` / ``improve`` / ``maintain`` — run the workflow named by
  the rule's ``workflow`` (a stored workflow name or a YAML/JSON file) with
  :class:`~geo_infer_ops.orchestration.WorkflowOrchestrator`, or record a recommendation.

Users add their own with :func:`register_action` (a callable ``fn(ctx) -> ActionResult``
or a subclass of :class:`Action`).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GeoInferOpsError

if TYPE_CHECKING:
    from .monitor import SystemMonitor
    from .rules import Rule, Transition


@dataclass(frozen=True)
class ActionResult:
    status: str  # succeeded | failed | skipped
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class ActionContext:
    monitor: SystemMonitor
    rule: Rule
    transition: Transition
    now: float

    @property
    def labels(self) -> dict[str, str]:
        return self.transition.labels

    @property
    def module(self) -> str | None:
        return self.labels.get("module")


class Action(ABC):
    """A named thing a firing alert does. ``run`` returns an :class:`ActionResult` (raising = failed)."""

    name = "action"

    @abstractmethod
    def run(self, ctx: ActionContext) -> ActionResult:
        """Implemented by every subclass."""


class FunctionAction(Action):
    def __init__(self, name: str, fn: Callable[[ActionContext], ActionResult | str | None]) -> None:
        self.name, self.fn = name, fn

    def run(self, ctx: ActionContext) -> ActionResult:
        out = self.fn(ctx)
        if isinstance(out, ActionResult):
            return out
        return ActionResult("succeeded", "" if out is None else str(out))


class AlertAction(Action):
    name = "alert"

    def run(self, ctx: ActionContext) -> ActionResult:
        kinds = sorted(ctx.monitor.notifiers) or ["log"]
        return ActionResult("succeeded", f"notified through the alert pipeline ({', '.join(kinds)})")


class DeploymentAction(Action):
    """scale_up / scale / restart through ``DeploymentManager``'s public methods."""

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, ctx: ActionContext) -> ActionResult:
        manager = ctx.monitor.deployment_manager()
        if manager is None:
            return ActionResult("skipped", "no deployment exists (geo_infer_ops.deployment is not available)")
        lister = getattr(manager, "list_deployments", None)
        if callable(lister):
            try:
                deployments = lister()
            except Exception as exc:
                return ActionResult("failed", f"could not list deployments: {type(exc).__name__}: {exc}")
            if not deployments:
                return ActionResult("skipped", "no deployment exists")
        module = ctx.module or ctx.rule.param("module")
        reason = f"alert {ctx.rule.name}"
        try:
            if self.name == "restart":
                fn = getattr(manager, "restart", None)
                if fn is None:
                    return ActionResult("skipped", "the deployment manager has no restart()")
                out = fn({"module": module, "reason": reason}) if module else fn({"reason": reason})
            else:
                replicas = ctx.rule.param("replicas")
                request: dict[str, Any] = {"reason": reason}
                if module:
                    request["module"] = module
                if replicas is not None:
                    request["replicas"] = int(replicas)
                else:
                    request["replicas_delta"] = 1
                out = manager.scale(request)
        except (LookupError, GeoInferOpsError) as exc:
            return ActionResult("skipped", f"no deployment exists: {exc}")
        except Exception as exc:
            return ActionResult("failed", f"{type(exc).__name__}: {exc}")
        return ActionResult(
            "succeeded",
            f"{self.name} requested for {module or 'all modules'}",
            out if isinstance(out, Mapping) else {},
        )


class CleanupAction(Action):
    name = "cleanup"

    def run(self, ctx: ActionContext) -> ActionResult:
        days = float(ctx.rule.param("retention_days", 30))
        report = cleanup_old_runs(ctx.monitor, older_than_s=days * 86400, now=ctx.now)
        return ActionResult(
            "succeeded",
            f"removed {report['runs_removed']} run(s) older than {days:g} days, "
            f"freed {report['bytes_freed']} bytes",
            report,
        )


def cleanup_old_runs(monitor: SystemMonitor, older_than_s: float, now: float) -> dict[str, Any]:
    """Delete finished runs older than ``older_than_s`` (rows and artifacts); never a live run."""
    from sqlalchemy import delete, select

    from ..store import tables as t

    store = monitor.store
    cutoff = now - older_than_s
    live_statuses = ("pending", "running")
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.runs.c.id, t.runs.c.status, t.runs.c.finished_at, t.runs.c.created_at).where(
                t.runs.c.status.not_in(live_statuses)
            )
        ).all()
    old = [r.id for r in rows if (r.finished_at or r.created_at or now) < cutoff]
    live = set(monitor.live_run_ids())
    old = [rid for rid in old if rid not in live]
    artifacts_root = monitor.settings.artifacts_dir
    freed = 0
    for rid in old:
        folder = artifacts_root / rid
        if folder.exists():
            freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    if old:
        with store.engine.begin() as conn:
            for table in (t.step_metrics, t.artifacts, t.events, t.attempts, t.step_runs):
                conn.execute(delete(table).where(table.c.run_id.in_(old)))
            conn.execute(delete(t.runs).where(t.runs.c.id.in_(old)))
    retention: dict[str, int] = {}
    metrics = monitor.metrics
    if metrics is not None and hasattr(metrics, "apply_retention"):
        try:
            retention = dict(metrics.apply_retention(now=now))
        except Exception as exc:  # the metric store's own problem must not hide what was freed
            retention = {"error": str(exc)}  # type: ignore[dict-item]
    return {
        "runs_removed": len(old),
        "run_ids": old,
        "bytes_freed": freed,
        "metric_retention": retention,
        "kept_live_runs": sorted(live),
    }


class WorkflowAction(Action):
    """optimize / retrain / improve / maintain: run the rule's workflow, or record a recommendation."""

    RECOMMENDATIONS = {
        "optimize": "look at the slowest steps (geo-infer-ops show RUN) and their parameters",
        "retrain": "retrain the model on recent data; set 'workflow' on the rule to do it automatically",
        "improve": "review recent runs and user feedback; set 'workflow' on the rule to automate a fix",
        "maintain": "schedule maintenance: check failed health checks and restart unhealthy services",
    }

    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, ctx: ActionContext) -> ActionResult:
        name = ctx.rule.workflow
        if not name:
            text = f"{ctx.rule.name}: {self.RECOMMENDATIONS.get(self.name, 'review the alert')}"
            return ActionResult("succeeded", f"recommendation recorded: {text}", {"recommendation": text})
        orchestrator = ctx.monitor.orchestrator()
        definition: Any = name
        if not Path(name).suffix:
            definition = latest_workflow_definition(ctx.monitor.store, name)
            if definition is None:
                return ActionResult("failed", f"no workflow named {name!r} is stored; define it first")
        result = orchestrator.execute_workflow(definition)
        status = "succeeded" if result["status"] == "succeeded" else "failed"
        return ActionResult(
            status,
            f"ran workflow {name} as run {result['workflow_id']}: {result['status']}",
            {"workflow_id": result["workflow_id"], "status": result["status"]},
        )


def latest_workflow_definition(store: Any, name: str) -> dict[str, Any] | None:
    from sqlalchemy import select

    from ..store import tables as t

    with store.engine.connect() as conn:
        row = conn.execute(
            select(t.workflows.c.definition)
            .where(t.workflows.c.name == name)
            .order_by(t.workflows.c.created_at.desc())
            .limit(1)
        ).first()
    return json.loads(row[0]) if row else None


class ActionRegistry:
    def __init__(self) -> None:
        self._actions: dict[str, Action] = {}

    def register(self, name: str, action: Action | Callable[[ActionContext], Any] | None = None) -> Any:
        """``register('page_oncall', fn)`` or as a decorator ``@register('page_oncall')``."""

        def add(obj: Any) -> Any:
            if isinstance(obj, type) and issubclass(obj, Action):
                inst = obj()
                inst.name = name
                self._actions[name] = inst
            elif isinstance(obj, Action):
                self._actions[name] = obj
            elif callable(obj):
                self._actions[name] = FunctionAction(name, obj)
            else:
                raise TypeError(f"cannot register {obj!r} as action {name!r}")
            return obj

        return add if action is None else add(action)

    def unregister(self, name: str) -> None:
        self._actions.pop(name, None)

    def get(self, name: str) -> Action:
        return self._actions[name]

    def names(self) -> list[str]:
        return sorted(self._actions)

    def __contains__(self, name: object) -> bool:
        return name in self._actions


def default_actions() -> ActionRegistry:
    reg = ActionRegistry()
    reg.register("alert", AlertAction())
    for name in ("scale_up", "scale", "restart"):
        reg.register(name, DeploymentAction(name))
    reg.register("cleanup", CleanupAction())
    for name in ("optimize", "retrain", "improve", "maintain"):
        reg.register(name, WorkflowAction(name))
    return reg


actions = default_actions()
register_action = actions.register
