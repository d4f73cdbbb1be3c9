"""The exception hierarchy.

Every error a user can cause says *what* is wrong, *where* (a field path such as
``steps[2].dependencies[0]``) and *how to fix it*, so that nobody has to read a
traceback from deep inside a library to learn that a key was misspelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class GeoInferOpsError(Exception):
    """Base class of every error raised on purpose by geo-infer-ops."""


def field_path(prefix: str, loc: tuple[Any, ...]) -> str:
    """``("steps", 2, "dependencies", 0)`` -> ``steps[2].dependencies[0]`` (under ``prefix``)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


def short_repr(value: Any, limit: int = 60) -> str:
    """A value as shown inside an error message: its repr, cut at ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a user's input."""

    path: str
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.path or '<root>'}: {self.message}"
        return f"{text} (fix: {self.fix})" if self.fix else text


class SpecError(GeoInferOpsError):
    """Invalid user input; carries every problem found, not just the first."""

    kind = "specification"

    def __init__(self, problems: list[Problem], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(self.problems)} problem(s) in the {self.kind}{where}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))

    def to_dict(self) -> dict:
        return {
            "error": type(self).__name__,
            "source": self.source,
            "problems": [{"path": p.path, "message": p.message, "fix": p.fix} for p in self.problems],
        }


class WorkflowSpecError(SpecError):
    """A workflow definition (dict, YAML or JSON) is invalid."""

    kind = "workflow definition"


class ConfigError(SpecError):
    """A configuration dict passed to a manager method is invalid."""

    kind = "configuration"


class ActionNotFoundError(GeoInferOpsError, LookupError):
    """A ``MODULE.action`` name is not registered."""


class ActionRegistrationError(GeoInferOpsError):
    """An action could not be registered (name taken, bad signature)."""


class RunNotFoundError(GeoInferOpsError, LookupError):
    """No run with the given id is in the store."""


class RunStateError(GeoInferOpsError):
    """The run is in a state that does not allow the requested operation."""


class StoreError(GeoInferOpsError):
    """The state store cannot be opened or migrated."""


class ArtifactError(GeoInferOpsError):
    """A step result could not be stored or loaded."""
