"""The webhook's intake lane, and the rule that background work yields to it.

Alertmanager waits for the webhook's answer, and a slow answer delays every receiver behind
it, so under a burst the answers come first:

- the webhook's writes run on a few threads of their own, strictly in arrival order, rather
  than on the shared pool of request threads: twenty notifications in twenty threads contend
  for the GIL and the store in no particular order, and the unlucky ones waited seconds;
- analyses and Slack posts are batch work: before taking the next job, a worker waits while
  the lane is busy (at most ``max_wait_s``, so a sustained flood slows them, never stops
  them). On two cores they otherwise took half the CPU from the answers during a burst.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")
INTAKE_THREADS = 4
YIELD_MAX_WAIT_S = 1.0


class Lane:
    """A few threads that run one kind of work in arrival order; :meth:`wait_idle` lets
    other work wait its turn."""

    def __init__(self, threads: int = INTAKE_THREADS, name: str = "rca-intake") -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Event()
        self._idle.set()

    async def run(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        with self._lock:
            self._busy += 1
            self._idle.clear()
        try:
            context = contextvars.copy_context()  # the request's ids reach its log lines
            future = self._pool.submit(lambda: context.run(work, *args, **kwargs))
            return await asyncio.wrap_future(future)
        finally:
            with self._lock:
                self._busy -= 1
                if self._busy == 0:
                    self._idle.set()

    def wait_idle(self, max_wait_s: float = YIELD_MAX_WAIT_S) -> float:
        """Block while work is queued or running here, at most ``max_wait_s``; returns the
        seconds waited."""
        began = time.monotonic()
        self._idle.wait(max_wait_s)
        return time.monotonic() - began
