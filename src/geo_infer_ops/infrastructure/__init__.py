"""Infrastructure: validated specs, Terraform JSON for AWS, GCP and Azure, cost estimates.

::

    from geo_infer_ops.infrastructure import InfrastructureManager

    infra = InfrastructureManager()
    result = infra.provision_infrastructure({...})   # validate, render (and plan with terraform)
    costs = infra.analyze_costs({"time_range": "last_month"})

Imported lazily: ``import geo_infer_ops.infrastructure`` loads nothing heavy, so the CLI stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .manager import InfrastructureManager
    from .spec import InfrastructureSpec, parse_infrastructure

__all__ = ["InfrastructureManager", "InfrastructureSpec", "parse_infrastructure"]

_LAZY = {
    "InfrastructureManager": ("geo_infer_ops.infrastructure.manager", "InfrastructureManager"),
    "InfrastructureSpec": ("geo_infer_ops.infrastructure.spec", "InfrastructureSpec"),
    "parse_infrastructure": ("geo_infer_ops.infrastructure.spec", "parse_infrastructure"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)
