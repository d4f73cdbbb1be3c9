"""``--param`` overrides: ``STEP.KEY=VALUE`` for one step, ``KEY=VALUE`` for every step that takes KEY."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError, Problem


def parse_assignments(items: list[str]) -> dict[str, Any]:
    """``["a.b=3", "x=hello"]`` -> ``{"a.b": 3, "x": "hello"}`` (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    problems = []
    for i, item in enumerate(items):
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(
                Problem(
                    f"--param[{i}]",
                    f"{item!r} is not KEY=VALUE",
                    "write e.g. --param data_ingestion.time_range=last_7_days",
                )
            )
            continue
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    if problems:
        raise ConfigError(problems, "command line")
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any], registry: Any) -> dict[str, Any]:
    """A copy of a workflow dict with step parameters overridden; unknown targets are errors."""
    result = copy.deepcopy(dict(data))
    steps = result.get("steps") if isinstance(result.get("steps"), list) else []
    problems: list[Problem] = []
    for key, value in overrides.items():
        step_name, dot, param = key.rpartition(".")
        targets = []
        for step in steps:
            if not isinstance(step, dict):
                continue
            name = step.get("name") or f"{str(step.get('module', '')).upper()}.{step.get('action')}"
            if dot and step_name == name:
                targets.append(step)
            elif not dot:
                spec = registry.find(str(step.get("module", "")), str(step.get("action", "")))
                if spec is not None and (param in spec.parameter_names or spec.accepts_any_parameter):
                    targets.append(step)
        if not targets:
            where = f"no step named {step_name!r}" if dot else f"no step's action takes a parameter {param!r}"
            problems.append(
                Problem(f"--param {key}", where, "use STEP.KEY=VALUE with a step name from the file")
            )
        for step in targets:
            params = step.setdefault("parameters", {})
            if isinstance(params, dict):
                params[param] = value
    if problems:
        raise ConfigError(problems, "parameter overrides")
    return result
