"""Scheduled runs: fire times, catch-up, overlap and restarts, on a fake clock."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest

from geo_infer_ops import action
from geo_infer_ops.clock import FakeClock
from geo_infer_ops.errors import ConfigError
from geo_infer_ops.orchestration import WorkflowOrchestrator
from geo_infer_ops.orchestration.scheduler import Scheduler

T0 = datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc).timestamp()


def hourly(name: str = "hourly_job") -> dict:
    return {"name": name, "schedule": "hourly", "steps": [{"name": "s", "module": "SCHED", "action": "noop"}]}


@pytest.fixture
def clock():
    @action("SCHED", "noop")
    def noop():
        return 1

    return FakeClock(T0)


def started(events):
    out = [e for e in events if not e["skipped"]]
    for e in out:
        assert e["future"].result(30)["status"] == "succeeded"
    return out


def test_fires_at_the_next_full_hour_and_not_before(settings, clock):
    scheduler = Scheduler(WorkflowOrchestrator(settings=settings, clock=clock))
    entry = scheduler.add(hourly())
    assert entry["next_fire"] == "2026-01-01T01:00:00+00:00"
    assert scheduler.tick() == []
    clock.advance(30 * 60)
    events = started(scheduler.tick())
    assert [e["scheduled_for"] for e in events] == ["2026-01-01T01:00:00+00:00"]
    assert scheduler.tick() == []


def test_missed_fire_times_run_once_without_catchup_and_each_with_it(settings, clock):
    orch = WorkflowOrchestrator(settings=settings, clock=clock)
    lazy, eager = Scheduler(orch), Scheduler(orch)
    lazy.add(hourly("lazy"))
    eager.add(hourly("eager"), catchup=True)
    clock.advance(3 * 3600 + 60)  # 01:00, 02:00 and 03:00 were missed
    assert len(started(lazy.tick())) == 1
    assert [e["scheduled_for"][11:16] for e in started(eager.tick())] == ["01:00", "02:00", "03:00"]


def test_overlap_skip_leaves_a_running_run_alone(settings, clock):
    gate = threading.Event()

    @action("SCHED", "slow")
    def slow():
        gate.wait(30)

    wf = {"name": "slow_job", "schedule": "every 10m", "steps": [{"module": "SCHED", "action": "slow"}]}
    scheduler = Scheduler(WorkflowOrchestrator(settings=settings, clock=clock))
    scheduler.add(wf)
    clock.advance(600)
    first = scheduler.tick()
    clock.advance(600)
    second = scheduler.tick()
    gate.set()
    assert not first[0]["skipped"] and second[0]["skipped"]
    assert "still going" in second[0]["reason"]
    assert first[0]["future"].result(30)["status"] == "succeeded"


def test_a_restarted_scheduler_continues_after_the_last_stored_run(settings, clock):
    orch = WorkflowOrchestrator(settings=settings, clock=clock)
    first = Scheduler(orch)
    first.add(hourly())
    clock.advance(30 * 60)
    started(first.tick())  # the 01:00 run
    again = Scheduler(orch)
    assert again.add(hourly())["next_fire"] == "2026-01-01T02:00:00+00:00"


def test_a_workflow_without_schedule_is_refused(settings, clock):
    scheduler = Scheduler(WorkflowOrchestrator(settings=settings, clock=clock))
    with pytest.raises(ConfigError, match="schedule"):
        scheduler.add({"name": "once", "steps": [{"module": "SCHED", "action": "noop"}]})


def test_schedule_command_runs_now_and_stops_after_max_runs(tmp_path):
    from typer.testing import CliRunner

    from geo_infer_ops.cli import app

    actions = tmp_path / "sched_actions.py"
    actions.write_text(
        "from geo_infer_ops import action\n\n@action('SCHEDCLI', 'tick')\ndef tick():\n    return 1\n"
    )
    wf = tmp_path / "every.yaml"
    wf.write_text("name: every_minute\nschedule: every 1m\nsteps:\n  - {module: SCHEDCLI, action: tick}\n")
    result = CliRunner().invoke(
        app, ["schedule", str(wf), "--run-now", "--max-runs", "1", "--import", str(actions)]
    )
    assert result.exit_code == 0, result.output
    assert "scheduled every_minute (every 1m)" in result.output and "started every_minute" in result.output
