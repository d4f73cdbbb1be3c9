"""``OperationsManager``: one object in front of the managers, as in the user's description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .orchestration import Workflow, WorkflowOrchestrator
from .orchestration.orchestrator import WorkflowLike


class OperationsManager:
    """The main operations management class.

    ``config`` takes the settings' keys (``home``, ``database_url``, ``max_parallel``,
    ``imports``), overriding the ``GEO_INFER_OPS_*`` environment.
    """

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config = dict(config or {})
        self.orchestrator = WorkflowOrchestrator(self.config)
        self.settings = self.orchestrator.settings

    def define_workflow(self, workflow_config: WorkflowLike) -> Workflow:
        """Define a new workflow (dict or YAML/JSON path); raises WorkflowSpecError listing every problem."""
        return self.orchestrator.define_workflow(workflow_config)

    def execute_workflow(
        self, workflow: WorkflowLike, parameters: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Execute a workflow; returns ``workflow_id``, ``status``, ``steps``, ``outputs`` and times."""
        return self.orchestrator.execute_workflow(workflow, parameters)

    def monitor_workflow(self, workflow_id: str) -> dict[str, Any]:
        return self.orchestrator.monitor_workflow(workflow_id)

    def retry_workflow(
        self, workflow_id: str, retry_config: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.orchestrator.retry_workflow(workflow_id, retry_config)

    def debug_workflow_execution(self, workflow_id: str, debug_level: str = "basic") -> dict[str, Any]:
        return self.orchestrator.debug_workflow_execution(workflow_id, debug_level)  # type: ignore[arg-type]

    def close(self) -> None:
        self.orchestrator.close()
