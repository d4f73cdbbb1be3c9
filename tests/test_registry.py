"""The action registry: decorator, override rules, entry points, imports by name or path."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from geo_infer_ops import action
from geo_infer_ops.errors import ActionNotFoundError, ActionRegistrationError
from geo_infer_ops.modules.registry import ActionRegistry, registry


def test_decorator_registers_a_plain_function_with_its_parameters():
    @action("soil", "moisture")
    def moisture(depth_cm: int, unit: str = "vol%", ctx=None) -> float:
        """Volumetric soil moisture at a depth."""
        return 0.3

    spec = registry.get("SOIL", "moisture")
    assert spec.module == "SOIL" and spec.func is moisture and spec.accepts_context
    assert [(p.name, p.required) for p in spec.parameters] == [("depth_cm", True), ("unit", False)]
    assert spec.description.startswith("Volumetric")
    assert spec.check_parameters({"depth_cm", "colour"}) == (["colour"], [])
    assert spec.check_parameters({"unit"}) == ([], ["depth_cm"])


def test_reregistering_needs_override():
    @action("SOIL", "ph")
    def ph():
        return 7

    with pytest.raises(ActionRegistrationError, match="override=True"):

        @action("SOIL", "ph")
        def ph_again():
            return 6

    @action("SOIL", "ph", override=True)
    def ph_replaced():
        return 6

    assert registry.get("SOIL", "ph").func is ph_replaced


def test_positional_only_parameters_are_refused():
    with pytest.raises(ActionRegistrationError, match="keyword"):

        @action("SOIL", "bad")
        def bad(x, /):
            return x


def test_unknown_action_suggests_close_names():
    @action("SOIL", "moisture_profile")
    def profile():
        return []

    with pytest.raises(ActionNotFoundError, match=r"Did you mean SOIL\.moisture_profile"):
        registry.get("SOIL", "moisture_profil")


def test_entry_points_add_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """An installed package declares `geo_infer_ops.modules` entry points; both forms are loaded."""
    pkg = tmp_path / "agri_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "actions.py").write_text(
        textwrap.dedent("""
        from geo_infer_ops import action

        @action("AGRI", "crop_yield")
        def crop_yield(field_id: str) -> float:
            '''Expected yield of a field in t/ha.'''
            return 7.5
    """)
    )
    (pkg / "hooks.py").write_text(
        textwrap.dedent("""
        def register(registry):
            registry.register("AGRI", "irrigation", lambda field_id: 12.0)
    """)
    )
    dist = tmp_path / "agri_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: agri-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[geo_infer_ops.modules]\nagri = agri_plugin.actions\nagri_hooks = agri_plugin.hooks:register\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    fresh = ActionRegistry()
    fresh.load_entry_points()
    assert registry.find("AGRI", "crop_yield") is not None  # the module form registers on the default one
    assert fresh.get("AGRI", "irrigation").func("f1") == 12.0  # the function form gets the registry
    sys.modules.pop("agri_plugin.actions", None)
    sys.modules.pop("agri_plugin.hooks", None)


def test_import_by_path_and_clear_error_for_missing_module(tmp_path: Path):
    file = tmp_path / "my_actions.py"
    file.write_text("from geo_infer_ops import action\n\n@action('MINE', 'one')\ndef one():\n    return 1\n")
    registry.import_module(str(file))
    assert registry.get("MINE", "one").func() == 1
    with pytest.raises(ActionRegistrationError, match="GEO_INFER_OPS_IMPORTS"):
        registry.import_module("no_such_module_anywhere")
    with pytest.raises(ActionRegistrationError, match="no such file"):
        registry.import_module(str(tmp_path / "missing.py"))


def test_builtins_cannot_be_replaced_silently():
    builtin = registry.find("DATA", "load_sensor_data")
    if builtin is None:
        pytest.skip("the DATA module is not built in yet")
    with pytest.raises(ActionRegistrationError, match="already registered"):

        @action("DATA", "load_sensor_data")
        def mine():
            return None
