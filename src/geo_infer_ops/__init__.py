"""geo-infer-ops: run, watch, deploy and cost the operations of geospatial analysis.

The public surface is small and imported lazily, so ``import geo_infer_ops`` is fast
and the geospatial libraries load only when a geospatial action runs::

    from geo_infer_ops import OperationsManager, action
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_attributes
from .errors import GeoInferOpsError, WorkflowSpecError
from .modules.registry import action

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .manager import OperationsManager
    from .orchestration import Workflow, WorkflowOrchestrator

__all__ = [
    "GeoInferOpsError",
    "OperationsManager",
    "Workflow",
    "WorkflowOrchestrator",
    "WorkflowSpecError",
    "__version__",
    "action",
]

_LAZY = {
    "OperationsManager": ("geo_infer_ops.manager", "OperationsManager"),
    "WorkflowOrchestrator": ("geo_infer_ops.orchestration", "WorkflowOrchestrator"),
    "Workflow": ("geo_infer_ops.orchestration", "Workflow"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)
