"""A local HTTP server shaped like the Slack Web API, for the Slack connector and bot tests.

It answers the methods rca-agent calls with Slack's real response shapes (``ok``, ``ts``,
``channel``, ``error`` codes, 429 with ``Retry-After``), keeps the messages it was sent so
``chat.update`` and ``conversations.history`` behave, runs the three-step external upload
(``files.getUploadURLExternal`` returns an ``upload_url`` on the double itself, the bytes
are POSTed there, ``files.completeUploadExternal`` shares them), and records every call.

Failures are scripted per method::

    api.fail("chat.postMessage", status=429, retry_after="1")   # rate limited, once
    api.fail("chat.postMessage", error="channel_not_found")     # HTTP 200, ok: false
    api.fail("chat.postMessage", status=500, processed=True)    # posted, then the answer broke

Also :func:`sign` (Slack's request signature) for requests *to* the bot.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

TOKEN = "xoxb-test-0000-secret-token"
SIGNING_SECRET = "test-signing-secret-8f14e45fceea167a"
TEAM_ID = "T0TEST"
BOT_USER = "U0RCABOT"
CHANNELS = {"incidents": "C0INCIDENTS", "payments-oncall": "C0PAYMENTS", "general": "C0GENERAL"}


def sign(body: str, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a request: ``X-Slack-Request-Timestamp`` and the v0 HMAC."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
    }


@dataclass(frozen=True)
class Call:
    method: str
    headers: dict[str, str]
    params: dict[str, Any]
    raw: bytes
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    status: int = 200
    error: str | None = None
    retry_after: str | None = None
    processed: bool = False
    times: int = 1


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    edits: int = 0


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, list[Failure]] = field(default_factory=dict)
    counter: int = 0
    down: bool = False


def _params(handler: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(urlsplit(handler.path).query))
    kind = handler.headers.get("Content-Type", "")
    if "json" in kind and raw:
        params.update(json.loads(raw))
    elif "x-www-form-urlencoded" in kind:
        params.update(parse_qsl(raw.decode()))
    for key in ("blocks", "metadata", "files", "view"):
        if isinstance(params.get(key), str):
            params[key] = json.loads(params[key])
    return params


class SlackDouble:
    """Start with ``with SlackDouble() as api:``; ``api.api_url`` is the Web API base URL."""

    def __init__(
        self, token: str = TOKEN, channels: dict[str, str] | None = None, port: int = 0
    ) -> None:
        self.token = token
        self.channels = dict(channels or CHANNELS)
        self.state = _State()
        self._epoch = int(time.time())  # ts are Unix times: conversations.history filters on them
        self._lock = threading.Lock()
        # ``port``: come back where a client already points (Slack "back up" after an outage)
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # --- lifecycle and scripting --------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def __enter__(self) -> SlackDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail(self, method: str, **failure: Any) -> None:
        with self._lock:
            self.state.failures.setdefault(method, []).append(Failure(**failure))

    def set_down(self, down: bool) -> None:
        """Every Web API method answers 503 (as during a Slack outage) while down."""
        self.state.down = down

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.state.calls if method is None or c.method == method]

    def top_level(self) -> list[Message]:
        with self._lock:
            return [m for m in self.state.messages.values() if m.thread_ts is None]

    def wait_for(self, method: str, count: int = 1, timeout_s: float = 10.0) -> list[Call]:
        """Calls of ``method`` once there are ``count``; for work the bot does after acking."""
        deadline = time.monotonic() + timeout_s
        while len(found := self.calls(method)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return found

    # --- Web API methods ----------------------------------------------------------------

    def _next_ts(self) -> str:
        self.state.counter += 1
        return f"{self._epoch + self.state.counter}.{self.state.counter:06d}"

    def _channel(self, value: Any) -> str | None:
        name = str(value or "").lstrip("#")
        if name in self.channels.values():
            return name
        return self.channels.get(name)

    def _post(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p.get("channel"))
        if channel is None:
            return {"ok": False, "error": "channel_not_found"}
        if not p.get("text") and not p.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = self._next_ts()
        msg = Message(channel, ts, p.get("text", ""), p.get("blocks"), p.get("thread_ts"))
        msg.metadata = p.get("metadata")
        self.state.messages[(channel, ts)] = msg
        body = {"type": "message", "text": msg.text, "user": BOT_USER, "ts": ts}
        return {"ok": True, "channel": channel, "ts": ts, "message": body}

    def _update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel(p.get("channel"))
        msg = self.state.messages.get((channel or "", str(p.get("ts"))))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        msg.text, msg.blocks, msg.edits = p.get("text", msg.text), p.get("blocks"), msg.edits + 1
        return {"ok": True, "channel": msg.channel, "ts": msg.ts, "text": msg.text}

    def _history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel"))
        if channel not in self.channels.values():  # like Slack: IDs only, no names
            return {"ok": False, "error": "channel_not_found"}
        oldest = float(p.get("oldest") or 0)
        found = [
            m
            for (c, ts), m in self.state.messages.items()
            if c == channel and m.thread_ts is None and float(ts) >= oldest
        ]
        messages = [
            {"type": "message", "ts": m.ts, "text": m.text, "user": BOT_USER}
            | ({"metadata": m.metadata} if m.metadata and p.get("include_all_metadata") else {})
            for m in sorted(found, key=lambda m: float(m.ts), reverse=True)
        ]
        return {"ok": True, "messages": messages, "has_more": False}

    def _upload_url(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("filename") or not str(p.get("length", "")).isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F0{self._next_ts().replace('.', '')[-8:]}"
        return {"ok": True, "upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id}

    def _complete(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files") or []
        if not files or any(f.get("id") not in self.state.uploads for f in files):
            return {"ok": False, "error": "file_not_found"}
        if p.get("channel_id") and self._channel(p["channel_id"]) is None:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "files": [{"id": f["id"], "title": f.get("title", "")} for f in files]}

    def _answer(self, method: str, p: dict[str, Any]) -> dict[str, Any]:
        simple: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "chat.postMessage": self._post,
            "chat.update": self._update,
            "conversations.history": self._history,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete,
        }
        if method in simple:
            return simple[method](p)
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://rca-test.slack.com/",
                "team": "rca test",
                "user": "rca",
                "team_id": TEAM_ID,
                "user_id": BOT_USER,
                "bot_id": "B0RCABOT",
                "is_enterprise_install": False,
            }
        if method == "chat.postEphemeral":
            if self._channel(p.get("channel")) is None:
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "message_ts": self._next_ts()}
        if method == "views.open":
            if not p.get("trigger_id"):
                return {"ok": False, "error": "invalid_trigger_id"}
            return {"ok": True, "view": {"id": "V0FEEDBACK", **(p.get("view") or {})}}
        return {"ok": False, "error": "unknown_method"}

    def _handle(
        self, handler: BaseHTTPRequestHandler, raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        path = urlsplit(handler.path).path
        if path.startswith("/upload/v1/"):
            file_id = path.rsplit("/", 1)[-1]
            with self._lock:
                self.state.calls.append(
                    Call("upload", dict(handler.headers), {"file_id": file_id}, raw)
                )
                self.state.uploads[file_id] = raw
            return 200, {"Content-Type": "text/plain"}, f"OK - {len(raw)}".encode()
        method = path.removeprefix("/api/")
        with self._lock:
            params = _params(handler, raw)
            self.state.calls.append(Call(method, dict(handler.headers), params, raw))
            if self.state.down:
                return 503, {"Content-Type": "text/html"}, b"<html>Service Unavailable</html>"
            if handler.headers.get("Authorization") != f"Bearer {self.token}":
                error = "not_authed" if not handler.headers.get("Authorization") else "invalid_auth"
                return 200, {}, json.dumps({"ok": False, "error": error}).encode()
            script = self.state.failures.get(method) or []
            failure = script[0] if script else None
            if failure is not None:
                failure.times -= 1
                if failure.times <= 0:
                    script.pop(0)
                if failure.processed:
                    self._answer(method, params)
                return self._failure(failure)
            return 200, {}, json.dumps(self._answer(method, params)).encode()

    @staticmethod
    def _failure(failure: Failure) -> tuple[int, dict[str, str], bytes]:
        headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
        code = failure.error or {429: "ratelimited"}.get(failure.status, "internal_error")
        return failure.status, headers, json.dumps({"ok": False, "error": code}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = double._handle(self, raw)
                self.send_response(status)
                headers.setdefault("Content-Type", "application/json; charset=utf-8")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


# --- requests Slack sends to the bot ------------------------------------------------------


def slash_command(text: str, channel: str, user: str) -> str:
    """The form body of ``/rca <text>``."""
    return urlencode(
        {
            "command": "/rca",
            "text": text,
            "channel_id": channel,
            "user_id": user,
            "team_id": TEAM_ID,
            "trigger_id": "1337.42.abcd",
            "response_url": "https://hooks.slack.invalid/commands/1",
        }
    )


def block_action(action_id: str, value: str, channel: str, message_ts: str, user: str) -> str:
    """The form body of a button click on the message at ``(channel, message_ts)``."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "api_app_id": "A0RCA",
        "trigger_id": "1337.42.trigger",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel},
        "message": {"ts": message_ts, "text": "incident"},
        "actions": [
            {"action_id": action_id, "block_id": "rca_actions", "value": value, "type": "button"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission(view: dict[str, Any], values: dict[str, Any], user: str) -> str:
    """The form body of submitting the modal ``view`` (as opened) with ``values``:
    ``{block_id: {action_id: selected value or text}}``."""
    state: dict[str, Any] = {}
    for block_id, actions in values.items():
        for action_id, value in actions.items():
            element = (
                {"type": "plain_text_input", "value": value}
                if block_id == "note"
                else {"type": "static_select", "selected_option": {"value": value}}
            )
            state.setdefault(block_id, {})[action_id] = element
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "user": {"id": user, "team_id": TEAM_ID},
        "view": {**view, "id": "V0FEEDBACK", "state": {"values": state}},
    }
    return urlencode({"payload": json.dumps(payload)})


def app_mention(text: str, channel: str, thread_ts: str | None, user: str) -> str:
    """The JSON body of an ``app_mention`` event, in a thread when ``thread_ts`` is given."""
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": text,
        "ts": f"{int(time.time())}.000200",
        "channel": channel,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps(
        {
            "token": "unused",
            "team_id": TEAM_ID,
            "api_app_id": "A0RCA",
            "type": "event_callback",
            "event_id": f"Ev{time.monotonic_ns()}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER, "is_bot": True}],
            "event": event,
        }
    )
