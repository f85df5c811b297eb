"""Lookups asked for in one turn of the event loop, answered by one query.

A stage handles a batch's events at once (``handle_batch``), and each event asks the key
registry whether its version is tombstoned: a batch of 32 was 32 single-document reads of
one collection. ``Coalesced.get`` queues its key and the first ``get`` of a turn schedules
the fetch; the fetch runs once the loop has run every callback already ready, so it takes
every key the batch's handlers asked for before their first wait, in one query.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Coalesced(Generic[K, V]):
    """``get(key)``: ``fetch``'s value for ``key`` (None if it returned none), fetched with
    the keys of every other ``get`` waiting at the same moment. A fetch that raises raises in
    every ``get`` it was answering."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[dict[K, V]]]) -> None:
        self.fetch = fetch
        self.waiting: dict[K, list[asyncio.Future[V | None]]] = {}
        self.fetching: set[asyncio.Task[None]] = set()  # held, so none is collected mid-way

    async def get(self, key: K) -> V | None:
        loop = asyncio.get_running_loop()
        if not self.waiting:
            task = loop.create_task(self.answer())
            self.fetching.add(task)
            task.add_done_callback(self.fetching.discard)
        future: asyncio.Future[V | None] = loop.create_future()
        self.waiting.setdefault(key, []).append(future)
        return await future

    async def answer(self) -> None:
        waiting, self.waiting = self.waiting, {}
        futures = [future for queued in waiting.values() for future in queued]
        try:
            found = await self.fetch(list(waiting))
        except asyncio.CancelledError:
            for future in futures:
                future.cancel()
            raise
        except Exception as exc:
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for key, queued in waiting.items():
            for future in queued:
                if not future.done():  # its waiter was cancelled meanwhile
                    future.set_result(found.get(key))
