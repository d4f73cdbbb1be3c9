"""``MODULE.action`` -> callable.

Actions are plain functions. Their keyword parameters are a step's ``parameters``;
a parameter named ``ctx`` receives the :class:`~geo_infer_ops.orchestration.context.StepContext`.
They are registered three ways, looked up in this order of loading:

1. the built-in geospatial modules (imported lazily, on the first look-up);
2. the entry-point group ``geo_infer_ops.modules`` of installed packages;
3. Python modules named in the setting ``imports`` or passed with ``--import``.

Importing a module only registers its functions: heavy libraries are imported
inside the action bodies, so that ``import geo_infer_ops`` stays fast.
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import ActionNotFoundError, ActionRegistrationError

F = TypeVar("F", bound=Callable[..., Any])

ENTRY_POINT_GROUP = "geo_infer_ops.modules"
CONTEXT_PARAMETER = "ctx"

# Built-in modules: every public file of this package except the registry itself,
# imported on the first look-up. Each file registers its actions when imported.
BUILTIN_PACKAGE = "geo_infer_ops.modules"
_NOT_ACTION_MODULES = frozenset({"registry"})


def builtin_module_names() -> list[str]:
    import pkgutil
    from pathlib import Path

    here = str(Path(__file__).parent)
    return [
        f"{BUILTIN_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules([here])
        if not info.name.startswith("_") and info.name not in _NOT_ACTION_MODULES
    ]


@dataclass(frozen=True)
class ActionParameter:
    """One keyword parameter of an action, as shown by ``geo-infer-ops modules``."""

    name: str
    annotation: str
    required: bool
    default: Any = None


@dataclass(frozen=True)
class ActionSpec:
    """A registered action and what the engine needs to know to run it."""

    module: str
    name: str
    func: Callable[..., Any]
    cpu_bound: bool = False
    description: str = ""
    parameters: tuple[ActionParameter, ...] = field(default=())
    accepts_context: bool = False
    accepts_any_parameter: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.module}.{self.name}"

    @property
    def parameter_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.parameters)

    def check_parameters(self, given: Iterable[str]) -> tuple[list[str], list[str]]:
        """Return (unknown, missing) parameter names for a step's ``parameters`` keys."""
        given = set(given)
        unknown = [] if self.accepts_any_parameter else sorted(given - self.parameter_names)
        missing = [p.name for p in self.parameters if p.required and p.name not in given]
        return unknown, missing


def _describe(func: Callable[..., Any]) -> tuple[tuple[ActionParameter, ...], bool, bool]:
    params: list[ActionParameter] = []
    accepts_ctx = accepts_any = False
    for p in inspect.signature(func).parameters.values():
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_any = True
            continue
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            raise ActionRegistrationError(
                f"action {func.__qualname__}: parameter {p.name!r} is positional-only or *args; "
                "actions are called with keyword arguments only"
            )
        if p.name == CONTEXT_PARAMETER:
            accepts_ctx = True
            continue
        annotation = p.annotation
        if annotation is inspect.Parameter.empty:
            text = "any"
        elif isinstance(annotation, str):
            text = annotation
        else:
            text = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        required = p.default is inspect.Parameter.empty
        params.append(ActionParameter(p.name, text, required, None if required else p.default))
    return tuple(params), accepts_ctx, accepts_any


def _import_file(path: str) -> None:
    """Import a module from a file path, under a name derived from the file, once."""
    import importlib.util
    import sys
    from pathlib import Path

    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    import hashlib

    digest = hashlib.sha1(str(file).encode()).hexdigest()[:8]
    name = "geo_infer_ops_user_" + "".join(c if c.isalnum() else "_" for c in file.stem) + "_" + digest
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise


class ActionRegistry:
    """Thread-safe map of ``(MODULE, action)`` to :class:`ActionSpec`."""

    def __init__(self) -> None:
        self._actions: dict[tuple[str, str], ActionSpec] = {}
        self._lock = threading.RLock()
        self._loaded_sources: set[str] = set()
        self._loading_builtins = False

    # -- registration -------------------------------------------------------
    def register(
        self,
        module: str,
        name: str,
        func: Callable[..., Any],
        *,
        override: bool = False,
        cpu_bound: bool = False,
    ) -> ActionSpec:
        if not self._loading_builtins:
            self.load_builtins()  # so that replacing a built-in always needs override=True
        module = module.strip().upper()
        if not module or not name:
            raise ActionRegistrationError(
                "an action needs a non-empty module and name, e.g. @action('SPACE', 'x')"
            )
        params, accepts_ctx, accepts_any = _describe(func)
        doc = inspect.getdoc(func) or ""
        spec = ActionSpec(module, name, func, cpu_bound, doc, params, accepts_ctx, accepts_any)
        with self._lock:
            existing = self._actions.get((module, name))
            if existing is not None and not override and existing.func is not func:
                where = f"{existing.func.__module__}.{existing.func.__qualname__}"
                raise ActionRegistrationError(
                    f"{module}.{name} is already registered by {where}; pass override=True to replace it"
                )
            self._actions[(module, name)] = spec
        return spec

    def action(
        self, module: str, name: str | None = None, *, override: bool = False, cpu_bound: bool = False
    ) -> Callable[[F], F]:
        """Decorator: ``@action("SPACE", "analyze_spatial_patterns")``."""

        def decorate(func: F) -> F:
            self.register(module, name or func.__name__, func, override=override, cpu_bound=cpu_bound)
            return func

        return decorate

    def unregister(self, module: str, name: str) -> None:
        with self._lock:
            self._actions.pop((module.upper(), name), None)

    # -- loading ------------------------------------------------------------
    def load_builtins(self) -> None:
        if "builtins" in self._loaded_sources or self._loading_builtins:
            return
        self._loading_builtins = True
        try:
            for name in builtin_module_names():
                self.import_module(name)
        finally:
            self._loading_builtins = False
        self._loaded_sources.add("builtins")

    def load_entry_points(self) -> None:
        if "entry-points" in self._loaded_sources:
            return
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plug-in must not break everything else
                raise ActionRegistrationError(
                    f"entry point {ep.name!r} ({ep.value}) in group {ENTRY_POINT_GROUP} failed to load: {exc}"
                ) from exc
            if callable(loaded) and not inspect.ismodule(loaded):
                loaded(self)
        self._loaded_sources.add("entry-points")

    def import_module(self, name: str) -> None:
        """Import a Python module (dotted name, or a path to a ``.py`` file) for the actions it registers."""
        if name in self._loaded_sources:
            return
        try:
            if name.endswith(".py"):
                _import_file(name)
            else:
                importlib.import_module(name)
        except (ImportError, FileNotFoundError) as exc:
            raise ActionRegistrationError(
                f"cannot import action module {name!r}: {exc}; check the name in --import / "
                "GEO_INFER_OPS_IMPORTS and that it is on PYTHONPATH"
            ) from exc
        self._loaded_sources.add(name)

    def load(self, imports: Iterable[str] = ()) -> None:
        """Load built-ins, entry points and the given modules (idempotent)."""
        self.load_builtins()
        self.load_entry_points()
        for name in imports:
            self.import_module(name)

    # -- look-up ------------------------------------------------------------
    def find(self, module: str, name: str) -> ActionSpec | None:
        key = (module.upper(), name)
        spec = self._actions.get(key)
        if spec is None:
            self.load()
            spec = self._actions.get(key)
        return spec

    def get(self, module: str, name: str) -> ActionSpec:
        spec = self.find(module, name)
        if spec is None:
            raise ActionNotFoundError(
                f"{module}.{name} is not a registered action. {self.suggest(module, name)}"
            )
        return spec

    def suggest(self, module: str, name: str) -> str:
        """A 'did you mean' hint for an unknown action."""
        import difflib

        names = [spec.qualified_name for spec in self.all()]
        close = difflib.get_close_matches(f"{module.upper()}.{name}", names, n=3, cutoff=0.6)
        if close:
            return "Did you mean " + " or ".join(close) + "?"
        in_module = sorted(n for m, n in self._actions if m == module.upper())
        if in_module:
            return f"{module.upper()} has: {', '.join(in_module)}."
        return (
            "Register it with @action(MODULE, NAME) and import its module "
            "(--import or GEO_INFER_OPS_IMPORTS)."
        )

    def all(self) -> list[ActionSpec]:
        with self._lock:
            return sorted(self._actions.values(), key=lambda s: (s.module, s.name))

    def modules(self) -> list[str]:
        return sorted({spec.module for spec in self.all()})


registry = ActionRegistry()
action = registry.action


def _reinit_lock_after_fork() -> None:
    registry._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_lock_after_fork)
