"""What a running action sees: ``ctx.inputs``, ``ctx.log``, ``ctx.metric`` and friends."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..artifacts import ArtifactStore, StoredResult
from ..logs import STEP_LOGGER


class StepInputs(Mapping[str, Any]):
    """Upstream results by step name, loaded from their artifacts on first access."""

    def __init__(
        self,
        refs: Mapping[str, StoredResult],
        artifacts: ArtifactStore,
        preloaded: Mapping[str, Any] | None = None,
    ) -> None:
        self._refs = dict(refs)
        self._artifacts = artifacts
        self._cache: dict[str, Any] = dict(preloaded or {})

    def __getitem__(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        if name not in self._refs:
            raise KeyError(f"{name!r} is not an upstream step of this step; upstream: {sorted(self._refs)}")
        value = self._cache[name] = self._artifacts.load(self._refs[name])
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._refs)

    def __len__(self) -> int:
        return len(self._refs)

    def only(self) -> Any:
        """The single upstream result (a convenience for linear pipelines)."""
        if len(self._refs) != 1:
            raise ValueError(f"this step has {len(self._refs)} upstream steps, not one: {sorted(self._refs)}")
        return self[next(iter(self._refs))]


class StepArtifacts:
    """The artifact store, scoped to one step: a folder to write files into, and load/save."""

    def __init__(self, store: ArtifactStore, run_id: str, step: str) -> None:
        self._store = store
        self._run_id = run_id
        self._step = step

    @property
    def dir(self) -> Path:
        return self._store.step_dir(self._run_id, self._step)

    @property
    def root(self) -> Path:
        return self._store.root

    def path(self, filename: str) -> Path:
        return self.dir / filename


class StepContext:
    """Handed to an action that declares a ``ctx`` parameter."""

    def __init__(
        self,
        *,
        run_id: str,
        workflow: str,
        step: str,
        attempt: int,
        parameters: Mapping[str, Any],
        inputs: StepInputs,
        artifacts: StepArtifacts,
        record_metric: Callable[[str, float, float], None],
        ancestors: StepInputs | None = None,
        database_url: str = "",
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.attempt = attempt
        self.parameters = dict(parameters)
        self.inputs = inputs
        self.ancestors = ancestors if ancestors is not None else inputs
        self._database_url = database_url
        self.artifacts = artifacts
        self.log = logging.LoggerAdapter(
            logging.getLogger(STEP_LOGGER), {"run_id": run_id, "step": step, "attempt": attempt}
        )
        self._record_metric = record_metric

    def metric(self, name: str, value: float) -> None:
        """Report a metric (e.g. ``model_accuracy``); stored with the attempt, read by the monitor."""
        number = float(value)
        self._record_metric(str(name), number, time.time())

    def run_record(self) -> dict[str, Any]:
        """The run as stored so far: its row, its steps and the workflow definition (for provenance)."""
        if not self._database_url:
            raise RuntimeError("this step context has no state store to read the run from")
        from ..store import Store

        store = Store(self._database_url)
        try:
            run = store.get_run(self.run_id)
            return {
                "run": run,
                "steps": store.get_steps(self.run_id),
                "definition": store.get_workflow_definition(run["workflow_id"]),
            }
        finally:
            store.close()

    def __repr__(self) -> str:
        return f"StepContext(run_id={self.run_id!r}, step={self.step!r}, attempt={self.attempt})"
