"""The ``geo-infer-ops`` command line: in-process with Typer's CliRunner, and as a real process."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from geo_infer_ops import __version__
from geo_infer_ops.cli import app

ACTIONS = '''
import time
from pathlib import Path

from geo_infer_ops import action


@action("CLITEST", "load")
def load(n: int = 3, delay: float = 0.0, ctx=None):
    """Make a list of n numbers.

    This second line is not shown by `modules`.
    """
    ctx.log.info("loading %s numbers", n)
    time.sleep(delay)
    return list(range(n))


@action("CLITEST", "total")
def total(ctx, scale: float = 1.0):
    """Sum the upstream numbers."""
    ctx.log.warning("summing with scale %s", scale)
    return sum(ctx.inputs.only()) * scale


@action("CLITEST", "boom")
def boom(message: str = "kaboom"):
    """Always fails."""
    raise ValueError(message)


@action("CLITEST", "flaky")
def flaky(marker: str):
    """Fails until the marker file exists."""
    if not Path(marker).exists():
        raise RuntimeError(f"marker {marker} is missing")
    return "ok"


@action("CLITEST", "wait_for")
def wait_for(started: str, seconds: float = 60.0):
    """The first time: touch `started` and sleep; afterwards return at once."""
    path = Path(started)
    if path.exists():
        return 0.0
    path.write_text("started")
    time.sleep(seconds)
    return seconds
'''

RESULT_KEYS = {"workflow_id", "name", "status", "started_at", "finished_at", "steps"}
SCRIPT = Path(sys.executable).with_name("geo-infer-ops")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def actions(tmp_path: Path) -> str:
    """A user action module as a .py file (a unique name: `--import` imports a file only once)."""
    path = tmp_path / f"cli_actions_{uuid.uuid4().hex[:8]}.py"
    path.write_text(ACTIONS, encoding="utf-8")
    return str(path)


def write_workflow(tmp_path: Path, data: dict[str, Any], name: str = "wf.yaml") -> str:
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


def pipeline(name: str = "tiny", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "schedule": "daily",
        "steps": [
            {"name": "load", "module": "CLITEST", "action": "load", "parameters": {"n": 4}},
            {"name": "total", "module": "CLITEST", "action": "total", "dependencies": ["load"]},
        ],
        **extra,
    }


def failing() -> dict[str, Any]:
    return {
        "name": "failing",
        "steps": [
            {"name": "load", "module": "CLITEST", "action": "load"},
            {
                "name": "explode",
                "module": "CLITEST",
                "action": "boom",
                "dependencies": ["load"],
                "parameters": {"message": "kaboom [red]not markup[/red]"},
            },
            {"name": "after", "module": "CLITEST", "action": "total", "dependencies": ["explode"]},
        ],
    }


def invoke(runner: CliRunner, *args: str, code: int | None = None) -> Any:
    result = runner.invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"unhandled {result.exception!r}\n{result.output}") from result.exception
    assert "Traceback" not in result.output
    if code is not None:
        assert result.exit_code == code, result.output
    return result


def run_json(runner: CliRunner, *args: str, code: int = 0) -> dict[str, Any]:
    result = invoke(runner, *args, "--json", code=code)
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------
# basics


def test_version(runner: CliRunner) -> None:
    result = invoke(runner, "--version", code=0)
    assert __version__ in result.stdout


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = invoke(runner, "--help", code=0)
    for command in ("validate", "run", "runs", "show", "logs", "retry", "resume", "modules"):
        assert command in result.stdout


def test_importing_the_cli_is_light() -> None:
    heavy = ("sqlalchemy", "alembic", "geo_infer_ops.orchestration.orchestrator", "pandas")
    code = f"import sys, geo_infer_ops.cli; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------
# validate


def test_validate_ok_prints_plan(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, pipeline())
    result = invoke(runner, "validate", wf, "--import", actions, code=0)
    out = result.stdout
    assert "tiny" in out and "valid" in out
    assert out.index("CLITEST.load") < out.index("CLITEST.total")
    assert "schedule: daily" in out


def test_validate_json(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, pipeline(), "wf.json")
    data = run_json(runner, "validate", wf, "--import", actions)
    assert data["valid"] is True
    assert data["name"] == "tiny"
    assert data["order"] == ["load", "total"]
    assert data["steps"][1]["dependencies"] == ["load"]
    assert data["schedule"] == "daily" and data["next_run_at"]
    assert len(data["version"]) == 16


def test_validate_invalid_lists_every_problem(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(
        tmp_path,
        {
            "name": "broken",
            "colour": "red",
            "steps": [
                {"name": "load", "module": "CLITEST", "action": "lod"},
                {"name": "total", "module": "CLITEST", "action": "total", "dependencies": ["laod"]},
                {"name": "x", "module": "CLITEST", "action": "load", "timeout": -1},
            ],
        },
    )
    result = invoke(runner, "validate", wf, "--import", actions, code=2)
    text = result.output
    for path in ("colour", "steps[0].action", "steps[1].dependencies[0]", "steps[2].timeout"):
        assert path in text, path
    assert "4 problem(s)" in text
    assert "did you mean 'load'" in text


def test_validate_invalid_json(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, {"name": "broken", "steps": [{"module": "CLITEST", "action": "nope"}]})
    data = run_json(runner, "validate", wf, "--import", actions, code=2)
    assert data["error"] == "WorkflowSpecError"
    assert [p["path"] for p in data["problems"]] == ["steps[0].action"]
    assert all({"path", "message", "fix"} <= set(p) for p in data["problems"])


def test_validate_missing_file_and_bad_yaml(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "validate", str(tmp_path / "nope.yaml"), code=2)
    assert "does not exist" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", encoding="utf-8")
    result = invoke(runner, "validate", str(bad), code=2)
    assert "invalid YAML" in result.output


def test_unknown_import_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    wf = write_workflow(tmp_path, pipeline())
    result = invoke(runner, "validate", wf, "--import", "no_such_module_xyz", code=2)
    assert "cannot import action module 'no_such_module_xyz'" in result.output
    result = invoke(runner, "run", wf, "--import", str(tmp_path / "missing.py"), code=2)
    assert "missing.py" in result.output


def test_imports_setting_is_used(
    runner: CliRunner, tmp_path: Path, actions: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEO_INFER_OPS_IMPORTS", actions)
    wf = write_workflow(tmp_path, pipeline())
    invoke(runner, "validate", wf, code=0)


# ---------------------------------------------------------------------------
# run


def test_run_success_json(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, pipeline())
    data = run_json(runner, "run", wf, "--import", actions, "--param", "load.n=5", "-p", "scale=2")
    assert set(data) >= RESULT_KEYS
    assert "outputs" not in data
    assert data["status"] == "succeeded"
    assert set(data["steps"]) == {"load", "total"}
    assert data["steps"]["load"] == {
        "status": "succeeded",
        "attempts": 1,
        "duration_s": data["steps"]["load"]["duration_s"],
        "error": None,
        "used_fallback": False,
    }
    lines = [r["message"] for r in run_json(runner, "logs", data["workflow_id"])]
    assert "loading 5 numbers" in lines
    assert "summing with scale 2" in lines


def test_run_success_text(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, pipeline())
    result = invoke(runner, "run", wf, "--import", actions, code=0)
    out = result.stdout
    assert "run succeeded" in out
    run_id = out.split("run id: ")[1].split()[0]
    assert len(run_id) == 32
    assert f"geo-infer-ops show {run_id[:8]}" in out
    assert f"geo-infer-ops logs {run_id[:8]}" in out
    assert "retry" not in out


def test_run_failure_exits_1(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, failing())
    result = invoke(runner, "run", wf, "--import", actions, code=1)
    out = result.stdout
    assert "run failed" in out
    assert "ValueError: kaboom [red]not markup[/red]" in out  # user text is never read as Rich markup
    assert "upstream_failed" in out
    run_id = out.split("run id: ")[1].split()[0]
    assert f"geo-infer-ops retry {run_id[:8]}" in out

    data = run_json(runner, "run", wf, "--import", actions, code=1)
    assert data["status"] == "failed"
    assert data["steps"]["explode"]["status"] == "failed"
    assert data["steps"]["after"]["status"] == "upstream_failed"


def test_run_bad_param(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(tmp_path, pipeline())
    result = invoke(runner, "run", wf, "--import", actions, "--param", "no-equals-sign", code=2)
    assert "is not KEY=VALUE" in result.output
    result = invoke(runner, "run", wf, "--import", actions, "--param", "nostep.n=3", code=2)
    assert "no step named 'nostep'" in result.output
    assert invoke(runner, "runs", "--json", code=0).stdout.strip() == "[]"


def test_run_invalid_workflow_exits_2(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(
        tmp_path,
        {
            "name": "x",
            "steps": [
                {"module": "CLITEST", "action": "load", "bogus": 1},
            ],
        },
    )
    result = invoke(runner, "run", wf, "--import", actions, code=2)
    assert "steps[0].bogus" in result.output


def test_run_max_parallel_one(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    wf = write_workflow(
        tmp_path,
        {
            "name": "fan",
            "steps": [
                {"name": f"s{i}", "module": "CLITEST", "action": "load", "parameters": {"delay": 0.2}}
                for i in range(3)
            ],
        },
    )
    data = run_json(runner, "run", wf, "--import", actions, "--max-parallel", "1")
    assert data["status"] == "succeeded"
    shown = run_json(runner, "show", data["workflow_id"])
    spans = sorted(
        (datetime.fromisoformat(a["started_at"]), datetime.fromisoformat(a["finished_at"]))
        for s in shown["steps"]
        for a in s["attempts"]
    )
    assert len(spans) == 3
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end
    invoke(runner, "run", wf, "--import", actions, "--max-parallel", "0", code=2)


# ---------------------------------------------------------------------------
# runs, show, logs


def test_runs_show_logs(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    ok = run_json(runner, "run", write_workflow(tmp_path, pipeline(), "ok.yaml"), "--import", actions)
    bad_wf = write_workflow(tmp_path, failing(), "bad.yaml")
    bad = run_json(runner, "run", bad_wf, "--import", actions, code=1)

    rows = run_json(runner, "runs")
    assert [r["workflow_id"] for r in rows] == [bad["workflow_id"], ok["workflow_id"]]
    keys = {"workflow_id", "name", "status", "started_at", "finished_at", "duration_s"}
    assert all(set(r) >= keys for r in rows)
    assert [r["name"] for r in run_json(runner, "runs", "--status", "failed")] == ["failing"]
    assert [r["name"] for r in run_json(runner, "runs", "--name", "tiny")] == ["tiny"]
    assert len(run_json(runner, "runs", "--limit", "1")) == 1
    invoke(runner, "runs", "--status", "bogus", code=2)

    text = invoke(runner, "runs", code=0).stdout
    assert ok["workflow_id"][:8] in text and bad["workflow_id"][:8] in text
    assert ok["workflow_id"] not in text  # short ids in the table

    shown = run_json(runner, "show", bad["workflow_id"][:6])
    assert {"workflow_id", "name", "status", "started_at", "finished_at", "steps", "version"} <= set(shown)
    assert shown["status"] == "failed"
    explode = next(s for s in shown["steps"] if s["name"] == "explode")
    assert explode["attempts"][0]["error"].startswith("ValueError: kaboom")

    text = invoke(runner, "show", bad["workflow_id"], code=0).stdout
    for expected in ("failing", "explode", "CLITEST.boom", "ValueError: kaboom", "attempts", "retry"):
        assert expected in text, expected

    text = invoke(runner, "logs", ok["workflow_id"], code=0).stdout
    lines = text.strip().splitlines()
    assert len(lines) == 2
    assert lines[0].split()[2:] == ["INFO", "load", "loading", "4", "numbers"]
    assert lines[1].split()[2:4] == ["WARNING", "total"]
    only = run_json(runner, "logs", ok["workflow_id"], "--step", "total")
    assert [r["step"] for r in only] == ["total"]
    result = invoke(runner, "logs", ok["workflow_id"], "--step", "nope", code=2)
    assert "has no step 'nope'" in result.output


@pytest.mark.parametrize("command", [["show"], ["logs"], ["retry"], ["resume"]])
def test_unknown_run_id_exits_2(runner: CliRunner, command: list[str]) -> None:
    result = invoke(runner, *command, "deadbeef", code=2)
    assert "no run 'deadbeef'" in result.output
    assert "geo-infer-ops runs" in result.output
    data = run_json(runner, *command, "deadbeef", code=2)
    assert data["error"] == "RunNotFoundError"


# ---------------------------------------------------------------------------
# retry, resume


def test_retry_after_fixing_the_cause(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    marker = tmp_path / "fixed"
    wf = write_workflow(
        tmp_path,
        {
            "name": "flaky",
            "steps": [
                {"name": "load", "module": "CLITEST", "action": "load"},
                {
                    "name": "flaky",
                    "module": "CLITEST",
                    "action": "flaky",
                    "parameters": {"marker": str(marker)},
                    "dependencies": ["load"],
                },
            ],
        },
    )
    first = run_json(runner, "run", wf, "--import", actions, code=1)
    assert first["steps"]["flaky"]["error"].startswith("RuntimeError: marker")

    again = run_json(
        runner,
        "retry",
        first["workflow_id"][:8],
        "--import",
        actions,
        "--max-retries",
        "0",
        "--backoff",
        "fixed",
        code=1,
    )
    assert again["workflow_id"] == first["workflow_id"]
    assert again["steps"]["flaky"]["attempts"] == 2

    marker.write_text("ok")
    result = invoke(runner, "retry", first["workflow_id"], "--import", actions, code=0)
    assert "run succeeded" in result.stdout
    final = run_json(runner, "show", first["workflow_id"])
    steps = {s["name"]: s for s in final["steps"]}
    assert final["status"] == "succeeded"
    assert len(steps["load"]["attempts"]) == 1  # the step that had succeeded did not run again
    assert len(steps["flaky"]["attempts"]) == 3
    invoke(runner, "retry", first["workflow_id"], "--backoff", "sometimes", code=2)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the CLI exited early ({proc.returncode}): {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the step never started")
        time.sleep(0.05)


def _blocking_workflow(tmp_path: Path, started: Path) -> str:
    return write_workflow(
        tmp_path,
        {
            "name": "blocking",
            "steps": [
                {"name": "load", "module": "CLITEST", "action": "load"},
                {
                    "name": "block",
                    "module": "CLITEST",
                    "action": "wait_for",
                    "parameters": {"started": str(started)},
                    "dependencies": ["load"],
                },
                {"name": "after", "module": "CLITEST", "action": "load", "dependencies": ["block"]},
            ],
        },
    )


def test_resume_a_run_whose_process_was_killed(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    started = tmp_path / "started"
    wf = _blocking_workflow(tmp_path, started)
    proc = subprocess.Popen(
        [sys.executable, "-m", "geo_infer_ops.cli", "run", wf, "--import", actions],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _wait_for(started, proc)
    proc.kill()
    proc.wait(timeout=30)

    [row] = run_json(runner, "runs")
    assert row["status"] == "running"
    data = run_json(runner, "resume", row["workflow_id"][:8], "--import", actions)
    assert data["status"] == "succeeded"
    assert data["steps"]["load"]["attempts"] == 1  # finished before the kill: not run again
    assert data["steps"]["block"]["attempts"] == 2
    assert data["steps"]["after"]["status"] == "succeeded"


def test_ctrl_c_cancels_the_run_and_exits_130(runner: CliRunner, tmp_path: Path, actions: str) -> None:
    started = tmp_path / "started"
    wf = _blocking_workflow(tmp_path, started)
    proc = subprocess.Popen(
        [str(SCRIPT), "run", wf, "--import", actions],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(started, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in out + err
    assert "run cancelled" in out and "interrupted" in out
    [row] = run_json(runner, "runs")
    assert row["status"] == "cancelled"
    steps = {s["name"]: s["status"] for s in run_json(runner, "show", row["workflow_id"])["steps"]}
    assert steps == {"load": "succeeded", "block": "cancelled", "after": "cancelled"}


# ---------------------------------------------------------------------------
# modules


def test_modules(runner: CliRunner, actions: str) -> None:
    specs = run_json(runner, "modules", "--import", actions)
    by_name = {s["qualified_name"]: s for s in specs}
    load = by_name["CLITEST.load"]
    assert load["module"] == "CLITEST" and load["action"] == "load"
    assert load["description"] == "Make a list of n numbers."
    assert load["parameters"] == [
        {"name": "n", "type": "int", "required": False, "default": 3},
        {"name": "delay", "type": "float", "required": False, "default": 0.0},
    ]
    assert by_name["CLITEST.boom"]["parameters"][0]["name"] == "message"

    text = invoke(runner, "modules", "--import", actions, code=0).stdout
    assert "CLITEST" in text and "wait_for" in text and "Make a list of n numbers." in text
    assert "second line" not in text
    assert "n: int = 3" in text


# ---------------------------------------------------------------------------
# the installed script and `python -m`


def test_the_installed_script_runs_a_workflow(tmp_path: Path, actions: str) -> None:
    assert SCRIPT.exists(), SCRIPT
    wf = write_workflow(tmp_path, pipeline())
    env = dict(os.environ)
    out = subprocess.run(
        [str(SCRIPT), "run", wf, "--import", actions, "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "succeeded" and set(data) >= RESULT_KEYS

    out = subprocess.run(
        [sys.executable, "-m", "geo_infer_ops.cli", "show", data["workflow_id"][:8]],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "succeeded" in out.stdout and "\x1b[" not in out.stdout  # no colour codes when piped

    out = subprocess.run(
        [str(SCRIPT), "show", "ffffffff"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 2
    assert "no run 'ffffffff'" in out.stderr and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------
# docs/cli.md: its example files work as the page says


def _doc_block(text: str, caption: str, lang: str) -> str:
    start = text.index(f"{caption}\n\n```{lang}\n") + len(f"{caption}\n\n```{lang}\n")
    return text[start : text.index("```", start)]


def test_docs_cli_example(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    actions = tmp_path / f"doc_actions_{uuid.uuid4().hex[:8]}.py"
    actions.write_text(_doc_block(text, "`my_actions.py`:", "python"), encoding="utf-8")
    (tmp_path / "pipeline.yaml").write_text(_doc_block(text, "`pipeline.yaml`:", "yaml"), encoding="utf-8")
    broken = _doc_block(text, "With this `broken.yaml`:", "yaml")
    (tmp_path / "broken.yaml").write_text(broken, encoding="utf-8")
    imp = ["--import", str(actions)]

    assert "DEMO.load_points" in invoke(runner, "validate", "pipeline.yaml", *imp, code=0).stdout
    result = invoke(runner, "validate", "broken.yaml", *imp, code=2)
    assert "steps[1].timeout" in result.output and "Did you mean DEMO.load_points?" in result.output

    failed = run_json(runner, "run", "pipeline.yaml", *imp, code=1)
    assert failed["steps"]["publish"]["error"] == "FileNotFoundError: folder out does not exist"
    logs = invoke(runner, "logs", failed["workflow_id"][:4], code=0).stdout
    assert "INFO    load loading 50 points" in logs
    (tmp_path / "out").mkdir()
    run_id = failed["workflow_id"][:4]
    retried = run_json(runner, "retry", run_id, *imp, "--max-retries", "2", "--backoff", "fixed")
    assert retried["steps"]["publish"]["attempts"] == 2
    assert (tmp_path / "out" / "report.txt").read_text() == "[0.0, 0.0, 9.0, 4.0]\n"

    data = run_json(runner, "run", "pipeline.yaml", *imp, "-p", "load.count=20", "-p", "padding=0.5")
    assert data["status"] == "succeeded"
    assert (tmp_path / "out" / "report.txt").read_text() == "[-0.5, -0.5, 9.5, 1.5]\n"
    [row] = run_json(runner, "runs", "--status", "succeeded", "--limit", "1")
    assert row["params"] == {"load.count": 20, "padding": 0.5}
    names = [s["qualified_name"] for s in run_json(runner, "modules", *imp)]
    assert {"OUT.publish", "DEMO.load_points", "SHAPE.bounding_box"} <= set(names)
