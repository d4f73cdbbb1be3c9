"""Smoke tests for the benchmark harness (``pytest bench``). No timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _workloads as wl
import engine_overhead as eo


def test_workload_shapes() -> None:
    fan = wl.fanout(3)
    assert [n for n, _ in fan] == ["root", "t0", "t1", "t2", "sink"]
    assert fan[-1] == ("sink", ["t0", "t1", "t2"])
    assert wl.chain(3) == [("c0", []), ("c1", ["c0"]), ("c2", ["c1"])]
    assert [n for n, _ in wl.diamond()] == list(wl.DIAMOND_STEPS)
    for dag in (fan, wl.chain(4), wl.diamond()):
        seen: set[str] = set()
        for name, deps in dag:  # topological order
            assert set(deps) <= seen
            seen.add(name)


def test_summarize() -> None:
    out = eo.summarize({"tasks": 5, "runs": 10, "samples_s": [0.2, 0.1, 0.3]})
    assert out["best_s"] == 0.1
    assert abs(out["per_run_ms"] - 10.0) < 1e-9
    assert abs(out["per_task_us"] - 2000.0) < 1e-6


def test_dask_runs_every_workload() -> None:
    sizes = {"fanout": 4, "chain": 3, "diamond_runs": 2, "scale": 8}
    res = eo.run_dask(sizes, repeats=1)
    for system in (eo.DASK, eo.DELAYED):
        assert res[system]["available"]
        assert set(res[system]["workloads"]) == {"fanout", "chain", "diamond", "scale"}
        assert res[system]["workloads"]["fanout"]["tasks"] == 6


def test_report_with_unavailable_systems() -> None:
    fake = {"tasks": 5, "runs": 1, "samples_s": [0.01]}
    results = {
        "meta": {"repeats": 1, "cpu_count": 2, "python": "3", "platform": "x"},
        "sizes": {"fanout": 3, "chain": 3, "diamond_runs": 1, "scale": 9},
        "systems": {
            eo.GIO: {
                "available": True,
                "startup": {"startup_s": 0.1},
                "workloads": {"diamond": eo.summarize(fake)},
            },
            eo.DASK: {
                "available": True,
                "startup": {"startup_s": 0.1},
                "workloads": {"diamond": eo.summarize(fake)},
            },
            eo.DELAYED: {"available": False, "error": "nope"},
            eo.PREFECT: {"available": False, "error": "skipped"},
        },
    }
    results["ratios_vs_geo_infer_ops"] = eo.compute_ratios(results)
    assert results["ratios_vs_geo_infer_ops"]["diamond"][eo.DASK] == 1.0
    md = eo.markdown(results)
    assert "| 5-step diamond, 1 runs (ms/run) | 10.0 | 10.0 (1.0x) | n/a | n/a |" in md
    assert "Prefect 3: unavailable — skipped" in md
