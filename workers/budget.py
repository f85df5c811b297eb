"""A per-worker byte budget: what the events one worker handles at once may hold in memory.

Every chain stage of a worker process shares one ``ByteBudget``. An event is admitted when
what it may hold fits beside what the events running already hold, or when nothing runs (an
event larger than the whole budget runs alone, never forever refused). Admission is first
come, first served, so a large event is not starved by a stream of small ones.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class ByteBudget:
    """Bytes held by the events running, at most ``limit`` (one over-large event alone)."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError("a byte budget must be positive")
        self.limit = limit
        self.held = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, size: int) -> bool:
        return self.held == 0 or self.held + size <= self.limit

    def _admit(self) -> None:
        while self._waiting and self._fits(self._waiting[0][0]):
            size, admitted = self._waiting.popleft()
            if not admitted.done():  # a waiter cancelled meanwhile has left the queue
                self.held += size
                admitted.set_result(None)

    async def acquire(self, size: int) -> None:
        if not self._waiting and self._fits(size):
            self.held += size
            return
        admitted = asyncio.get_running_loop().create_future()
        entry = (size, admitted)
        self._waiting.append(entry)
        try:
            await admitted
        except asyncio.CancelledError:
            if admitted.done() and not admitted.cancelled():
                self.release(size)  # admitted, then cancelled before it could run
            else:
                if entry in self._waiting:
                    self._waiting.remove(entry)
                self._admit()  # the next in line may fit now
            raise

    def release(self, size: int) -> None:
        self.held -= size
        self._admit()

    @asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[None]:
        """Wait until ``size`` bytes fit, hold them while the body runs."""
        await self.acquire(size)
        try:
            yield
        finally:
            self.release(size)
