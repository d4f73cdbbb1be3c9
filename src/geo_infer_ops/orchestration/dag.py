"""The plan of a workflow: who waits for whom, in O(V+E).

The engine only needs three things from the graph: how many unfinished
dependencies each step has, who to release when a step finishes, and everything
downstream of a failed step. The critical path (the chain of steps whose durations
add up to the longest) is what ``debug_workflow_execution`` reports as the place
to make a run faster.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from graphlib import TopologicalSorter

from .spec import Workflow


@dataclass(frozen=True)
class Plan:
    """Dependencies (``upstream``) and dependents (``downstream``) of every step, in topological order."""

    order: tuple[str, ...]
    upstream: Mapping[str, tuple[str, ...]]
    downstream: Mapping[str, tuple[str, ...]]

    @classmethod
    def from_workflow(cls, workflow: Workflow) -> Plan:
        return cls.from_edges({s.name: s.dependencies for s in workflow.steps})

    @classmethod
    def from_edges(cls, upstream: Mapping[str, Iterable[str]]) -> Plan:
        ups = {name: tuple(deps) for name, deps in upstream.items()}
        downs: dict[str, list[str]] = {name: [] for name in ups}
        for name, deps in ups.items():
            for dep in deps:
                downs[dep].append(name)
        order = tuple(TopologicalSorter(ups).static_order())
        return cls(order, ups, {k: tuple(v) for k, v in downs.items()})

    def roots(self) -> list[str]:
        return [name for name in self.order if not self.upstream[name]]

    def ancestors(self, name: str) -> set[str]:
        """Every step upstream of ``name`` (transitively); O(size of the answer)."""
        seen: set[str] = set()
        stack = list(self.upstream[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.upstream[current])
        return seen

    def descendants(self, name: str) -> list[str]:
        """Every step downstream of ``name``, in topological order."""
        seen: set[str] = set()
        stack = list(self.downstream[name])
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(self.downstream[current])
        return [n for n in self.order if n in seen]

    def critical_path(self, durations: Mapping[str, float]) -> tuple[list[str], float]:
        """Longest chain by summed duration; missing durations count as zero."""
        best: dict[str, float] = {}
        previous: dict[str, str | None] = {}
        for name in self.order:
            own = float(durations.get(name) or 0.0)
            parent = max(self.upstream[name], key=lambda d: best[d], default=None)
            best[name] = own + (best[parent] if parent is not None else 0.0)
            previous[name] = parent
        if not best:
            return [], 0.0
        end = max(best, key=lambda n: best[n])
        path: list[str] = []
        node: str | None = end
        while node is not None:
            path.append(node)
            node = previous[node]
        return list(reversed(path)), best[end]
