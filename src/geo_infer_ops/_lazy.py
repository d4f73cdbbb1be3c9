"""Module attributes imported on first use, so that importing a package stays fast."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, tuple[str, str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``names`` (attribute -> (module, attribute)) on demand."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attr = names[name]
        value = getattr(importlib.import_module(module), attr)
        importlib.import_module(package).__dict__[name] = value
        return value

    return __getattr__
