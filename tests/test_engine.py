"""The engine on real threads, processes and stores: ordering, retries, timeouts, fallbacks, cancellation."""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from geo_infer_ops import OperationsManager, action
from geo_infer_ops.clock import FakeClock
from geo_infer_ops.errors import ConfigError, RunNotFoundError
from geo_infer_ops.orchestration import WorkflowOrchestrator
from geo_infer_ops.settings import Settings


def make(settings: Settings, **kw) -> WorkflowOrchestrator:
    return WorkflowOrchestrator(settings=settings, **kw)


def spec_diamond(**extra) -> dict:
    return {
        "name": "environmental_analysis",
        "steps": [
            {"module": "DATA", "action": "load_sensor_data"},
            {"module": "SPACE", "action": "spatial_analysis"},
            {"module": "TIME", "action": "temporal_analysis"},
            {"module": "AI", "action": "predict_conditions"},
            {"module": "APP", "action": "generate_report"},
        ],
        "dependencies": {"SPACE": ["DATA"], "TIME": ["DATA"], "AI": ["SPACE", "TIME"], "APP": ["AI"]},
        **extra,
    }


def register_diamond(fail_ai: int = 0) -> dict:
    calls = {"ai": 0}

    @action("DATA", "load_sensor_data", override=True)
    def load(n: int = 5):
        return list(range(n))

    @action("SPACE", "spatial_analysis", override=True)
    def space(ctx):
        return sum(ctx.inputs["DATA.load_sensor_data"])

    @action("TIME", "temporal_analysis", override=True)
    def temporal(ctx):
        return max(ctx.inputs.only())

    @action("AI", "predict_conditions", override=True)
    def ai(ctx):
        calls["ai"] += 1
        if calls["ai"] <= fail_ai:
            raise RuntimeError(f"model diverged (call {calls['ai']})")
        ctx.metric("model_accuracy", 0.87)
        ctx.log.info("predicting from %s", sorted(ctx.inputs))
        return ctx.inputs["SPACE.spatial_analysis"] * 100 + ctx.inputs["TIME.temporal_analysis"]

    @action("AI", "use_simple_regression", override=True)
    def simple(ctx):
        return -1

    @action("APP", "generate_report", override=True)
    def report(ctx):
        return {"prediction": ctx.inputs.only()}

    return calls


def test_spec_snippet_runs_as_written(settings):
    register_diamond()
    ops = OperationsManager({"home": str(settings.home)})
    workflow = ops.define_workflow(spec_diamond())
    results = ops.execute_workflow(workflow)
    assert results["status"] == "succeeded"
    assert results["outputs"]["APP.generate_report"] == {"prediction": 1004}
    assert set(results["steps"]) == {
        "DATA.load_sensor_data",
        "SPACE.spatial_analysis",
        "TIME.temporal_analysis",
        "AI.predict_conditions",
        "APP.generate_report",
    }
    step = results["steps"]["AI.predict_conditions"]
    assert step["status"] == "succeeded" and step["attempts"] == 1 and step["used_fallback"] is False
    assert results["started_at"] <= results["finished_at"]
    assert ops.orchestrator.store.get_run(results["workflow_id"])["status"] == "succeeded"


def test_everything_is_persisted(database_url, home):
    register_diamond()
    orch = WorkflowOrchestrator(settings=Settings(home=home, database_url=database_url))
    result = orch.execute_workflow(spec_diamond())
    store = orch.store
    rows = {r["step"]: r for r in store.get_steps(result["workflow_id"])}
    assert all(r["status"] == "succeeded" for r in rows.values())
    assert rows["DATA.load_sensor_data"]["result"] == "[0,1,2,3,4]"
    attempts = store.get_attempts(result["workflow_id"])
    assert len(attempts) == 5 and all(a["finished_at"] >= a["started_at"] for a in attempts)
    metrics = store.get_metrics(result["workflow_id"])
    assert [(m["step"], m["name"], m["value"]) for m in metrics] == [
        ("AI.predict_conditions", "model_accuracy", 0.87)
    ]
    kinds = [e["kind"] for e in store.get_events(result["workflow_id"])]
    assert kinds[0] == "run_created" and kinds[-1] == "run_finished"
    logs = orch.get_logs(result["workflow_id"], step="AI.predict_conditions")
    assert logs and logs[0]["run_id"] == result["workflow_id"] and "predicting" in logs[0]["message"]


def test_step_starts_when_its_own_dependencies_finish_not_level_by_level(settings):
    started: dict[str, float] = {}

    @action("T", "sleep")
    def sleep(seconds: float, label: str):
        started[label] = time.monotonic()
        time.sleep(seconds)
        return label

    # slow (0.6 s) and fast (0.05 s) are independent; after_fast needs only fast.
    wf = {
        "name": "eager",
        "steps": [
            {
                "name": "slow",
                "module": "T",
                "action": "sleep",
                "parameters": {"seconds": 0.6, "label": "slow"},
            },
            {
                "name": "fast",
                "module": "T",
                "action": "sleep",
                "parameters": {"seconds": 0.05, "label": "fast"},
            },
            {
                "name": "after_fast",
                "module": "T",
                "action": "sleep",
                "parameters": {"seconds": 0.0, "label": "after"},
                "dependencies": ["fast"],
            },
        ],
    }
    result = make(settings).execute_workflow(wf)
    assert result["status"] == "succeeded"
    assert started["after"] - started["slow"] < 0.4  # did not wait for the slow sibling


def test_independent_steps_run_in_parallel_up_to_max_parallel(home):
    lock = threading.Lock()
    live = {"now": 0, "peak": 0}

    @action("T", "busy")
    def busy(i: int):
        with lock:
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])
        time.sleep(0.05)
        with lock:
            live["now"] -= 1

    wf = {
        "name": "fan",
        "steps": [
            {"name": f"s{i}", "module": "T", "action": "busy", "parameters": {"i": i}} for i in range(12)
        ],
    }
    result = WorkflowOrchestrator(settings=Settings(home=home, max_parallel=3)).execute_workflow(wf)
    assert result["status"] == "succeeded"
    assert live["peak"] == 3


def test_retries_follow_backoff_on_the_timer_heap_with_a_fake_clock(settings):
    calls = register_diamond(fail_ai=2)
    clock = FakeClock()
    orch = make(settings, clock=clock, rng=random.Random(7))
    wf = spec_diamond(
        error_handling={
            "retry_failed_steps": True,
            "max_retries": 3,
            "backoff_strategy": "exponential",
            "base_delay": 30,
            "max_delay": 600,
            "jitter": 0,
        }
    )
    t0 = time.monotonic()
    result = orch.execute_workflow(wf)
    assert time.monotonic() - t0 < 5  # 30 s + 60 s of backoff passed on the fake clock only
    assert result["status"] == "succeeded" and calls["ai"] == 3
    assert result["steps"]["AI.predict_conditions"]["attempts"] == 3
    events = [e for e in orch.store.get_events(result["workflow_id"]) if e["kind"] == "retry_scheduled"]
    assert [e["message"].rsplit("retrying in ", 1)[1] for e in events] == ["30.00s", "60.00s"]
    assert events[1]["ts"] - events[0]["ts"] == pytest.approx(30, abs=0.5)


def test_fallback_runs_after_last_retry_and_feeds_dependents(settings):
    calls = register_diamond(fail_ai=99)
    wf = spec_diamond(
        error_handling={
            "retry_failed_steps": True,
            "max_retries": 1,
            "base_delay": 0,
            "fallback_actions": {"AI.predict_conditions": "use_simple_regression"},
        }
    )
    result = make(settings).execute_workflow(wf)
    assert result["status"] == "succeeded"
    assert calls["ai"] == 2
    ai = result["steps"]["AI.predict_conditions"]
    assert ai["used_fallback"] is True and ai["attempts"] == 3
    assert result["outputs"]["APP.generate_report"] == {"prediction": -1}
    attempts = make(settings).debug_workflow_execution(result["workflow_id"])["steps"][3]["attempts"]
    assert [a["action"] for a in attempts] == ["AI.predict_conditions"] * 2 + ["AI.use_simple_regression"]


def test_failure_marks_only_descendants_upstream_failed(settings):
    @action("T", "ok")
    def ok():
        return 1

    @action("T", "boom")
    def boom():
        raise ValueError("bad tile")

    wf = {
        "name": "partial",
        "steps": [
            {"name": "a", "module": "T", "action": "ok"},
            {"name": "b", "module": "T", "action": "boom", "dependencies": ["a"]},
            {"name": "c", "module": "T", "action": "ok", "dependencies": ["b"]},
            {"name": "d", "module": "T", "action": "ok", "dependencies": ["c"]},
            {"name": "e", "module": "T", "action": "ok", "dependencies": ["a"]},
        ],
    }
    result = make(settings).execute_workflow(wf)
    assert result["status"] == "failed"
    status = {k: v["status"] for k, v in result["steps"].items()}
    assert status == {
        "a": "succeeded",
        "b": "failed",
        "c": "upstream_failed",
        "d": "upstream_failed",
        "e": "succeeded",
    }
    assert "ValueError: bad tile" in result["steps"]["b"]["error"]
    assert result["error"] == "1 step(s) did not succeed: b"
    debug = make(settings).debug_workflow_execution(result["workflow_id"], debug_level="verbose")
    b = next(s for s in debug["steps"] if s["name"] == "b")
    assert "raise ValueError" in b["attempts"][0]["traceback"]
    assert debug["failed_steps"] == ["b"]


def test_timeout_kills_the_process_and_its_children(settings, tmp_path):
    marker = tmp_path / "child.pid"

    @action("T", "hang")
    def hang(marker: str):
        import subprocess

        child = subprocess.Popen(["sleep", "60"])
        Path(marker).write_text(str(child.pid))
        time.sleep(60)

    wf = {
        "name": "slow",
        "steps": [
            {
                "name": "h",
                "module": "T",
                "action": "hang",
                "timeout": 1,
                "parameters": {"marker": str(marker)},
            }
        ],
    }
    t0 = time.monotonic()
    result = make(settings).execute_workflow(wf)
    assert time.monotonic() - t0 < 10
    assert result["status"] == "failed"
    assert result["steps"]["h"]["status"] == "timed_out"
    assert "timeout of 1s" in result["steps"]["h"]["error"]
    pid = int(marker.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), "the grandchild of a timed-out step must be killed with its process group"


def test_timed_out_thread_step_is_abandoned_and_fenced(settings):
    release = threading.Event()

    @action("T", "stuck")
    def stuck():
        release.wait(5)
        return "late"

    wf = {
        "name": "threads",
        "steps": [{"name": "s", "module": "T", "action": "stuck", "timeout": 0.3, "executor": "thread"}],
    }
    result = make(settings).execute_workflow(wf)
    release.set()
    assert result["steps"]["s"]["status"] == "timed_out"
    assert "abandoned" in result["steps"]["s"]["error"]
    assert "s" not in result["outputs"]


def test_timed_out_step_is_retried_then_succeeds(settings, tmp_path):
    counter = tmp_path / "count"

    @action("T", "slow_first")
    def slow_first(path: str):
        p = Path(path)
        n = int(p.read_text()) + 1 if p.exists() else 1
        p.write_text(str(n))
        if n == 1:
            time.sleep(30)
        return n

    wf = {
        "name": "retry-timeout",
        "steps": [
            {
                "name": "s",
                "module": "T",
                "action": "slow_first",
                "timeout": 0.5,
                "parameters": {"path": str(counter)},
            }
        ],
        "error_handling": {"retry_failed_steps": True, "max_retries": 2, "base_delay": 0},
    }
    result = make(settings).execute_workflow(wf)
    assert result["status"] == "succeeded"
    assert result["outputs"]["s"] == 2
    statuses = [
        a["status"]
        for a in make(settings).debug_workflow_execution(result["workflow_id"])["steps"][0]["attempts"]
    ]
    assert statuses == ["timed_out", "succeeded"]


def test_process_steps_pass_dataframes_by_reference(settings):
    @action("T", "frame", cpu_bound=True)
    def frame(n: int):
        return pd.DataFrame({"sensor_id": range(n), "pm10": [float(i) for i in range(n)], "pid": os.getpid()})

    @action("T", "mean")
    def mean(ctx):
        df = ctx.inputs["frame"]
        return {"mean": float(df["pm10"].mean()), "producer_pid": int(df["pid"].iloc[0])}

    wf = {
        "name": "frames",
        "steps": [
            {"name": "frame", "module": "T", "action": "frame", "parameters": {"n": 1000}},
            {"name": "mean", "module": "T", "action": "mean", "dependencies": ["frame"]},
        ],
    }
    orch = make(settings)
    result = orch.execute_workflow(wf)
    assert result["status"] == "succeeded"
    assert result["outputs"]["mean"]["mean"] == pytest.approx(499.5)
    assert result["outputs"]["mean"]["producer_pid"] != os.getpid()
    artifacts = orch.store.get_artifacts(result["workflow_id"])
    assert [a["format"] for a in artifacts] == ["parquet"]
    assert (settings.artifacts_dir / artifacts[0]["path"]).exists()


def test_cancel_stops_running_and_pending_steps(settings):
    started = threading.Event()

    @action("T", "wait")
    def wait(ctx):
        started.set()
        time.sleep(30)

    @action("T", "after")
    def after():
        return 1

    wf = {
        "name": "cancel",
        "steps": [
            {"name": "w", "module": "T", "action": "wait", "executor": "process"},
            {"name": "x", "module": "T", "action": "after", "dependencies": ["w"]},
        ],
    }
    orch = make(settings)
    future = orch.submit_workflow(wf)
    deadline = time.monotonic() + 10
    run_id = None
    while time.monotonic() < deadline and run_id is None:
        runs = orch.list_runs(status="running")
        run_id = runs[0]["workflow_id"] if runs else None
        time.sleep(0.02)
    while time.monotonic() < deadline and orch.monitor_workflow(run_id)["running_steps"] != ["w"]:
        time.sleep(0.02)
    assert orch.cancel_workflow(run_id, "operator asked")
    result = future.result(timeout=10)
    assert result["status"] == "cancelled"
    assert {k: v["status"] for k, v in result["steps"].items()} == {"w": "cancelled", "x": "cancelled"}


def test_retry_workflow_continues_the_same_run(settings, tmp_path):
    flag = tmp_path / "fixed"
    runs = {"a": 0, "b": 0}

    @action("T", "a")
    def a():
        runs["a"] += 1
        return "a"

    @action("T", "b")
    def b(ctx):
        runs["b"] += 1
        if not flag.exists():
            raise OSError("sensor feed offline")
        return ctx.inputs["a"] + "b"

    wf = {
        "name": "retryable",
        "steps": [
            {"name": "a", "module": "T", "action": "a"},
            {"name": "b", "module": "T", "action": "b", "dependencies": ["a"]},
            {"name": "c", "module": "T", "action": "a", "dependencies": ["b"]},
        ],
    }
    orch = make(settings)
    first = orch.execute_workflow(wf)
    assert first["status"] == "failed" and first["steps"]["c"]["status"] == "upstream_failed"
    flag.write_text("yes")
    second = orch.retry_workflow(
        first["workflow_id"][:8], retry_config={"max_retries": 3, "backoff_strategy": "exponential"}
    )
    assert second["workflow_id"] == first["workflow_id"]
    assert second["status"] == "succeeded"
    assert second["outputs"]["b"] == "ab"
    assert runs == {"a": 2, "b": 2}  # a ran once per run of its own + once as c; never re-ran as step a
    assert second["steps"]["b"]["attempts"] == 2
    with pytest.raises(ConfigError, match="max_retires"):
        orch.retry_workflow(first["workflow_id"], retry_config={"max_retires": 3})


def test_handle_workflow_errors_applies_the_policy(settings, tmp_path):
    flag = tmp_path / "ok"

    @action("T", "flaky")
    def flaky():
        if not flag.exists():
            raise ConnectionError("upstream API down")
        return "fine"

    wf = {
        "name": "handled",
        "steps": [{"name": "f", "module": "T", "action": "flaky"}],
        "error_handling": {"retry_failed_steps": True, "max_retries": 0},
    }
    orch = make(settings)
    failed = orch.execute_workflow(wf)
    flag.write_text("1")
    handled = orch.handle_workflow_errors(failed["workflow_id"], ConnectionError("upstream API down"))
    assert handled["action"] == "retried" and handled["failed_steps"] == ["f"]
    assert handled["result"]["status"] == "succeeded"
    events = [e["kind"] for e in orch.store.get_events(failed["workflow_id"])]
    assert "error_reported" in events and "run_retried" in events


def test_parallel_workflows_share_slots_fairly(home):
    order: list[str] = []
    lock = threading.Lock()

    @action("T", "work")
    def work(tag: str):
        with lock:
            order.append(tag)
        time.sleep(0.02)

    orch = WorkflowOrchestrator(settings=Settings(home=home, max_parallel=2))
    cfg = orch.enable_parallel_execution({"max_parallel_workflows": 2, "resource_allocation": "dynamic"})
    assert cfg["max_parallel_workflows"] == 2
    big = {
        "name": "big",
        "steps": [
            {"name": f"b{i}", "module": "T", "action": "work", "parameters": {"tag": "big"}}
            for i in range(40)
        ],
    }
    small = {
        "name": "small",
        "steps": [
            {"name": f"s{i}", "module": "T", "action": "work", "parameters": {"tag": "small"}}
            for i in range(4)
        ],
    }
    f1 = orch.submit_workflow(big)
    time.sleep(0.1)
    f2 = orch.submit_workflow(small)
    assert f1.result(30)["status"] == "succeeded" and f2.result(30)["status"] == "succeeded"
    last_small = max(i for i, tag in enumerate(order) if tag == "small")
    assert last_small < len(order) - 10, "the small run must not wait for the big fan-out to drain"


def test_monitor_workflow_reports_progress_and_eta(settings):
    register_diamond()
    orch = make(settings)
    first = orch.execute_workflow(spec_diamond())
    status = orch.monitor_workflow(first["workflow_id"])
    assert status["progress"]["percent"] == 100.0 and status["eta_s"] == 0.0
    assert status["progress"]["by_status"] == {"succeeded": 5}
    with pytest.raises(RunNotFoundError, match="geo-infer-ops runs"):
        orch.monitor_workflow("does-not-exist")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_an_action_calling_sys_exit_fails_its_step_and_the_run_goes_on(settings):
    import sys

    @action("T", "quits")
    def quits():
        sys.exit(3)

    @action("T", "fine")
    def fine():
        return "ok"

    wf = {"name": "exits", "steps": [{"name": "q", "module": "T", "action": "quits"},
                                     {"name": "f", "module": "T", "action": "fine"}]}
    result = make(settings).execute_workflow(wf)
    assert result["steps"]["q"]["status"] == "failed" and "SystemExit" in result["steps"]["q"]["error"]
    assert result["outputs"]["f"] == "ok"
