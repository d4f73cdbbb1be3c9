"""A Terraform configuration as nested dicts, in the JSON syntax's shape.

``{"resource": {"aws_vpc": {"main": {...}}}}``: block type, then labels, then the body.
Expressions are string templates: ``"${aws_vpc.main.id}"`` (see :func:`ref`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def ref(address: str, attribute: str = "id") -> str:
    """``ref("aws_vpc.main")`` -> ``"${aws_vpc.main.id}"``."""
    return "${" + f"{address}.{attribute}" + "}"


@dataclass
class TerraformDoc:
    """The blocks of one configuration, plus the notes the renderer wants the user to read."""

    provider_name: str
    terraform: dict[str, Any] = field(default_factory=dict)
    provider: dict[str, Any] = field(default_factory=dict)
    variable: dict[str, Any] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    resource: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, rtype: str, name: str, body: dict[str, Any]) -> str:
        """Add a resource; return its address (``aws_vpc.main``)."""
        bucket = self.resource.setdefault(rtype, {})
        if name in bucket:
            raise ValueError(f"duplicate resource {rtype}.{name}")
        bucket[name] = body
        return f"{rtype}.{name}"

    def add_data(self, dtype: str, name: str, body: dict[str, Any]) -> str:
        self.data.setdefault(dtype, {})[name] = body
        return f"data.{dtype}.{name}"

    def var(
        self, name: str, type_: str, description: str, default: Any = ..., sensitive: bool = False
    ) -> str:
        body: dict[str, Any] = {"type": type_, "description": description}
        if default is not ...:
            body["default"] = default
        if sensitive:
            body["sensitive"] = True
        self.variable[name] = body
        return "${var." + name + "}"

    def out(self, name: str, value: str, description: str) -> None:
        self.output[name] = {"value": value, "description": description}

    @property
    def addresses(self) -> list[str]:
        return [f"{t}.{n}" for t, names in self.resource.items() for n in names]

    def blocks(self) -> dict[str, Any]:
        """Everything in one dict (the shape of a single ``main.tf.json``)."""
        out: dict[str, Any] = {}
        for key in ("terraform", "provider", "variable", "locals", "data", "resource", "output"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out
