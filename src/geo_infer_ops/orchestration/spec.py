"""The workflow format: parse a dict (from Python, YAML or JSON) into frozen models.

Two dependency styles are accepted, as in the user's description: a step's own
``dependencies: [step names]`` and a top-level ``dependencies: {MODULE: [MODULE]}``
(every step of the first module waits for every step of the listed modules).

:func:`parse_workflow` never stops at the first problem: it checks every field,
every reference, the graph and the actions, and raises one
:class:`~geo_infer_ops.errors.WorkflowSpecError` listing them all, each with its
path (``steps[2].dependencies[0]``) and a fix. Any other exception escaping from
here is a bug (the parser is fuzzed for it).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._validation import nested_fields, validate_into
from ..errors import Problem, WorkflowSpecError, short_repr
from .retry import RetryPolicy
from .schedules import parse_schedule

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
_MAX_REPR = 60


class ErrorHandling(BaseModel):
    """``error_handling``: retries, backoff and fallbacks for the whole workflow."""

    model_config = _STRICT

    retry_failed_steps: bool = False
    max_retries: int = Field(default=3, ge=0, le=100)
    backoff_strategy: Literal["exponential", "fixed", "linear"] = "exponential"
    base_delay: float = Field(default=1.0, ge=0, le=86400, allow_inf_nan=False)
    max_delay: float = Field(default=300.0, ge=0, le=7 * 86400, allow_inf_nan=False)
    jitter: float = Field(default=0.1, ge=0, le=1, allow_inf_nan=False)
    fallback_actions: dict[str, str] = Field(default_factory=dict)
    non_retryable_errors: tuple[str, ...] = ()

    @field_validator("jitter", mode="before")
    @classmethod
    def _jitter_bool(cls, value: object) -> object:
        if value is True:
            return 0.1
        if value is False:
            return 0.0
        return value

    def retry_policy(self, max_retries: int | None = None) -> RetryPolicy:
        retries = (
            max_retries if max_retries is not None else (self.max_retries if self.retry_failed_steps else 0)
        )
        return RetryPolicy(
            max_retries=retries,
            backoff_strategy=self.backoff_strategy,
            base_delay=self.base_delay,
            max_delay=self.max_delay,
            jitter=self.jitter,
            non_retryable_errors=self.non_retryable_errors,
        )


class _RawStep(BaseModel):
    model_config = _STRICT

    name: str | None = Field(default=None, min_length=1, max_length=200)
    module: str = Field(min_length=1, max_length=100)
    action: str = Field(min_length=1, max_length=200)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    timeout: float | None = Field(default=None, gt=0, le=7 * 86400, allow_inf_nan=False)
    executor: Literal["thread", "process"] | None = None
    max_retries: int | None = Field(default=None, ge=0, le=100)


class _RawHeader(BaseModel):
    model_config = _STRICT

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    schedule: str | None = None
    dependencies: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    error_handling: ErrorHandling = Field(default_factory=ErrorHandling)
    max_parallel: int | None = Field(default=None, ge=1, le=10_000)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)
        return value


class Step(BaseModel):
    """One step, with its dependencies resolved to step names."""

    model_config = ConfigDict(frozen=True)

    name: str
    module: str
    action: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    timeout: float | None = None
    executor: Literal["thread", "process"] | None = None
    max_retries: int | None = None
    fallback: str | None = None

    @property
    def qualified_action(self) -> str:
        return f"{self.module}.{self.action}"


class Workflow(BaseModel):
    """A validated workflow definition. ``version`` is the hash of its content."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    schedule: str | None = None
    steps: tuple[Step, ...]
    error_handling: ErrorHandling = Field(default_factory=ErrorHandling)
    max_parallel: int | None = None
    definition: dict[str, Any]
    version: str

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def retry_policy(self, step: Step) -> RetryPolicy:
        return self.error_handling.retry_policy(step.max_retries)

    def __getitem__(self, key: str) -> Any:
        """Read a workflow like the dict it was defined from (``workflow['name']``)."""
        return self.definition[key]


# ---------------------------------------------------------------------------
# loading


def load_workflow_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON workflow file into a dict (errors name the file and line)."""
    p = Path(path)
    if not p.is_file():
        raise WorkflowSpecError([Problem("", f"file {str(p)!r} does not exist", "check the path")], str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem("", f"not UTF-8 text: {exc}", "save the file as UTF-8")
        raise WorkflowSpecError([problem], str(p)) from None
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else _yaml_load(text)
    except json.JSONDecodeError as exc:
        raise WorkflowSpecError(
            [Problem(f"line {exc.lineno}", f"invalid JSON: {exc.msg}", "fix the JSON syntax")], str(p)
        ) from None
    except Exception as exc:  # yaml.YAMLError and friends
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise WorkflowSpecError(
            [Problem(where, f"invalid YAML: {exc}", "fix the YAML syntax")], str(p)
        ) from None
    return data


def _yaml_load(text: str) -> Any:
    """``yaml.safe_load``, but ``2024-01-31`` stays a string: parameters must be plain JSON values."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: as safe as safe_load


def as_workflow_dict(source: Mapping[str, Any] | str | Path) -> tuple[Any, str]:
    """Accept a dict or a path to a YAML/JSON file; return (data, source label)."""
    if isinstance(source, (str, Path)):
        return load_workflow_file(source), str(source)
    return source, ""


# ---------------------------------------------------------------------------
# parsing


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The model's keys; the header also allows ``steps`` (validated on its own, step by step)."""
    keys = nested_fields(model, loc)
    if model is _RawHeader and len(loc) == 1:
        keys.insert(keys.index("description") + 1, "steps")
    return keys


def _validate(model: type[BaseModel], data: Any, prefix: str, problems: list[Problem]) -> Any:
    return validate_into(model, data, prefix, problems, _allowed_keys)


def _check_json(value: Any, path: str, problems: list[Problem]) -> None:
    try:
        json.dumps(value, sort_keys=True)
    except Exception:  # TypeError, ValueError, RecursionError, OverflowError
        problems.append(
            Problem(
                path,
                "parameters must be plain JSON values (str, number, bool, null, list, dict)",
                "pass data by path or name, not as a Python object",
            )
        )


def content_hash(definition: Mapping[str, Any]) -> str:
    canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_workflow(
    data: Any,
    *,
    source: str = "",
    registry: Any = None,
    check_actions: bool = True,
) -> Workflow:
    """Validate a workflow dict and return a :class:`Workflow`, or raise one error with every problem."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise WorkflowSpecError(
            [
                Problem(
                    "",
                    f"a workflow must be a mapping with 'name' and 'steps', got {short_repr(data)}",
                    "write it as a dict / YAML mapping",
                )
            ],
            source,
        )
    header_data = {k: v for k, v in data.items() if k != "steps"}
    header = _validate(_RawHeader, header_data, "", problems)

    raw_steps = data.get("steps")
    parsed: list[tuple[int, _RawStep]] = []
    if "steps" not in data:
        problems.append(Problem("steps", "a workflow needs a list of steps", "add 'steps: [...]'"))
    elif not isinstance(raw_steps, (list, tuple)) or not raw_steps:
        problems.append(
            Problem(
                "steps",
                f"must be a non-empty list of steps, got {short_repr(raw_steps)}",
                "list at least one step with 'module' and 'action'",
            )
        )
    else:
        for i, raw in enumerate(raw_steps):
            step = _validate(_RawStep, raw, f"steps[{i}]", problems)
            if step is not None:
                _check_json(step.parameters, f"steps[{i}].parameters", problems)
                parsed.append((i, step))

    names = _assign_names(parsed, problems)
    refs = header if header is not None else _header_for_references(header_data)
    ghosts = _unparsed_names(raw_steps, parsed)
    dependencies = _resolve_dependencies(parsed, names, refs, problems, ghosts)
    if len(parsed) == (len(raw_steps) if isinstance(raw_steps, (list, tuple)) else -1):
        _check_cycles(names, dependencies, problems)
    fallbacks = _resolve_fallbacks(parsed, names, refs, problems, ghosts)
    if check_actions:
        _check_actions(parsed, names, fallbacks, registry, problems)

    if problems or header is None:
        raise WorkflowSpecError(problems, source)

    steps = tuple(
        Step(
            name=names[i],
            module=s.module.upper(),
            action=s.action,
            description=s.description,
            parameters=s.parameters,
            dependencies=tuple(dependencies[i]),
            timeout=s.timeout,
            executor=s.executor,
            max_retries=s.max_retries,
            fallback=fallbacks.get(i),
        )
        for i, s in parsed
    )
    definition = _definition(header, steps)
    return Workflow(
        name=header.name,
        description=header.description,
        schedule=header.schedule,
        steps=steps,
        error_handling=header.error_handling,
        max_parallel=header.max_parallel,
        definition=definition,
        version=content_hash(definition),
    )


def _header_for_references(header_data: dict[str, Any]) -> _RawHeader | None:
    """The header's ``dependencies`` and ``fallback_actions`` alone, when the header as a whole is invalid."""
    eh = header_data.get("error_handling")
    fallbacks = eh.get("fallback_actions", {}) if isinstance(eh, Mapping) else {}
    parts = {
        "dependencies": header_data.get("dependencies", {}),
        "error_handling": {"fallback_actions": fallbacks},
    }
    valid: dict[str, Any] = {"name": "-"}
    for key, value in parts.items():
        try:
            _RawHeader.model_validate({"name": "-", key: value})
        except ValidationError:
            continue
        valid[key] = value
    return _RawHeader.model_validate(valid)


def _unparsed_names(raw_steps: Any, parsed: list[tuple[int, _RawStep]]) -> set[str]:
    """Names (and ``module:`` entries) of steps that exist but failed validation (already reported)."""
    if not isinstance(raw_steps, (list, tuple)):
        return set()
    done = {i for i, _ in parsed}
    out: set[str] = set()
    for i, raw in enumerate(raw_steps):
        if i in done or not isinstance(raw, Mapping):
            continue
        name, module, act = raw.get("name"), raw.get("module"), raw.get("action")
        if isinstance(module, str):
            out.add("module:" + module.strip().upper())
        if isinstance(name, str) and name.strip():
            out.add(name.strip())
        elif isinstance(module, str) and isinstance(act, str):
            out.add(f"{module.strip().upper()}.{act.strip()}")
    return out


def _assign_names(parsed: list[tuple[int, _RawStep]], problems: list[Problem]) -> dict[int, str]:
    names: dict[int, str] = {}
    explicit: dict[str, int] = {}
    for i, step in parsed:
        if step.name is None:
            continue
        if step.name in explicit:
            problems.append(
                Problem(
                    f"steps[{i}].name",
                    f"duplicate step name {step.name!r} (also steps[{explicit[step.name]}])",
                    "give every step a unique name",
                )
            )
        else:
            explicit[step.name] = i
        names[i] = step.name
    taken = set(explicit)
    for i, step in parsed:
        if step.name is not None:
            continue
        base = f"{step.module.upper()}.{step.action}"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}#{n}", n + 1
        taken.add(candidate)
        names[i] = candidate
    return names


def _resolve_dependencies(
    parsed: list[tuple[int, _RawStep]],
    names: dict[int, str],
    header: _RawHeader | None,
    problems: list[Problem],
    ghosts: set[str] | frozenset[str] = frozenset(),
) -> dict[int, list[str]]:
    known = set(names.values())
    deps: dict[int, list[str]] = {}
    for i, step in parsed:
        own: list[str] = []
        for j, dep in enumerate(step.dependencies):
            if dep not in known and dep in ghosts:
                continue
            if dep not in known:
                close = difflib.get_close_matches(dep, sorted(known), n=1)
                fix = f"did you mean {close[0]!r}?" if close else f"use one of: {', '.join(sorted(known))}"
                problems.append(Problem(f"steps[{i}].dependencies[{j}]", f"unknown step {dep!r}", fix))
            elif dep == names[i]:
                problems.append(
                    Problem(f"steps[{i}].dependencies[{j}]", "a step cannot depend on itself", "remove it")
                )
            elif dep not in own:
                own.append(dep)
        deps[i] = own
    if header is None or not header.dependencies:
        return deps
    by_module: dict[str, list[int]] = {}
    for i, step in parsed:
        by_module.setdefault(step.module.upper(), []).append(i)
    modules = sorted(by_module)
    for module, upstream in header.dependencies.items():
        key = module.upper()
        if key not in by_module:
            if "module:" + key in ghosts:
                continue
            problems.append(
                Problem(
                    f"dependencies.{module}",
                    f"no step uses module {module!r}",
                    f"use one of the workflow's modules: {', '.join(modules)}",
                )
            )
            continue
        for j, up in enumerate(upstream):
            up_key = up.upper()
            if up_key not in by_module:
                if "module:" + up_key in ghosts:
                    continue
                problems.append(
                    Problem(
                        f"dependencies.{module}[{j}]",
                        f"no step uses module {up!r}",
                        f"use one of the workflow's modules: {', '.join(modules)}",
                    )
                )
                continue
            if up_key == key:
                problems.append(
                    Problem(f"dependencies.{module}[{j}]", "a module cannot depend on itself", "remove it")
                )
                continue
            for i in by_module[key]:
                for u in by_module[up_key]:
                    if names[u] not in deps[i]:
                        deps[i].append(names[u])
    return deps


def _check_cycles(names: dict[int, str], deps: dict[int, list[str]], problems: list[Problem]) -> None:
    from graphlib import CycleError, TopologicalSorter

    graph = {names[i]: deps.get(i, []) for i in names}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        cycle = list(reversed(exc.args[1]))
        problems.append(
            Problem(
                "dependencies",
                "cycle: " + " -> ".join(cycle),
                "remove one of these dependencies so the steps form a DAG",
            )
        )


def _resolve_fallbacks(
    parsed: list[tuple[int, _RawStep]],
    names: dict[int, str],
    header: _RawHeader | None,
    problems: list[Problem],
    ghosts: set[str] | frozenset[str] = frozenset(),
) -> dict[int, str]:
    if header is None:
        return {}
    by_name = {names[i]: (i, s) for i, s in parsed}
    by_module: dict[str, list[int]] = {}
    for i, s in parsed:
        by_module.setdefault(s.module.upper(), []).append(i)
    resolved: dict[int, str] = {}
    entries = header.error_handling.fallback_actions.items()
    for key, target in sorted(entries, key=lambda item: item[0] in by_name):  # step names last: they win
        path = f"error_handling.fallback_actions.{key}"
        if key in by_name:
            indices = [by_name[key][0]]
        elif key.upper() in by_module:
            indices = by_module[key.upper()]
        elif key in ghosts or "module:" + key.upper() in ghosts:
            continue
        else:
            close = difflib.get_close_matches(key, sorted(by_name), n=1)
            fix = f"did you mean {close[0]!r}?" if close else "name a step (or a module) of this workflow"
            problems.append(Problem(path, f"unknown step {key!r}", fix))
            continue
        for i in indices:
            module = parsed_module = next(s.module.upper() for j, s in parsed if j == i)
            if "." in target:
                module, _, act = target.partition(".")
                module = module.upper()
            else:
                act = target
            if not act:
                problems.append(Problem(path, "empty fallback action", "write 'action' or 'MODULE.action'"))
                continue
            resolved[i] = f"{module or parsed_module}.{act}"
    return resolved


def _check_actions(
    parsed: list[tuple[int, _RawStep]],
    names: dict[int, str],
    fallbacks: dict[int, str],
    registry: Any,
    problems: list[Problem],
) -> None:
    if registry is None:
        from ..modules.registry import registry as default_registry

        registry = default_registry
    for i, step in parsed:
        spec = registry.find(step.module, step.action)
        if spec is None:
            problems.append(
                Problem(
                    f"steps[{i}].action",
                    f"{step.module.upper()}.{step.action} is not a registered action",
                    registry.suggest(step.module, step.action),
                )
            )
            continue
        unknown, missing = spec.check_parameters(step.parameters)
        accepted = ", ".join(sorted(spec.parameter_names)) or "none"
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(spec.parameter_names), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(
                    f"steps[{i}].parameters.{name}",
                    f"{spec.qualified_name} does not accept parameter {name!r}",
                    f"{hint}accepted: {accepted}",
                )
            )
        for name in missing:
            problems.append(
                Problem(
                    f"steps[{i}].parameters",
                    f"{spec.qualified_name} needs parameter {name!r}",
                    f"add parameters.{name}",
                )
            )
    for i, target in fallbacks.items():
        module, _, act = target.partition(".")
        if registry.find(module, act) is None:
            problems.append(
                Problem(
                    f"error_handling.fallback_actions.{names[i]}",
                    f"fallback {target} is not a registered action",
                    registry.suggest(module, act),
                )
            )


def _definition(header: _RawHeader, steps: tuple[Step, ...]) -> dict[str, Any]:
    """The normalized definition: what is stored, hashed and re-parsed on resume."""
    eh = header.error_handling.model_dump(mode="json")
    eh["fallback_actions"] = {s.name: s.fallback for s in steps if s.fallback}
    out: dict[str, Any] = {
        "name": header.name,
        "description": header.description,
        "steps": [
            {
                k: v
                for k, v in s.model_dump(mode="json").items()
                if k != "fallback" and v not in (None, "", {}, [])
            }
            for s in steps
        ],
        "error_handling": eh,
    }
    if header.schedule:
        out["schedule"] = header.schedule
    if header.max_parallel:
        out["max_parallel"] = header.max_parallel
    return out
