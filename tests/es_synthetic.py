"""Synthetic ECS log lines for the Elasticsearch tests and the memory benchmark.

Deterministic for a seed; levels come in the spellings real shippers use (``error``,
``ERROR``, ``warning``, ``WARN``, missing), timestamps repeat within a millisecond now and
then (to exercise ``search_after`` tie-breaking), and services differ in volume by an order
of magnitude so per-service caps bite on some and not on others.
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from es_double import EsDouble
from es_store import Index

START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
LEVELS = ("info", "INFO", "debug", "warning", "WARN", "error", "ERROR", "fatal", None)
_LEVEL_P = (0.55, 0.15, 0.1, 0.04, 0.02, 0.05, 0.03, 0.01, 0.05)
_MESSAGES = (
    "GET /api/items/{n} 200 {ms}ms",
    "cache miss for key user:{n}",
    "connection pool at {n}% capacity",
    "upstream timeout after {ms}ms calling inventory",
    "java.lang.IllegalStateException: order {n} already settled",
)


def service_names(count: int) -> list[str]:
    return [f"svc-{i:02d}" for i in range(count)]


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def synthetic_docs(
    n: int, services: int = 4, span: timedelta = timedelta(hours=1), seed: int = 7
) -> Iterator[dict[str, Any]]:
    """``n`` ECS documents spread over ``span`` from :data:`START`; service ``i`` logs
    roughly ``i + 1`` times as much as service 0."""
    rng = np.random.default_rng(seed)
    names = service_names(services)
    weights = np.arange(1, services + 1, dtype=float) ** 2
    owner = rng.choice(services, size=n, p=weights / weights.sum())
    offsets_ms = np.sort(rng.integers(0, int(span.total_seconds() * 1000), size=n))
    offsets_ms[1::50] = offsets_ms[0::50][: len(offsets_ms[1::50])]  # same-ms ties
    offsets_ms.sort()
    levels = rng.choice(len(LEVELS), size=n, p=_LEVEL_P)
    templates = rng.integers(0, len(_MESSAGES), size=n)
    for i in range(n):
        service = names[int(owner[i])]
        level = LEVELS[int(levels[i])]
        message = _MESSAGES[int(templates[i])].format(n=i % 997, ms=(i * 7) % 900)
        doc: dict[str, Any] = {
            "@timestamp": iso(START + timedelta(milliseconds=int(offsets_ms[i]))),
            "message": message,
            "service": {"name": service},
            "kubernetes": {"pod": {"name": f"{service}-pod-{i % 3}"}},
            "trace": {"id": f"{i:032x}"},
        }
        if level is not None:
            doc["log"] = {"level": level}
        yield doc


def load_synthetic(double: EsDouble, n: int, services: int) -> None:
    """Fill the double directly (no HTTP), mapped as the connector's template maps."""
    double.indices["logs-bench"] = index = Index(
        "logs-bench",
        0,
        {
            "@timestamp": "date",
            "service.name": "keyword",
            "log.level": "keyword",
            "kubernetes.pod.name": "keyword",
            "trace.id": "keyword",
            "message": "text",
        },
    )
    for doc in synthetic_docs(n, services, span=timedelta(hours=2)):
        index.add(doc)


def _serve() -> None:
    """Serve a pre-loaded double until killed; write its URL to ``--port-file`` once up."""
    parser = argparse.ArgumentParser(description=_serve.__doc__)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--services", type=int, default=10)
    args = parser.parse_args()
    double = EsDouble()
    load_synthetic(double, args.lines, args.services)
    double.start()
    args.port_file.write_text(double.url)
    threading.Event().wait()


if __name__ == "__main__":
    _serve()
