"""Logging of ``rca serve``: one setup, two formats, and the ids that tie lines together.

``RCA_LOG_FORMAT=json`` writes one JSON object per line, which log pipelines on Kubernetes
(Fluent Bit, Vector, Promtail, the Elastic agent) read without a parser::

    {"time": "2024-05-14T10:23:00.123Z", "level": "WARNING", "logger": "rca.jobs",
     "message": "job an-1f... failed: ...", "request_id": "6f1c...", "analysis_id": "an-1f...",
     "group_key": "{}:{alertname=\\"HighLatency\\"}"}

``text`` (the default) writes the same facts for a person: the ids follow the message in
brackets. The ids come from context variables: :class:`RequestContext` (an ASGI middleware)
sets the request id from ``X-Request-ID`` or a new one and echoes it in the response; the job
worker sets the analysis id and the alert group's key with :func:`bound` while it works.
Threads started from there inherit them through ``contextvars.copy_context``.

uvicorn's access lines for the probes (``/healthz``, ``/readyz``, ``/metrics``) are demoted to
DEBUG: a kubelet and a Prometheus asking every few seconds would drown everything else.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.service.settings import LogFormat, LogLevel

REQUEST_ID_HEADER = "X-Request-ID"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CONTEXT_FIELDS = ("request_id", "analysis_id", "group_key")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

_context: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(f"rca_{name}", default=None) for name in CONTEXT_FIELDS
}


def current() -> dict[str, str]:
    """The ids bound in this context (only those that are set)."""
    return {name: value for name, var in _context.items() if (value := var.get()) is not None}


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Bind ``request_id``, ``analysis_id`` and/or ``group_key`` for the lines logged inside."""
    unknown = set(ids) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"unknown log context field(s): {', '.join(sorted(unknown))}")
    tokens = [(_context[name], _context[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto every record, so both formatters (and any other) see them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, _context[name].get())
        return True


class ProbeAccessFilter(logging.Filter):
    """Demotes uvicorn's access lines for the probes to DEBUG, and drops them below it."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 3 or not isinstance(args[2], str):
            return True
        if args[2].split("?", 1)[0] not in PROBE_PATHS:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the bound ids; an access line
    adds method, path, status and client; an exception adds its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            entry.update(_access_fields(record.args))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def _access_fields(args: tuple[Any, ...]) -> dict[str, Any]:
    """uvicorn's access record carries (client, method, path, http version, status)."""
    if len(args) != 5:
        return {}
    client, method, path, _, status = args
    return {"client": client, "method": method, "path": path, "status": status}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger message [request_id=... analysis_id=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        ]
        if not ids:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the ids
        return f"{head} [{' '.join(ids)}]{newline}{rest}"


def logging_config(level: LogLevel = "info", fmt: LogFormat = "text") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of the service: one stderr handler on the root
    logger, uvicorn's loggers propagating to it, probe access lines at DEBUG."""
    formatter = "rca_json" if fmt == "json" else "rca_text"
    upper = level.upper()
    # drain3 announces every template miner it starts (one per analysis) at INFO.
    chatty = upper if level == "debug" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "rca_context": {"()": ContextFilter},
            "rca_probes": {"()": ProbeAccessFilter},
        },
        "formatters": {
            "rca_json": {"()": JsonFormatter},
            "rca_text": {"()": TextFormatter},
        },
        "handlers": {
            "rca": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["rca_context"],
            }
        },
        "root": {"level": upper, "handlers": ["rca"]},
        "loggers": {
            "drain3": {"level": chatty},
            "uvicorn": {"level": upper, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": upper, "handlers": [], "propagate": True},
            "uvicorn.access": {
                "level": upper,
                "handlers": [],
                "propagate": True,
                "filters": ["rca_probes"],
            },
        },
    }


def configure(level: LogLevel = "info", fmt: LogFormat = "text") -> None:
    """Apply :func:`logging_config`; ``rca serve`` calls it once before uvicorn starts
    (uvicorn is then told to leave logging alone)."""
    logging.config.dictConfig(logging_config(level, fmt))


def request_id_of(headers: Mapping[bytes, bytes] | list[tuple[bytes, bytes]]) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (a proxy's or a client's), else
    a new one: a header value goes into every log line, so it must not be able to forge one."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1").strip()
            if _REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


class RequestContext:
    """Binds the request id for the whole request and returns it as ``X-Request-ID``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope["headers"])
        scope.setdefault("state", {})["request_id"] = request_id

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        with bound(request_id=request_id):
            await self.app(scope, receive, tagged)
