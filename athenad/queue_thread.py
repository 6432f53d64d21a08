"""A job queue on a thread of its own, so async code never runs SQLite on its event loop.

A submit of thousands of jobs, or any call waiting for a write lock another process
holds, takes long enough to freeze an event loop; here it runs on one background
thread while the loop goes on. An apsw connection stays on the thread that opened
it, so the thread opens its own queue (a :class:`~athenad.store.contract.JobStore`) on first use and
closes it in :meth:`QueueThread.close`. Calls run one at a time, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from athenad.store.contract import JobStore

T = TypeVar("T")


class QueueThread:
    """Runs ``work(queue)`` calls on one thread that owns the queue ``open_queue()`` makes."""

    def __init__(self, open_queue: Callable[[], JobStore]) -> None:
        self._open_queue = open_queue
        self._queue: JobStore | None = None  # touched only on the thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="athena-queue")
        self._state_lock = threading.Lock()
        self._used = False
        self._closed = False

    async def run(self, work: Callable[[JobStore], T]) -> T:
        """Run ``work`` with the thread's queue; the caller's event loop keeps running.

        Cancelling the awaiting task does not stop work that already started: a
        submit still commits whole (or not at all), as it would have on the loop.
        """
        with self._state_lock:
            if self._closed:
                raise RuntimeError("this queue thread is closed.")
            self._used = True
            future = self._executor.submit(self._call, work)
        import asyncio  # here: a CLI that never awaits need not load it (~30 ms)

        return await asyncio.wrap_future(future)

    def _call(self, work: Callable[[JobStore], T]) -> T:
        if self._queue is None:
            self._queue = self._open_queue()
        return work(self._queue)

    def _close_queue(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def close(self, *, wait: bool = True) -> None:
        """Close the thread's queue once the work already asked for is done; end the thread.

        ``wait=False`` returns at once (for an event loop, which must not block); the
        thread still finishes that work and closes the queue behind it.
        """
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
            if self._used:
                self._executor.submit(self._close_queue)
        self._executor.shutdown(wait=wait)
