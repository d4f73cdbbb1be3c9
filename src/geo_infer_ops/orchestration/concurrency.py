"""Step slots shared by every run in one process, handed out fairly.

``max_parallel`` bounds how many steps run at once. When several runs execute
together (``enable_parallel_execution``), a run may hold more than its fair share
(capacity / active runs) only while no other run is waiting for a slot, so a
1,000-step fan-out cannot starve a 5-step diamond that starts after it.
Slots are counted in memory and released by the engine on every outcome,
timeout and cancellation: there is nothing to leak across processes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable


class SlotPool:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("max_parallel must be at least 1")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._used: dict[object, int] = {}
        self._wakers: dict[object, Callable[[], None]] = {}
        self._waiting: set[object] = set()

    def join(self, owner: object, wake: Callable[[], None]) -> None:
        with self._lock:
            self._used.setdefault(owner, 0)
            self._wakers[owner] = wake

    def leave(self, owner: object) -> None:
        with self._lock:
            self._used.pop(owner, None)
            self._wakers.pop(owner, None)
            self._waiting.discard(owner)
            wakers = [self._wakers[o] for o in self._waiting if o in self._wakers]
        for wake in wakers:
            wake()

    @property
    def in_use(self) -> int:
        with self._lock:
            return sum(self._used.values())

    def try_acquire(self, owner: object) -> bool:
        with self._lock:
            total = sum(self._used.values())
            mine = self._used.get(owner, 0)
            share = max(1, math.floor(self.capacity / max(1, len(self._used))))
            starved = any(o is not owner and self._used.get(o, 0) < share for o in self._waiting)
            if total >= self.capacity or (mine >= share and starved):
                self._waiting.add(owner)
                return False
            self._used[owner] = mine + 1
            self._waiting.discard(owner)
            return True

    def release(self, owner: object) -> None:
        with self._lock:
            if self._used.get(owner, 0) > 0:
                self._used[owner] -= 1
            wakers = [self._wakers[o] for o in self._waiting if o is not owner and o in self._wakers]
        for wake in wakers:
            wake()

    def resize(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("max_parallel must be at least 1")
        with self._lock:
            self.capacity = capacity
            wakers = list(self._wakers.values())
        for wake in wakers:
            wake()
