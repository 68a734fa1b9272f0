"""Traces: OpenTelemetry spans around an analysis' stages and the calls that leave the process.

Optional twice over. Without the OpenTelemetry API installed every :func:`span` is a no-op;
with the API but without the SDK (the ``[otel]`` extra) spans do not record and cost a few
microseconds. ``rca serve`` exports spans only when the standard variables ask for it,
read by :func:`configure` and, for the details (endpoint, headers, sampler, batching), by
the SDK itself::

    pip install 'rca-agent[otel]'
    OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318 OTEL_SERVICE_NAME=rca rca serve
    OTEL_TRACES_EXPORTER=console rca serve          # spans as JSON on stdout

The spans: ``analysis`` (one job: ``rca.analysis.id``, ``rca.group_key``, ``rca.trigger``)
over ``collect``, ``detect``, ``rank``, ``summarize`` and ``publish``; client spans for each
Prometheus query, Elasticsearch request, LLM completion and Slack API call. Threads started
inside a span carry it along when started with ``contextvars.copy_context().run``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from types import TracebackType
from typing import Any, Literal, Protocol

from agent import __version__
from agent.errors import ConfigError

try:
    from opentelemetry import context as _context
    from opentelemetry import trace as _trace
except ImportError:  # the API is not installed: every span is a no-op
    _trace = None  # type: ignore[assignment]
    _context = None  # type: ignore[assignment]

log = logging.getLogger("rca.tracing")
SCOPE = "rca-agent"
SpanKind = Literal["internal", "client"]
Attribute = str | bool | int | float | Sequence[str]

_provider: Any = None  # a provider set by use(); None: the global one
_cached: tuple[Any, Any] | None = None  # (provider, its tracer)


class Span(Protocol):
    """What callers may do with a span: add attributes once the numbers are known."""

    def set_attribute(self, key: str, value: Attribute) -> None: ...


class _NoSpan:
    def set_attribute(self, key: str, value: Attribute) -> None:
        return None


NO_SPAN = _NoSpan()


def use(provider: Any) -> Any:
    """Record spans with ``provider`` instead of the global one (tests, embedders); returns
    the previous choice, so ``use(previous)`` restores it. ``None``: the global provider."""
    global _provider
    previous, _provider = _provider, provider
    return previous


def _tracer() -> Any:
    global _cached
    provider = _provider if _provider is not None else _trace.get_tracer_provider()
    if _cached is None or _cached[0] is not provider:
        _cached = (provider, provider.get_tracer(SCOPE, __version__))
    return _cached[1]


def _kind(kind: SpanKind) -> Any:
    return _trace.SpanKind.CLIENT if kind == "client" else _trace.SpanKind.INTERNAL


def _clean(attributes: Mapping[str, Attribute | None] | None) -> dict[str, Attribute]:
    return {k: v for k, v in (attributes or {}).items() if v is not None}


@contextmanager
def span(
    name: str, attributes: Mapping[str, Attribute | None] | None = None, kind: SpanKind = "internal"
) -> Iterator[Span]:
    """A span around the block, current inside it; an exception leaving the block is
    recorded on it and marks it failed. ``None`` attribute values are left out."""
    if _trace is None:
        yield NO_SPAN
        return
    with _tracer().start_as_current_span(
        name, kind=_kind(kind), attributes=_clean(attributes)
    ) as current:
        yield current


class Stages:
    """Consecutive stages of one run as sibling spans: :meth:`begin` ends the running stage
    and starts the next, current for what runs inside it (an LLM call inside ``summarize``
    is its child). Used as a context manager, so a stage that raises still ends."""

    def __init__(self) -> None:
        self._span: Any = None
        self._token: Any = None

    def begin(self, name: str, attributes: Mapping[str, Attribute | None] | None = None) -> Span:
        self.end()
        if _trace is None:
            return NO_SPAN
        self._span = _tracer().start_span(name, attributes=_clean(attributes))
        self._token = _context.attach(_trace.set_span_in_context(self._span))
        return self._span

    def end(self, error: BaseException | None = None) -> None:
        if self._span is None:
            return
        if error is not None:
            self._span.record_exception(error)
            self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, str(error)))
        _context.detach(self._token)
        self._span.end()
        self._span = self._token = None

    def __enter__(self) -> Stages:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.end(error)


# --- export, from the standard OTEL_* variables ----------------------------------------------

EXPORTER_GROUP = "opentelemetry_traces_exporter"


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters the variables ask for: ``OTEL_TRACES_EXPORTER`` (comma separated), else
    ``otlp`` when an OTLP endpoint is set, else none (no collector assumed on localhost)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if not names and (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        names = ["otlp"]
    return [n for n in names if n != "none"]


def _entry_point(name: str, environ: Mapping[str, str]) -> str:
    """``otlp`` is the OTLP exporter of the configured protocol (default http/protobuf)."""
    if name != "otlp":
        return name
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    return "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"


def configure(environ: Mapping[str, str]) -> list[str]:
    """Install the SDK's tracer provider as the global one, exporting where ``environ`` (the
    ``OTEL_*`` variables) says; returns the exporters set up, [] when tracing stays off.

    Without the SDK a request for traces is a warning, not an error: the variables are often
    set for a whole cluster, and the service must still start.
    """
    names = exporter_names(environ)
    if not names:
        return []
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "OTEL_* variables ask for traces (%s) but the OpenTelemetry SDK is not installed: "
            "pip install 'rca-agent[otel]'; tracing is off",
            ", ".join(names),
        )
        return []
    exporters = []
    for name in names:
        point = _entry_point(name, environ)
        found = entry_points(group=EXPORTER_GROUP, name=point)
        if not found:
            raise ConfigError(
                f"OTEL_TRACES_EXPORTER={name}: no trace exporter {point!r} is installed; the "
                "[otel] extra brings otlp (http/protobuf) and console"
            )
        exporters.append((point, next(iter(found)).load()()))
    attributes: dict[str, str] = {"service.version": __version__}
    named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    if not named:
        attributes["service.name"] = SCOPE  # the variables, when they name it, win
    provider = TracerProvider(resource=Resource.create(attributes))
    for _, exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _trace.set_tracer_provider(provider)
    return [point for point, _ in exporters]
