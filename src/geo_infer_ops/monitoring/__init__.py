"""Monitoring and alerting: metrics, Prometheus-style alert rules, notifiers and actions.

``from geo_infer_ops.monitoring import SystemMonitor`` is all most users need; the
pieces (:mod:`.metrics`, :mod:`.collectors`, :mod:`.rules`, :mod:`.alerting`,
:mod:`.notifiers`, :mod:`.actions`, :mod:`.prometheus`) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

if TYPE_CHECKING:
    from .actions import ActionResult, register_action
    from .monitor import SystemMonitor

__all__ = ["ActionResult", "SystemMonitor", "register_action"]


__getattr__ = lazy_attributes(
    __name__,
    {
        "SystemMonitor": ("geo_infer_ops.monitoring.monitor", "SystemMonitor"),
        "register_action": ("geo_infer_ops.monitoring.actions", "register_action"),
        "ActionResult": ("geo_infer_ops.monitoring.actions", "ActionResult"),
    },
)
