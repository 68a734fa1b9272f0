"""Log lines for every service, driven by the same series the metrics come from.

Request logs follow each service's traffic, error ratio and latency (so a latency fault shows
up as slow-request WARNs and an error burst as 5xx lines), background chatter and benign
WARN/ERROR lines keep the baseline honest, and the error details say what a fault would make
that runtime say: stack traces, pool timeouts, "connection refused" from callers of a dead
dependency. A dead dependency writes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import TypeAdapter

from agent.models import LogRecord
from evals.simulator.logevents import Line, event_lines
from evals.simulator.logformat import Voice, render, stack_trace, voice_of
from evals.simulator.messages import (
    BACKGROUND,
    BENIGN,
    CALLER,
    DATASTORE_BACKGROUND,
    EXCEPTIONS,
    OWN,
    SLOW_OPERATIONS,
    Params,
    pick,
    port_of,
)
from evals.simulator.plan import SERVICE_WIDE, FaultPlan, Symptom
from evals.simulator.telemetry import ServiceSeries, Telemetry
from evals.simulator.topology import ServiceGraph, ServiceSpec

IntArray = npt.NDArray[np.int64]

_STATUS = {"timeout": 504, "server_timeout": 504, "refused": 503, "connect_timeout": 503}
_BENIGN_ERRORS = tuple(text for level, text in BENIGN["any"] if level == "ERROR")
_LEADS = {
    "java": "Servlet.service() for servlet [dispatcherServlet] in context with path [] threw exception",  # noqa: E501
    "python": "Exception in ASGI application",
    "go": "http: panic serving {ip}:{eport}",
    "node": "Unhandled error in request handler",
}


class Failure(NamedTuple):
    """One failed request: when, why (``family``), through which callee, how long it took."""

    t: int
    at: float
    family: str
    peer: str | None
    trace: str
    ms: float


class _Batch:
    """Per-line random draws for one service's request lines, made in bulk for speed."""

    def __init__(
        self, rng: np.random.Generator, index: IntArray, series: ServiceSeries, voice: Voice
    ) -> None:
        self.index, self.size = index, index.size
        error_ratio = np.nan_to_num(series.error_ratio[index]) * rng.uniform(1.5, 3.0)
        self.failed: list[bool] = (rng.random(index.size) < error_ratio).tolist()
        p50 = np.maximum(np.nan_to_num(series.latency[0, index], nan=0.01), 1e-4)
        p99 = np.maximum(np.nan_to_num(series.latency[2, index], nan=0.05), p50 * 1.01)
        spread = (p99 / p50) ** (rng.standard_normal(index.size) / 2.326)
        self.millis: list[float] = (1000 * p50 * spread).tolist()
        self.traces = rng.integers(0, 2**63, size=(index.size, 2)).tolist()
        self.endpoints: list[int] = rng.integers(0, len(voice.endpoints), index.size).tolist()
        self.ids: list[int] = rng.integers(1, 99999, index.size).tolist()
        self.users: list[int] = rng.integers(1, 60000, index.size).tolist()

    def trace(self, k: int) -> str:
        high, low = self.traces[k]
        return f"{high:016x}{low:016x}"


class LogBook:
    """Writes the scenario's log lines, service by service, then events, then sorts them."""

    def __init__(
        self,
        graph: ServiceGraph,
        telemetry: Telemetry,
        plan: FaultPlan,
        symptoms: dict[str, Symptom],
        rng: np.random.Generator,
    ) -> None:
        self.graph, self.telemetry, self.plan, self.symptoms = graph, telemetry, plan, symptoms
        self.rng = rng
        self.voices: dict[str, Voice] = {}
        for spec in graph.services:
            if not spec.is_external:
                p99 = float(np.nanmedian(telemetry.services[spec.name].latency[2])) * 1000
                self.voices[spec.name] = voice_of(spec, p99, rng)
        self.exceptions: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.live: dict[tuple[str, int, bool], list[str]] = {}
        self.lines: list[Line] = []

    def records(self) -> list[LogRecord]:
        budget = float(np.exp(self.rng.uniform(np.log(3500), np.log(30000))))
        weights = {
            name: voice.verbosity * float(np.nanmean(self.telemetry.services[name].rps)) ** 0.5
            for name, voice in self.voices.items()
        }
        total = sum(weights.values()) or 1.0
        for name, voice in self.voices.items():
            self._service(self.graph.by_name[name], voice, budget * weights[name] / total)
        for event in self.telemetry.events:
            if event.service in self.voices:
                voice = self.voices[event.service]
                self.lines += event_lines(event, voice, self.telemetry, self.rng)
        self.lines.sort(key=lambda line: (line.when, line.service))
        return _records(self.lines)

    def _service(self, spec: ServiceSpec, voice: Voice, expected: float) -> None:
        series = self.telemetry.services[spec.name]
        timeline = self.telemetry.timeline
        activity = np.nan_to_num(series.rps) * (series.up > 0)
        if activity.sum() <= 0:
            return
        counts = self.rng.poisson(expected * activity / activity.sum())
        batch = _Batch(self.rng, np.repeat(np.arange(timeline.length), counts), series, voice)
        stamps = timeline.times[batch.index] + self.rng.random(batch.size) * timeline.resolution
        draw = self.rng.random(batch.size).tolist()
        for k, (t, at) in enumerate(zip(batch.index.tolist(), stamps.tolist(), strict=True)):
            if draw[k] < 0.88:
                self._request(spec, voice, t, at, batch, k)
            elif draw[k] < 0.98 or spec.is_datastore:
                self._background(spec, voice, t, at)
            else:
                self._benign(spec, voice, t, at)

    def _pod(self, service: str, t: int, faulty: bool = False) -> str | None:
        key = (service, t, faulty)
        live = self.live.get(key)
        if live is None:
            pods = self.telemetry.services[service].live_pods(t)
            if faulty:
                pods = [p for p in pods if p.name in self.plan.pods] or pods
            live = self.live[key] = [p.name for p in pods]
        return live[int(self.rng.random() * len(live))] if live else None

    def _emit(
        self,
        service: str,
        t: int,
        at: float,
        level: str,
        message: str,
        trace: str | None = None,
        pod: str | None = None,
    ) -> None:
        pod = pod or self._pod(service, t)
        self.lines.append(Line(at, service, pod, level, message, trace))

    def _request(
        self, spec: ServiceSpec, voice: Voice, t: int, at: float, batch: _Batch, k: int
    ) -> None:
        ms, failed, trace = batch.millis[k], batch.failed[k], batch.trace(k)
        slow = ms > voice.slow_ms
        family, peer = self._family(spec.name, t) if failed else ("", None)
        if spec.is_datastore:  # databases log failures and slow operations, not every request
            if failed:
                self._detail(spec, voice, Failure(t, at, family, peer, trace, ms))
            elif slow:
                text = SLOW_OPERATIONS.get(spec.runtime, SLOW_OPERATIONS["any"])
                text = text.format(ms=ms, s=ms / 1000, n=batch.ids[k])
                self._emit(spec.name, t, at, "WARN", render(voice, at, "WARN", text, {}))
            return
        status = _STATUS.get(family, 500) if failed else 200
        level = "ERROR" if failed else ("WARN" if slow else "INFO")
        method, path = voice.endpoints[batch.endpoints[k]]
        path = path.replace("{id}", str(batch.ids[k]))
        user = f"u-{batch.users[k]}"
        if voice.format in ("json", "logfmt"):
            text = "request completed"
            fields: dict[str, object] = {
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(ms, 1),
                "user": user,
                "trace_id": trace,
            }
        else:
            text, fields = f"{method} {path} {status} {ms:.0f}ms", {"user": user, "trace_id": trace}
        self._emit(spec.name, t, at, level, render(voice, at, level, text, fields), trace=trace)
        if failed and self.rng.random() < voice.detail_rate:
            self._detail(spec, voice, Failure(t, at + 0.001, family, peer, trace, ms))

    def _family(self, service: str, t: int) -> tuple[str, str | None]:
        """Why this failed request failed: the fault's reason or an everyday one."""
        symptom = self.symptoms.get(service)
        total = float(np.nan_to_num(self.telemetry.services[service].error_ratio[t]))
        if symptom is not None and total > 0:
            share = float(symptom.errors[t]) / total
            if self.rng.random() < share:
                return symptom.family, symptom.peer
        callees = self.graph.callees(service)
        if callees and self.rng.random() < 0.5:
            family = ("timeout", "upstream_5xx", "reset")[int(self.rng.integers(3))]
            return family, callees[int(self.rng.integers(len(callees)))]
        return "benign", None

    def _detail(self, spec: ServiceSpec, voice: Voice, failure: Failure) -> None:
        """The error line that says why a request failed (stack trace, pool timeout, ...)."""
        t, at, family = failure.t, failure.at, failure.family
        params = self._params(spec, failure.peer)
        params["ms"] = int(failure.ms)
        faulty = spec.name == self.plan.service
        stack = None
        if family in EXCEPTIONS:
            kind, message = self._exception(spec, family)
            message = message.format_map(params)
            stack = stack_trace(voice.runtime, spec.name, kind, message)
            lead = _LEADS.get(voice.runtime, "request failed").format_map(params)
            text = lead if stack else f"{lead}: {kind}: {message}"
        elif family == "benign":
            text = _BENIGN_ERRORS[int(self.rng.integers(len(_BENIGN_ERRORS)))].format_map(params)
        else:
            catalog = OWN[family] if faulty and family in OWN else CALLER[family]
            text = pick(catalog, voice.runtime, self.rng).format_map(params)
        line = render(voice, at, "ERROR", text, {"trace_id": failure.trace}, stack)
        pod_scoped = faulty and family != "benign" and self.plan.fault not in SERVICE_WIDE
        pod = self._pod(spec.name, t, faulty=pod_scoped)
        self._emit(spec.name, t, at, "ERROR", line, trace=failure.trace, pod=pod)

    def _exception(self, spec: ServiceSpec, family: str) -> tuple[str, str]:
        """A bug throws the same one or two exceptions every time."""
        key = (spec.name, family)
        if key not in self.exceptions:
            options = EXCEPTIONS[family][spec.runtime]
            picks = self.rng.choice(len(options), int(self.rng.integers(1, 3)), replace=False)
            self.exceptions[key] = [options[int(i)] for i in picks]
        chosen = self.exceptions[key]
        return chosen[int(self.rng.integers(len(chosen)))]

    def _params(self, spec: ServiceSpec, peer: str | None) -> Params:
        callees = self.graph.callees(spec.name)
        if peer is None:
            peer = callees[int(self.rng.integers(len(callees)))] if callees else "config-server"
        peer_spec = self.graph.by_name.get(peer)
        port = port_of(peer_spec.runtime if peer_spec else "")
        pool = self.telemetry.services[spec.name].pool_size or 10
        wait = 30000 if pool >= 20 else 5000  # the pool's configured acquire timeout
        return Params(self.rng, peer=peer, port=port, service=spec.name, pool=pool, pool_ms=wait)

    def _background(self, spec: ServiceSpec, voice: Voice, t: int, at: float) -> None:
        options = DATASTORE_BACKGROUND.get(spec.runtime, ()) if spec.is_datastore else BACKGROUND
        if not options:
            return
        text = options[int(self.rng.integers(len(options)))].format_map(self._params(spec, None))
        self._emit(spec.name, t, at, "INFO", render(voice, at, "INFO", text, {}))

    def _benign(self, spec: ServiceSpec, voice: Voice, t: int, at: float) -> None:
        level, template = BENIGN["any"][int(self.rng.integers(len(BENIGN["any"])))]
        text = template.format_map(self._params(spec, None))
        self._emit(spec.name, t, at, level, render(voice, at, level, text, {}))


_RECORDS = TypeAdapter(list[LogRecord])


def _records(lines: list[Line]) -> list[LogRecord]:
    """Validated in one call: per-record construction would dominate the simulation time."""
    return _RECORDS.validate_python(
        [
            {
                "timestamp": datetime.fromtimestamp(round(line.when, 3), tz=UTC),
                "service": line.service,
                "level": line.level,
                "message": line.message,
                "pod": line.pod,
                "trace_id": line.trace,
            }
            for line in lines
        ]
    )


def write_logs(
    graph: ServiceGraph,
    telemetry: Telemetry,
    plan: FaultPlan,
    symptoms: dict[str, Symptom],
    rng: np.random.Generator,
) -> list[LogRecord]:
    """Every log line of the scenario, sorted by time."""
    return LogBook(graph, telemetry, plan, symptoms, rng).records()
