"""The examples in docs/ and examples/ are run, so the documentation stays true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from geo_infer_ops import action
from geo_infer_ops.errors import WorkflowSpecError
from geo_infer_ops.modules.registry import registry
from geo_infer_ops.orchestration import WorkflowOrchestrator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```yaml\n(?P<body>.*?)```", re.S)


def doc_examples() -> dict[str, dict]:
    text = (ROOT / "docs" / "workflows.md").read_text()
    return {m["name"]: yaml.safe_load(m["body"]) for m in EXAMPLE.finditer(text)}


@pytest.fixture
def example_actions():
    registry.import_module(str(ROOT / "examples" / "quickstart_actions.py"))

    @action("GEO", "nearest")
    def nearest(ctx):
        stations = ctx.inputs.only()
        return len(stations)


def test_docs_have_examples():
    assert {"full-format", "module-dependencies"} <= set(doc_examples())


@pytest.mark.parametrize("name", ["full-format", "module-dependencies"])
def test_doc_example_runs(name, settings, example_actions):
    orchestrator = WorkflowOrchestrator(settings=settings)
    result = orchestrator.execute_workflow(doc_examples()[name])
    assert result["status"] == "succeeded", result


def test_doc_error_example_matches_reality(settings, example_actions):
    broken = {
        "name": "x",
        "stepz": [],
        "steps": [
            {"name": "a", "module": "EXAMPLE", "action": "bounding_box", "dependencies": ["b"]},
            {"name": "b", "module": "EXAMPLE", "action": "bounding_box", "dependencies": ["a"]},
            {"name": "c", "module": "EXAMPLE", "action": "bounding_box", "dependencies": ["lod"]},
        ],
    }
    with pytest.raises(WorkflowSpecError) as info:
        WorkflowOrchestrator(settings=settings).define_workflow(broken)
    text = str(info.value)
    assert "stepz: unknown key (fix: did you mean 'steps'?" in text
    assert "steps[2].dependencies[0]: unknown step 'lod'" in text
    assert "cycle: a -> b -> a" in text or "cycle: b -> a -> b" in text


def test_quickstart_example_runs(settings, example_actions):
    result = WorkflowOrchestrator(settings=settings).execute_workflow(ROOT / "examples" / "quickstart.yaml")
    assert result["status"] == "succeeded"
    summary = result["outputs"]["summarise"]
    assert summary["stations"] == 5
    assert summary["most_isolated"]["id"] == "ISP"
    assert Path(summary["written_to"]).exists()


def test_readme_python_example_runs(capsys):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out.strip()
    assert int(printed) > 0  # stations that reported in the last 30 days of the bundled PM10 data


def test_readme_first_screen_has_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make demo" in head and "make test" in head
