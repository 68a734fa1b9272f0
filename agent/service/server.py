"""How ``rca serve`` runs the app: uvicorn's h11 protocol with a deadline on request heads,
logging that never writes from the event loop, and a short GIL switch interval.

uvicorn closes idle keep-alive connections, but a connection that sends part of a request
head and stops (slowloris) is held for ever: its keep-alive timer is cancelled by the first
byte, and the app only sees a request once the head is complete. So every connection gets a
deadline when it opens and after each response: the next request head must be complete
within ``service.read_timeout_s``, else the connection is closed. The body is the app's
business (:class:`agent.service.app.BodyLimit` answers 408 for a body that stalls).

The event loop answers every request, and under a burst it competes for the GIL with the
threads that write to the store: each time it blocks in a system call it gives the GIL up,
and getting it back could take the whole switch interval (5 ms). So log records, the access
log's included, go through a queue to a thread that writes them, and the interval is 1 ms.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
from logging.handlers import QueueHandler, QueueListener
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.config import Settings


class HeadDeadlineH11(H11Protocol):
    """h11 that closes a connection whose request head is not complete in time."""

    head_timeout_s = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if not self._waiting_for_head():
            self._disarm()  # the head is in: the app and BodyLimit take over

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def protocol(head_timeout_s: float) -> type[H11Protocol]:
    """The h11 protocol class with this head deadline (uvicorn instantiates it per
    connection, so the setting travels as a class attribute)."""
    return type("HeadDeadlineH11", (HeadDeadlineH11,), {"head_timeout_s": head_timeout_s})


SWITCH_INTERVAL_S = 0.001


class _Handoff(QueueHandler):
    """Hands the record itself to the writer thread: formatting happens there, with the
    record's arguments intact (the JSON format reads an access line's fields from them)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def write_off_the_loop() -> QueueListener:
    """Move the root logger's handlers (as :func:`agent.service.logs.configure` set them) to a
    thread fed by a queue; their filters also run where a record is logged, so that the ids
    bound in that context (request, analysis) are read there. ``stop()`` it last."""
    root = logging.getLogger()
    writers = list(root.handlers)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handoff = _Handoff(records)
    for writer in writers:
        for where in writer.filters:
            handoff.addFilter(where)
    root.handlers[:] = [handoff]
    listener = QueueListener(records, *writers, respect_handler_level=True)
    listener.start()
    return listener


def run(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` on ``service.host:service.port`` until interrupted."""
    service = settings.service
    listener = write_off_the_loop()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        uvicorn.run(
            app,
            host=service.host,
            port=service.port,
            log_config=None,  # uvicorn leaves the logging configured by ``rca serve`` alone
            http=protocol(service.read_timeout_s),
        )
    finally:
        listener.stop()
