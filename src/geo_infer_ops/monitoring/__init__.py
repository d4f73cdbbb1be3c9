"""Monitoring and alerting: metrics, Prometheus-style alert rules, notifiers and actions.

``from geo_infer_ops.monitoring import SystemMonitor`` is all most users need; the
pieces (:mod:`.metrics`, :mod:`.collectors`, :mod:`.rules`, :mod:`.alerting`,
:mod:`.notifiers`, :mod:`.actions`, :mod:`.prometheus`) load only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .actions import ActionResult, register_action
    from .monitor import SystemMonitor

__all__ = ["ActionResult", "SystemMonitor", "register_action"]


def __getattr__(name: str) -> Any:
    if name == "SystemMonitor":
        from .monitor import SystemMonitor

        return SystemMonitor
    if name in ("register_action", "ActionResult"):
        from . import actions

        return getattr(actions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
