"""How Slack reaches the bot: an HTTP route for FastAPI, or Socket Mode without ingress.

bolt's own Starlette adapter runs the (synchronous) app inside the event loop; this route
hands it to a worker thread instead, so a slow first ``auth.test`` or a busy handler never
stalls the service's other requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from pydantic import SecretStr
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

EVENTS_PATH = "/slack/events"


def slack_router(app: App, path: str = EVENTS_PATH) -> APIRouter:
    """``POST {path}``: slash commands, events and interactivity all arrive here."""
    router = APIRouter()

    @router.post(path, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        bolt_response = await run_in_threadpool(app.dispatch, to_bolt_request(request, body))
        return to_starlette_response(bolt_response)

    return router


def socket_mode(app: App, app_token: SecretStr) -> SocketModeHandler:
    """A Socket Mode connection (``xapp-`` app-level token, ``connections:write``) for
    clusters Slack cannot reach; ``.connect()`` it next to the service, ``.close()`` on
    shutdown. Requests then arrive over a WebSocket the pod opens, with no public URL."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token.get_secret_value())
