"""Slack Web API: incident posts, in-place updates, thread replies and the evidence chart.

:class:`SlackPublisher` wraps a slack-sdk ``WebClient`` (built by :func:`build_client`, or
any client a test or a proxy setup provides). Every failure leaves as one
:class:`SlackError`, a :class:`~agent.errors.SourceError` the caller records (and retries
later) instead of crashing the analysis that produced the post.

Retries happen inside the client (slack-sdk retry handlers): 429 waits for ``Retry-After``
(up to ``max_retry_after_s``), 5xx and connection failures back off exponentially. The one
exception is ``chat.postMessage``: a 5xx or a dropped connection leaves it unknown whether
Slack posted, so it is only retried when Slack certainly did not (429, connection refused).
Every incident post carries its ``incident_key`` in Slack message metadata, so
:meth:`SlackPublisher.find_incident_post` can recover the ``ts`` of a post whose answer was
lost, rather than posting a second time.

The bot token travels in the ``Authorization`` header only; slack-sdk redacts that header
in its debug logs, and no message here includes it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from pydantic import SecretStr
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import RetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from agent import tracing
from agent.errors import SourceError
from connectors.slack_settings import SlackSettings

log = logging.getLogger(__name__)

INCIDENT_EVENT = "rca_incident"
Block = dict[str, Any]


@dataclass(frozen=True)
class SlackRef:
    """Where an incident message lives: store it, and pass it back to update in place."""

    channel: str
    ts: str


class SlackError(SourceError):
    """Slack refused or could not be reached. ``code`` is Slack's error code when it answered
    (``channel_not_found``, ``invalid_auth``, ``ratelimited``...); ``retryable`` says whether
    trying again later can help; ``maybe_done`` that Slack may have acted on the request
    anyway (a 5xx, or a connection lost after the request was sent); ``retry_after_s`` the
    wait a 429 asked for (its ``Retry-After``), which a later retry must honour."""

    def __init__(
        self,
        message: str,
        code: str | None = None,
        retryable: bool = False,
        maybe_done: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        self.code = code
        self.retryable = retryable
        self.maybe_done = maybe_done
        self.retry_after_s = retry_after_s
        super().__init__("slack", message)


# --- retries ------------------------------------------------------------------------------


def _retry_after_s(headers: Mapping[str, Any]) -> float | None:
    """The seconds of a ``Retry-After`` header (any case; one value or a list of them)."""
    for name, value in headers.items():
        if name.lower() != "retry-after" or not value:
            continue
        first = value[0] if isinstance(value, list | tuple) else value
        try:
            return max(0.0, float(first))
        except (TypeError, ValueError):
            return None
    return None


def _is_post(request: HttpRequest) -> bool:
    return request.url.rstrip("/").endswith("chat.postMessage")


class RetryAfterHandler(RetryHandler):
    """429: wait for ``Retry-After`` (plus a little jitter), unless that exceeds ``cap_s``;
    then the attempt fails at once and the caller retries later instead of blocking."""

    def __init__(
        self, max_retry_count: int, cap_s: float, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        super().__init__(max_retry_count)
        self.cap_s = cap_s
        self.sleep = sleep

    @staticmethod
    def retry_after(response: HttpResponse) -> float:
        wait = _retry_after_s(response.headers)
        return 1.0 if wait is None else wait  # "Retry-After: 0" means now, not a second

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code == 429
            and self.retry_after(response) <= self.cap_s
        )

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        assert response is not None  # _can_retry only accepts responses
        state.next_attempt_requested = True
        self.sleep(self.retry_after(response) + random.uniform(0, 0.1))
        state.increment_current_attempt()


class _Backoff(RetryHandler):
    """The interval calculator's backoff, slept through an injectable ``sleep``."""

    sleep: Callable[[float], None] = staticmethod(time.sleep)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        self.sleep(self.interval_calculator.calculate_sleep_duration(state.current_attempt))
        state.increment_current_attempt()


class ServerErrorHandler(_Backoff, ServerErrorRetryHandler):
    """5xx, except for ``chat.postMessage`` (Slack may have posted before it failed)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return (
            response is not None
            and response.status_code in (500, 502, 503, 504)
            and not _is_post(request)
        )


class ConnectionHandler(_Backoff, ConnectionErrorRetryHandler):
    """Connection failures; for ``chat.postMessage`` only when the request never left
    (connection refused), so a lost answer is never re-posted blindly."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        refused = isinstance(error, URLError) and isinstance(error.reason, ConnectionRefusedError)
        return refused or not _is_post(request)


def retry_handlers(
    settings: SlackSettings, sleep: Callable[[float], None] = time.sleep
) -> list[RetryHandler]:
    backoff = BackoffRetryIntervalCalculator(backoff_factor=settings.backoff_s)
    server, connection = (
        ServerErrorHandler(settings.retries, backoff),
        ConnectionHandler(settings.retries, backoff),
    )
    server.sleep = connection.sleep = sleep
    return [
        RetryAfterHandler(settings.retries, settings.max_retry_after_s, sleep),
        server,
        connection,
    ]


def build_client(
    api_url: str,
    token: SecretStr | None,
    settings: SlackSettings,
    sleep: Callable[[float], None] = time.sleep,
) -> WebClient:
    """A ``WebClient`` on ``api_url`` with the retry policy above."""
    return WebClient(
        token=token.get_secret_value() if token else None,
        base_url=api_url.rstrip("/") + "/",
        timeout=int(max(1, round(settings.timeout_s))),
        retry_handlers=retry_handlers(settings, sleep),
    )


# --- the publisher ------------------------------------------------------------------------


def _slack_error(method: str, exc: Exception) -> SlackError:
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        data = exc.response.data if isinstance(exc.response.data, dict) else {}
        code = str(data.get("error") or f"http_{status}")
        retryable = status == 429 or status >= 500 or code in ("ratelimited", "internal_error")
        message = f"{method} failed: {code} (HTTP {status})"
        wait = _retry_after_s(exc.response.headers or {}) if status == 429 else None
        return SlackError(message, code, retryable, maybe_done=status >= 500, retry_after_s=wait)
    if isinstance(exc, SlackClientError):  # e.g. the upload POST of files_upload_v2 failed
        return SlackError(f"{method} failed: {exc}", None, True)
    reason = getattr(exc, "reason", None) or exc
    refused = isinstance(reason, ConnectionRefusedError)
    message = f"{method} failed: cannot reach Slack ({reason})"
    return SlackError(message, None, True, maybe_done=not refused)


ReportLink = Callable[[str], str | None]


class SlackPublisher:
    """Posts, updates and threads incident messages; one instance per process is enough.

    ``report_link`` turns an analysis id into the "full report" link its post carries; the
    service passes one that signs a read-only share link, because a link to the
    token-protected API answers 401 to everyone who reads it in Slack. None: a plain link
    under ``settings.public_url`` (right for an API that needs no token).
    """

    def __init__(
        self, client: WebClient, settings: SlackSettings, report_link: ReportLink | None = None
    ) -> None:
        self.client = client
        self.settings = settings
        self.report_link = report_link

    def _call(self, method: str, fn: Callable[[], Any]) -> Any:
        try:
            with tracing.span(f"slack {method}", {"rpc.method": method}, kind="client"):
                return fn()
        except (SlackClientError, URLError, OSError) as exc:
            error = _slack_error(method, exc)
            log.warning("slack: %s", error.message)
            raise error from None

    def post_incident(
        self, channel: str, text: str, blocks: Sequence[Block], incident_key: str
    ) -> SlackRef:
        """A new top-level message; ``text`` is the notification/fallback text."""
        response = self._call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=channel,
                text=text,
                blocks=list(blocks),
                metadata={
                    "event_type": INCIDENT_EVENT,
                    "event_payload": {"incident_key": incident_key},
                },
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        return SlackRef(channel=str(response["channel"]), ts=str(response["ts"]))

    def update(self, ref: SlackRef, text: str, blocks: Sequence[Block]) -> SlackRef:
        """Replace the message in place (``chat.update``); safe to repeat."""
        response = self._call(
            "chat.update",
            lambda: self.client.chat_update(
                channel=ref.channel, ts=ref.ts, text=text, blocks=list(blocks)
            ),
        )
        return SlackRef(channel=str(response["channel"]), ts=str(response["ts"]))

    def reply(self, ref: SlackRef, text: str, blocks: Sequence[Block] | None = None) -> SlackRef:
        """A reply in the message's thread."""
        response = self._call(
            "chat.postMessage",
            lambda: self.client.chat_postMessage(
                channel=ref.channel,
                thread_ts=ref.ts,
                text=text,
                blocks=list(blocks) if blocks else None,
                unfurl_links=False,
            ),
        )
        return SlackRef(channel=str(response["channel"]), ts=str(response["ts"]))

    def post_ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: Sequence[Block] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        """A message only ``user`` sees (``/rca ... --private``)."""
        self._call(
            "chat.postEphemeral",
            lambda: self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=text,
                blocks=list(blocks) if blocks else None,
                thread_ts=thread_ts,
            ),
        )

    def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        """Open a modal (``views.open``); ``trigger_id`` is valid for 3 s after a click."""
        self._call("views.open", lambda: self.client.views_open(trigger_id=trigger_id, view=view))

    def upload_chart(self, ref: SlackRef, png: bytes, filename: str, title: str) -> str | None:
        """Upload the evidence PNG into the thread (``files_upload_v2``); returns the file id,
        or None with a marked note in the thread when it is over ``max_upload_bytes``."""
        limit = self.settings.max_upload_bytes
        if len(png) > limit:
            self.reply(
                ref,
                f"(chart not uploaded: {len(png):,} bytes is over the {limit:,}-byte limit)",
            )
            return None
        response = self._call(
            "files.upload",
            lambda: self.client.files_upload_v2(
                channel=ref.channel,
                thread_ts=ref.ts,
                content=png,
                filename=filename,
                title=title,
                alt_txt=title,
            ),
        )
        file = response.get("file") or {}
        return str(file.get("id")) if file.get("id") else None

    def find_incident_post(self, channel: str, incident_key: str, oldest: float) -> SlackRef | None:
        """The top-level post for ``incident_key`` since ``oldest`` (Unix s), if Slack has one.

        Used after a ``chat.postMessage`` whose answer was lost, before trying again.
        """
        response = self._call(
            "conversations.history",
            lambda: self.client.conversations_history(
                channel=channel, oldest=f"{oldest:.6f}", include_all_metadata=True, limit=200
            ),
        )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if (
                metadata.get("event_type") == INCIDENT_EVENT
                and payload.get("incident_key") == incident_key
            ):
                return SlackRef(channel=channel, ts=str(message["ts"]))
        return None
