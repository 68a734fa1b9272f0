"""Per-edge service-mesh series through the real Prometheus: Istio's client-side request
histogram, backfilled with promtool, fetched by the default catalog, and ranked. A network
delay on one callee shows only in its callers' waits on it; the engine must name the callee."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_server import PrometheusServer, require_binaries, start_prometheus

from agent.engine import analyze
from agent.models import FaultType
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec
from connectors.prometheus import MetricFetch, PrometheusSource
from connectors.promtool import backfill
from connectors.settings import PrometheusSettings

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
STEP = 15
POINTS = 161  # 40 minutes
FAULT_AT = 120  # the delay starts at minute 30
EDGES = [("front", "cart"), ("front", "ads"), ("checkout", "cart"), ("checkout", "mail")]
BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000]
NAME = "istio_request_duration_milliseconds"


def _edge_lines(caller: str, callee: str, rng: np.random.Generator) -> Iterator[str]:
    """Cumulative buckets of ~40 requests per scrape: ~8-40 ms, or +200 ms on cart after
    the fault (the delay sits on cart's network path; its own serving side never sees it)."""
    totals = np.zeros(len(BUCKETS_MS) + 1)
    labels = (
        f'reporter="source",source_workload="{caller}",destination_workload="{callee}",'
        'namespace="shop"'
    )
    for i in range(POINTS):
        delay = 200.0 if callee == "cart" and i >= FAULT_AT else 0.0
        latencies = rng.lognormal(np.log(15.0), 0.45, size=40) + delay
        totals[:-1] += [np.sum(latencies <= b) for b in BUCKETS_MS]
        totals[-1] += latencies.size
        stamp = T0 + STEP * i
        for bound, count in zip([*map(str, BUCKETS_MS), "+Inf"], totals, strict=True):
            yield f'{NAME}_bucket{{{labels},le="{bound}"}} {int(count)} {stamp}'
        yield f"{NAME}_count{{{labels}}} {int(totals[-1])} {stamp}"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("mesh")
    rng = np.random.default_rng(5)
    lines = [f"# TYPE {NAME} histogram", f"# UNIT {NAME} milliseconds"]
    for caller, callee in EDGES:
        lines.extend(_edge_lines(caller, callee, rng))
    lines.append("# EOF")
    metrics = root / "mesh.om"
    metrics.write_text("\n".join(lines) + "\n")
    server = start_prometheus(backfill(metrics, root / "tsdb"), root / "server")
    yield server
    server.stop()


def _fetch(server: PrometheusServer) -> MetricFetch:
    source = PrometheusSource(server.url, PrometheusSettings())
    start = datetime.fromtimestamp(T0, UTC)
    end = datetime.fromtimestamp(T0 + STEP * (POINTS - 1), UTC)
    return source.fetch(start, end)


@pytest.mark.integration
def test_the_catalog_keeps_the_callee_of_each_edge(mesh: PrometheusServer) -> None:
    fetch = _fetch(mesh)
    edges = {
        (s.service, s.labels.get("destination_workload"))
        for s in fetch.signals
        if s.name == f"{NAME}:p99"
    }
    assert edges == set(EDGES)


@pytest.mark.integration
def test_a_delay_seen_only_by_the_callers_is_blamed_on_the_callee(mesh: PrometheusServer) -> None:
    fetch = _fetch(mesh)
    snapshot = Snapshot(
        meta=SnapshotMeta(
            id="mesh-delay",
            window=WindowSpec(incident_start=datetime.fromtimestamp(T0 + STEP * FAULT_AT, UTC)),
        ),
        signals=fetch.signals,
    )
    analysis = analyze(snapshot)
    top = analysis.candidates[0]
    assert top.service == "cart"
    assert top.fault_type is FaultType.NETWORK_LATENCY
    assert any("callers wait longer on it" in r for r in top.reasons)
    # Neither waiting caller, nor the callees whose edges stayed fast, is ahead of it.
    assert top.score > 2 * max((c.score for c in analysis.candidates[1:]), default=0.0)
