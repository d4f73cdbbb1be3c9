"""Workflow orchestration: the spec, the DAG plan, the engine and the orchestrator."""

from .orchestrator import WorkflowOrchestrator
from .spec import Step, Workflow, parse_workflow

__all__ = ["Step", "Workflow", "WorkflowOrchestrator", "parse_workflow"]
