"""How Slack reaches the bot: an HTTP route for FastAPI, or Socket Mode without ingress.

bolt's own Starlette adapter runs the (synchronous) app inside the event loop; this route
hands it to a worker thread instead, so a slow first ``auth.test`` or a busy handler never
stalls the service's other requests.

The route checks Slack's signature itself, on the raw bytes and before anything is parsed,
because bolt parses first: a malformed form or JSON body, a body that is not UTF-8 or a
timestamp that is not an integer would otherwise raise inside ``app.dispatch`` (a 500), and
bolt logs the whole body of every badly signed request at INFO. Here an unsigned, stale or
tampered request is a 401 that says which, logged as one line at most once a minute with
no body (anyone who reaches the port could otherwise fill the logs); a correctly signed body
that cannot be parsed is a 400.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import SecretStr
from slack_bolt import App
from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request.internals import parse_body
from starlette.concurrency import run_in_threadpool

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

EVENTS_PATH = "/slack/events"
MAX_SKEW_S = 300  # Slack's replay window: a request older (or newer) than 5 minutes is stale
REFUSAL_LOG_INTERVAL_S = 60.0
_TIMESTAMP = re.compile(r"\d{1,12}", re.ASCII)
log = logging.getLogger("rca.slack")


def signature_problem(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float
) -> str | None:
    """Why a request is not from Slack (missing, malformed, stale or wrong signature), or
    None when Slack signed it: ``v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")``."""
    stamp = headers.get("x-slack-request-timestamp")
    signature = headers.get("x-slack-signature")
    if stamp is None or signature is None:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not _TIMESTAMP.fullmatch(stamp):
        return "X-Slack-Request-Timestamp is not an integer"
    if abs(now - int(stamp)) > MAX_SKEW_S:
        return "stale request: X-Slack-Request-Timestamp is more than 5 minutes off"
    digest = hmac.new(secret, b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    # Header values arrive decoded as latin-1, so this gives back the bytes that were sent.
    if not hmac.compare_digest(b"v0=" + digest.hexdigest().encode(), signature.encode("latin-1")):
        return "X-Slack-Signature does not match the body"
    return None


class RefusalLog:
    """One log line per interval for refused requests, with their count and the last reason:
    never the body or the signature."""

    def __init__(
        self,
        interval_s: float = REFUSAL_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._quiet = 0

    def refused(self, reason: str, client: str) -> None:
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.interval_s:
                self._quiet += 1
                return
            count, self._last, self._quiet = self._quiet + 1, now, 0
        log.warning(
            "slack: refused %d request(s) to %s since the last report; latest from %s: %s",
            count,
            EVENTS_PATH,
            client,
            reason,
        )


def slack_router(app: App, signing_secret: SecretStr | str, path: str = EVENTS_PATH) -> APIRouter:
    """``POST {path}``: slash commands, events and interactivity all arrive here."""
    router = APIRouter()
    raw = (
        signing_secret.get_secret_value()
        if isinstance(signing_secret, SecretStr)
        else (signing_secret)
    )
    secret = raw.encode()
    refusals = RefusalLog()

    @router.post(path, include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        body = await request.body()
        problem = signature_problem(secret, request.headers, body, time.time())
        if problem is not None:
            refusals.refused(problem, request.client.host if request.client else "?")
            raise HTTPException(401, f"not a request signed by Slack: {problem}")
        try:
            parsed = parse_body(body.decode("utf-8"), request.headers.get("content-type"))
        except ValueError as exc:  # not UTF-8, or JSON that does not parse
            raise HTTPException(400, f"malformed Slack request body: {exc}") from None
        if not isinstance(parsed, dict):
            raise HTTPException(400, "malformed Slack request body: expected a form or object")
        try:
            bolt_request = to_bolt_request(request, body)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            # bolt reads team, enterprise and user ids out of the body as it builds the request
            raise HTTPException(400, f"malformed Slack request body: {exc!r}") from None
        bolt_response = await run_in_threadpool(app.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    return router


def socket_mode(app: App, app_token: SecretStr) -> SocketModeHandler:
    """A Socket Mode connection (``xapp-`` app-level token, ``connections:write``) for
    clusters Slack cannot reach; ``.connect()`` it next to the service, ``.close()`` on
    shutdown. Requests then arrive over a WebSocket the pod opens, with no public URL."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token.get_secret_value())
