"""Terraform JSON (``*.tf.json``) for each provider, built as plain dicts.

Each provider module has ``render(spec) -> TerraformDoc``. A :class:`TerraformDoc` holds the
blocks of one configuration (``terraform``, ``provider``, ``variable``, ``locals``, ``data``,
``resource``, ``output``) and :mod:`..render` writes them to files.
"""

from __future__ import annotations

from ._doc import TerraformDoc, ref

__all__ = ["TerraformDoc", "ref", "render_spec"]


def render_spec(spec):
    """The Terraform document of a validated spec, for its provider."""
    if spec.cloud_provider == "aws":
        from .aws import render
    elif spec.cloud_provider == "gcp":
        from .gcp import render
    else:
        from .azure import render
    return render(spec)
