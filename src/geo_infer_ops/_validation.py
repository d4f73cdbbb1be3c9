"""Pydantic validation that collects :class:`~geo_infer_ops.errors.Problem` s instead of raising.

Every user-facing spec (workflows, infrastructure) validates its parts with :func:`validate_into`
so that one error can list every problem, each with its field path and a fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem, field_path, short_repr

AllowedKeys = Callable[[type[BaseModel], tuple[Any, ...]], list[str]]


def nested_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed where ``loc`` points, following nested models."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        field = current.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            continue
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
    return list(current.model_fields)


def fix_for(err: Mapping[str, Any], allowed: list[str]) -> str:
    """How to fix one pydantic error, in words a user can act on."""
    kind = err.get("type", "")
    loc = err.get("loc", ())
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"{hint}remove it; allowed keys: {', '.join(allowed)}"
    if kind == "missing":
        return "add this key"
    if kind.startswith(("int_", "float_", "bool_", "string_", "dict_", "tuple_", "list_")) or kind.endswith(
        "_type"
    ):
        return "use a value of the type named in the message"
    if kind == "literal_error":
        return "use one of the values named in the message"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"):
        return "use a value inside the range named in the message"
    if kind == "value_error":
        return "see the message for the accepted forms"
    return "use a value of the kind named in the message"


def validate_into(
    model: type[BaseModel],
    data: Any,
    prefix: str,
    problems: list[Problem],
    allowed_keys: AllowedKeys = nested_fields,
) -> Any:
    """``model.model_validate(data)``, or None with every error appended to ``problems``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err.get("loc", ()))
            kind = err.get("type", "")
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            if kind == "extra_forbidden":
                msg = "unknown key"
            elif kind == "missing":
                msg = "missing required key"
            elif "input" in err:
                msg = f"{msg} (got {short_repr(err['input'])})"
            fix = fix_for(err, allowed_keys(model, loc) if kind == "extra_forbidden" else [])
            problems.append(Problem(field_path(prefix, loc), msg, fix))
        return None
