"""How ``rca serve`` runs the app: uvicorn's h11 protocol with a deadline on request heads.

uvicorn closes idle keep-alive connections, but a connection that sends part of a request
head and stops (slowloris) is held for ever: its keep-alive timer is cancelled by the first
byte, and the app only sees a request once the head is complete. So every connection gets a
deadline when it opens and after each response: the next request head must be complete
within ``service.read_timeout_s``, else the connection is closed. The body is the app's
business (:class:`agent.service.app.BodyLimit` answers 408 for a body that stalls).
"""

from __future__ import annotations

import asyncio
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


def run(app: FastAPI, settings: Settings) -> None:
    """Serve ``app`` on ``service.host:service.port`` until interrupted."""
    service = settings.service
    uvicorn.run(
        app,
        host=service.host,
        port=service.port,
        log_config=None,  # uvicorn leaves the logging configured by ``rca serve`` alone
        http=protocol(service.read_timeout_s),
    )
