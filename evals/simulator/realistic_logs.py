"""The realism profile's log features, applied to the plain simulator's finished log lines.

- :func:`share_traces`: one trace id along a request's call path. Services instrumented with a
  propagating tracer write the caller's trace id on the callee's lines too; the callee logs a
  few milliseconds after the caller's request began, and when the callee fails, its ERROR line
  comes first and the callers log theirs about it afterwards.
- :func:`levels_in_text`: a shipper that does not parse levels marks every record INFO while
  the text carries the level, logback style (``16:42:22.382 ERROR c.k.CartServiceImpl#41 - ...``).
- :func:`cover`: logs collected only for a few minutes around the onset.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from agent.models import LogRecord
from evals.simulator.topology import ServiceGraph

LINK_SHARE = 0.7  # of a caller's requests, how many call a callee that logs
_SUFFIXES = ("ServiceImpl", "Controller", "Service", "Client", "Handler")


@dataclass
class _Request:
    """The lines of one trace id at one service, before traces are shared."""

    trace: str
    service: str
    first: float
    first_error: float | None
    lines: list[int] = field(default_factory=list)


def _requests(records: list[LogRecord]) -> dict[str, _Request]:
    requests: dict[str, _Request] = {}
    for i, record in enumerate(records):
        if record.trace_id is None:
            continue
        at = record.timestamp.timestamp()
        request = requests.get(record.trace_id)
        if request is None:
            request = _Request(record.trace_id, record.service, at, None)
            requests[record.trace_id] = request
        request.lines.append(i)
        request.first = min(request.first, at)
        if record.level == "ERROR":
            seen = request.first_error
            request.first_error = at if seen is None else min(seen, at)
    return requests


def _link(
    graph: ServiceGraph, requests: dict[str, _Request], step: float, rng: np.random.Generator
) -> dict[str, tuple[str, bool]]:
    """Which request each callee request served: child trace -> (parent trace, failed)."""
    pools: dict[tuple[str, int, bool], list[str]] = defaultdict(list)
    by_service: dict[str, list[_Request]] = defaultdict(list)
    for request in requests.values():
        bucket = int(request.first // step)
        pools[(request.service, bucket, request.first_error is not None)].append(request.trace)
        by_service[request.service].append(request)
    parents: dict[str, tuple[str, bool]] = {}
    for spec in graph.services:
        callees = graph.callees(spec.name)
        if not callees:
            continue
        for request in by_service.get(spec.name, []):
            if rng.random() >= LINK_SHARE:
                continue
            bucket = int(request.first // step)
            failed = request.first_error is not None
            options = [c for c in callees if pools.get((c, bucket, True))] if failed else []
            failing = bool(options)
            if not failing:
                options = [c for c in callees if pools.get((c, bucket, False))]
            if not options:
                continue
            pool = pools[(options[int(rng.integers(len(options)))], bucket, failing)]
            child = pool.pop(int(rng.integers(len(pool))))
            parents[child] = (request.trace, failing)
    return parents


def share_traces(
    records: list[LogRecord], graph: ServiceGraph, resolution: int, rng: np.random.Generator
) -> list[LogRecord]:
    """Give callee requests their caller's trace id and move them into the caller's request:
    a few ms after its first line, or, when the callee failed, its first ERROR a few ms before
    the caller's. Returns the lines sorted by time again."""
    requests = _requests(records)
    parents = _link(graph, requests, float(max(resolution, 1)), rng)
    offsets: dict[str, float] = {}
    roots: dict[str, str] = {}

    def settle(trace: str) -> tuple[float, str]:
        if trace in offsets:
            return offsets[trace], roots[trace]
        link = parents.get(trace)
        if link is None:
            offsets[trace], roots[trace] = 0.0, trace
            return 0.0, trace
        parent_trace, failing = link
        shift, root = settle(parent_trace)
        parent, child = requests[parent_trace], requests[trace]
        gap = float(rng.uniform(0.002, 0.03))
        if failing and parent.first_error is not None and child.first_error is not None:
            offset = parent.first_error + shift - gap - child.first_error
        else:
            offset = parent.first + shift + gap - child.first
        offsets[trace], roots[trace] = offset, root
        return offset, root

    out = list(records)
    for trace in sorted(parents):
        offset, root = settle(trace)
        for i in requests[trace].lines:
            record = out[i]
            message = record.message.replace(trace, root).replace(trace[:16], root[:16])
            out[i] = record.model_copy(
                update={
                    "timestamp": record.timestamp + timedelta(seconds=offset),
                    "trace_id": root,
                    "message": message,
                }
            )
    out.sort(key=lambda r: (r.timestamp, r.service))
    return out


def _camel(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("_", "-").split("-") if part)


def levels_in_text(
    records: list[LogRecord], graph: ServiceGraph, rng: np.random.Generator
) -> list[LogRecord]:
    """For most non-datastore services, the record's level becomes INFO (what a shipper that
    parses nothing says) and the text starts with time, level and a logback-style logger."""
    loggers: dict[str, str] = {}
    for spec in graph.services:
        if spec.is_datastore or rng.random() > 0.85:
            continue
        package = f"{'cdeor'[int(rng.integers(5))]}.{chr(ord('a') + int(rng.integers(26)))}"
        suffix = _SUFFIXES[int(rng.integers(len(_SUFFIXES)))]
        loggers[spec.name] = f"{package}.{_camel(spec.name)}{suffix}"
    out = []
    for record in records:
        logger = loggers.get(record.service)
        if logger is None:
            out.append(record)
            continue
        stamp = record.timestamp.strftime("%H:%M:%S.%f")[:-3]
        line = int(rng.integers(20, 400))
        text = f"{stamp} {record.level:<5} {logger}#{line} - {record.message}"
        out.append(record.model_copy(update={"level": "INFO", "message": text}))
    return out


def cover(records: list[LogRecord], first: datetime, last: datetime) -> list[LogRecord]:
    """Only the lines from ``first`` to ``last``: what a collector kept."""
    return [r for r in records if first <= r.timestamp <= last]
