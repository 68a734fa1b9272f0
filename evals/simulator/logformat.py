"""How each service writes a log line: plain text, Spring Boot, logfmt, JSON, or a datastore's
own format, and what its stack traces look like.

Real clusters mix all of these, often with the service's own timestamp inside the message,
so the engine's template mining has to cope with every one of them.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from evals.simulator.topology import ServiceSpec

_FORMATS = {
    "java": (("spring", "json", "logfmt"), (0.5, 0.3, 0.2)),
    "go": (("logfmt", "json", "plain"), (0.5, 0.3, 0.2)),
    "python": (("plain", "json", "logfmt"), (0.5, 0.3, 0.2)),
    "node": (("json", "plain"), (0.6, 0.4)),
}
_ENDPOINT_SHAPES = (
    ("GET", "/api/{res}/{{id}}"),
    ("GET", "/api/{res}"),
    ("POST", "/api/{res}"),
    ("PUT", "/api/{res}/{{id}}"),
    ("DELETE", "/api/{res}/{{id}}"),
)
_ENTRY_ENDPOINTS = (
    ("GET", "/"),
    ("GET", "/product/{id}"),
    ("POST", "/cart"),
    ("GET", "/cart"),
    ("POST", "/cart/checkout"),
    ("GET", "/api/search"),
)
_MONGO_SEVERITY = {"INFO": "I", "WARN": "W", "ERROR": "E", "CRITICAL": "F"}
_PG_SEVERITY = {"INFO": "LOG", "WARN": "WARNING", "ERROR": "ERROR", "CRITICAL": "PANIC"}
_REDIS_MARK = {"INFO": "*", "WARN": "#", "ERROR": "#", "CRITICAL": "#"}


def resource_name(service: str) -> str:
    """``ts-order-service`` -> ``order``; ``cartservice`` -> ``cart``."""
    name = service.removeprefix("ts-")
    for suffix in ("-service", "-api", "-svc", "service", "svc"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
            break
    return name.strip("-") or "items"


def _camel(service: str) -> str:
    return "".join(part.capitalize() for part in resource_name(service).split("-"))


@dataclass(frozen=True)
class Voice:
    """How one service logs: its format, endpoints, logger name and habits."""

    service: str
    runtime: str
    format: str
    endpoints: tuple[tuple[str, str], ...]
    logger: str
    slow_ms: float
    detail_rate: float
    verbosity: float


def voice_of(spec: ServiceSpec, p99_ms: float, rng: np.random.Generator) -> Voice:
    if spec.is_app:
        formats, weights = _FORMATS[spec.runtime]
        fmt = formats[int(rng.choice(len(formats), p=weights))]
    else:
        fmt = f"native-{spec.runtime}"
    res = resource_name(spec.name)
    endpoints: tuple[tuple[str, str], ...]
    if spec.tier == "entry":
        endpoints = _ENTRY_ENDPOINTS
    else:
        picks = rng.choice(len(_ENDPOINT_SHAPES), int(rng.integers(2, 5)), replace=False)
        endpoints = tuple(
            (_ENDPOINT_SHAPES[i][0], _ENDPOINT_SHAPES[i][1].format(res=res)) for i in sorted(picks)
        )
    return Voice(
        service=spec.name,
        runtime=spec.runtime,
        format=fmt,
        endpoints=endpoints,
        logger=f"c.s.{res.replace('-', '')}.web.{_camel(spec.name)}Controller",
        slow_ms=max(50.0, p99_ms * rng.uniform(1.5, 3.0)),
        detail_rate=rng.uniform(0.4, 1.0),
        verbosity=rng.uniform(0.3, 2.0) * (0.15 if spec.is_datastore else 1.0),
    )


def stack_trace(runtime: str, service: str, exception: str, message: str) -> str | None:
    """A stack trace whose frames are stable per service and exception, as in a real build."""
    key = zlib.crc32(f"{service}:{exception}".encode())
    line, pkg, cls = 40 + key % 400, resource_name(service).replace("-", ""), _camel(service)
    if runtime == "java":
        frames = [
            f"com.shop.{pkg}.service.{cls}Service.handle({cls}Service.java:{line})",
            f"com.shop.{pkg}.web.{cls}Controller.post({cls}Controller.java:{line // 3 + 17})",
            "org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:883)",
            "org.apache.catalina.core.ApplicationFilterChain.doFilter(ApplicationFilterChain.java:166)",
            "java.base/java.lang.Thread.run(Thread.java:840)",
        ]
        return f"{exception}: {message}\n" + "\n".join(f"\tat {f}" for f in frames)
    if runtime == "python":
        return (
            "Traceback (most recent call last):\n"
            f'  File "/app/{pkg}/handlers.py", line {line}, in handle\n'
            "    result = await service.process(request)\n"
            f'  File "/app/{pkg}/service.py", line {line // 2 + 11}, in process\n'
            "    total = compute(order)\n"
            f"{exception}: {message}"
        )
    if runtime == "go" and exception == "panic":
        return (
            f"panic: {message}\n\ngoroutine {key % 9000 + 17} [running]:\n"
            f"main.(*{cls}Server).Handle(0xc000{key % 65536:04x}, ...)\n"
            f"\t/app/{pkg}/server.go:{line} +0x{key % 4096:x}\n"
            "net/http.HandlerFunc.ServeHTTP(...)\n\t/usr/local/go/src/net/http/server.go:2136 +0x29"
        )
    if runtime == "node":
        return (
            f"{exception}: {message}\n    at {cls}Controller.handle "
            f"(/usr/src/app/src/{pkg}.js:{line}:{key % 60 + 5})\n"
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)"
        )
    return None


def _stamp(when: float, pattern: str) -> str:
    moment = datetime.fromtimestamp(when, tz=UTC)
    return moment.strftime(pattern) + f"{moment.microsecond // 1000:03d}"


_BARE = re.compile(r'[^\s"=]+')


def _logfmt_value(value: object) -> str:
    text = str(value)
    return text if _BARE.fullmatch(text) else json.dumps(text)


def render(
    voice: Voice,
    when: float,
    level: str,
    text: str,
    fields: dict[str, object],
    stack: str | None = None,
) -> str:
    """One line (or a multi-line record, with a stack trace) in the service's own format."""
    fmt = voice.format
    if fmt == "json":
        record: dict[str, object] = {"level": level.lower(), "msg": text, **fields}
        if stack:
            record["stack_trace"] = stack
        return json.dumps(record)
    if fmt == "logfmt":
        pairs = {"level": level.lower(), "msg": text, **fields}
        if stack:
            pairs["stack"] = stack
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in pairs.items())
    extra = "".join(f" {k}={v}" for k, v in fields.items() if k != "trace_id")
    body = text + extra + (f"\n{stack}" if stack else "")
    if fmt == "spring":
        trace = str(fields.get("trace_id", ""))[:16]
        thread = f"http-nio-8080-exec-{int(when * 7) % 200 + 1}"
        prefix = f"{_stamp(when, '%Y-%m-%d %H:%M:%S.')} {level:>5} [{voice.service},{trace}] 1"
        return f"{prefix} --- [{thread}] {voice.logger:<40} : {body}"
    return _native(voice, when, level, body)


def _native(voice: Voice, when: float, level: str, body: str) -> str:
    engine = voice.format.removeprefix("native-")
    if engine == "postgres":
        stamp = _stamp(when, "%Y-%m-%d %H:%M:%S.")
        return f"{stamp} UTC [{int(when) % 900 + 40}] {_PG_SEVERITY.get(level, 'LOG')}:  {body}"
    if engine == "redis":
        return f"1:M {_stamp(when, '%d %b %Y %H:%M:%S.')} {_REDIS_MARK.get(level, '*')} {body}"
    if engine == "mongodb":
        moment = datetime.fromtimestamp(when, tz=UTC).isoformat(timespec="milliseconds")
        severity = _MONGO_SEVERITY.get(level, "I")
        record = {"t": {"$date": moment}, "s": severity, "c": "COMMAND", "msg": body}
        return json.dumps(record)
    if engine in ("kafka", "elasticsearch"):
        return f"[{_stamp(when, '%Y-%m-%d %H:%M:%S,')}] {level} {body}"
    return body
