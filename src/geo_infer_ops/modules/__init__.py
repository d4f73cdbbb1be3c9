"""Geospatial modules and the action registry that the engine looks up."""

from .registry import ActionRegistry, ActionSpec, action, registry

__all__ = ["ActionRegistry", "ActionSpec", "action", "registry"]
