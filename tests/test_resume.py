"""A run whose process is killed with SIGKILL resumes without redoing finished steps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from geo_infer_ops.errors import RunStateError
from geo_infer_ops.orchestration import WorkflowOrchestrator
from geo_infer_ops.settings import Settings

ACTIONS = textwrap.dedent("""
    import os, time
    from pathlib import Path
    from geo_infer_ops import action

    STATE = Path(os.environ["RESUME_TEST_DIR"])

    def count(name):
        p = STATE / f"{name}.count"
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        return n

    @action("RES", "quick")
    def quick(label: str):
        count(label)
        return label.upper()

    @action("RES", "slow_once")
    def slow_once(ctx, label: str):
        n = count(label)
        if n == 1:
            (STATE / "slow.started").write_text("1")
            time.sleep(60)
        return "".join(ctx.inputs[k] for k in sorted(ctx.inputs)) + label
""")

WORKFLOW = {
    "name": "killable",
    "steps": [
        {"name": "a", "module": "RES", "action": "quick", "parameters": {"label": "a"}},
        {"name": "b", "module": "RES", "action": "quick", "parameters": {"label": "b"}},
        {
            "name": "slow",
            "module": "RES",
            "action": "slow_once",
            "parameters": {"label": "s"},
            "dependencies": ["a", "b"],
        },
        {
            "name": "after",
            "module": "RES",
            "action": "quick",
            "parameters": {"label": "z"},
            "dependencies": ["slow"],
        },
    ],
}

RUNNER = textwrap.dedent("""
    import os, sys, json
    from geo_infer_ops.modules.registry import registry
    from geo_infer_ops.orchestration import WorkflowOrchestrator
    registry.import_module(sys.argv[1])
    orch = WorkflowOrchestrator()
    orch.execute_workflow(json.loads(sys.argv[2]), run_id=sys.argv[3])
""")


@pytest.fixture
def killed_run(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch):
    import json

    actions = tmp_path / "resume_actions.py"
    actions.write_text(ACTIONS)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("RESUME_TEST_DIR", str(state))
    run_id = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(actions), json.dumps(WORKFLOW), run_id],
        env={**os.environ, "GEO_INFER_OPS_HOME": str(home)},
    )
    deadline = time.monotonic() + 30
    while not (state / "slow.started").exists():
        assert proc.poll() is None, "the runner exited early"
        assert time.monotonic() < deadline, "the slow step never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return run_id, actions, state


def test_sigkill_then_resume_finishes_without_rerunning_succeeded_steps(killed_run, home):
    run_id, actions, state = killed_run
    orch = WorkflowOrchestrator(settings=Settings(home=home, imports=[str(actions)]))
    before = orch.store.get_run(run_id)
    assert before["status"] == "running"  # the process died; the store still says so, truthfully
    steps = {r["step"]: r["status"] for r in orch.store.get_steps(run_id)}
    assert steps["a"] == "succeeded" and steps["b"] == "succeeded" and steps["slow"] == "running"

    result = orch.resume_workflow(run_id)
    assert result["status"] == "succeeded"
    assert result["outputs"]["after"] == "Z"
    assert result["outputs"]["slow"] == "ABs"
    counts = {p.stem: int(p.read_text()) for p in state.glob("*.count")}
    assert counts == {"a": 1, "b": 1, "s": 2, "z": 1}
    attempts = [
        (a["step"], a["attempt"], a["status"]) for a in orch.store.get_attempts(run_id) if a["step"] == "slow"
    ]
    assert attempts == [("slow", 1, "lost"), ("slow", 2, "succeeded")]


def test_a_run_owned_by_a_live_process_cannot_be_resumed(home, tmp_path):
    orch = WorkflowOrchestrator(settings=Settings(home=home))
    from geo_infer_ops import action

    @action("RES", "noop")
    def noop():
        return None

    result = orch.execute_workflow({"name": "x", "steps": [{"module": "RES", "action": "noop"}]})
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        from sqlalchemy import update

        from geo_infer_ops.orchestration.engine import owner_id
        from geo_infer_ops.store import tables

        host = owner_id().rpartition(":")[0]
        with orch.store.engine.begin() as conn:
            conn.execute(update(tables.runs).values(status="running", owner=f"{host}:{sleeper.pid}"))
        with pytest.raises(RunStateError, match=str(sleeper.pid)):
            orch.resume_workflow(result["workflow_id"])
    finally:
        sleeper.kill()
        sleeper.wait()
