"""Live collection when a source misbehaves: down, slow, answering errors, or partly.

The analysis must complete within the configured budget, name the failed source, and use
what the others returned. The servers are real sockets: a closed port, a server that
accepts and never answers, and a small HTTP server answering fixed statuses.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_server import (
    PrometheusServer,
    SilentServer,
    StubPrometheus,
    closed_port_url,
    require_binaries,
    start_prometheus,
)

from agent.config import Settings
from agent.engine.pipeline import analyze
from agent.errors import SourceError
from agent.models import LogRecord, Signal
from connectors.collect import Collected, Scope, collect, collect_live
from connectors.prometheus import PrometheusSource
from connectors.settings import CollectSettings, PrometheusSettings
from evals.bench_sources import backfill_scenarios
from evals.simulator import Scenario, simulate

START = datetime(2024, 5, 14, 10, 0, tzinfo=UTC)
QUICK = PrometheusSettings(timeout_s=0.5, retries=1, backoff_s=0.05)


@dataclass
class FixedLogs:
    """A log source that always returns the same lines (the other source keeps working)."""

    lines: list[LogRecord]
    records: list[LogRecord] = field(default_factory=list)
    count_signals: list[Signal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fetch(
        self, services: Sequence[str], start: datetime, end: datetime, deadline: float | None = None
    ) -> FixedLogs:
        return FixedLogs(self.lines, records=list(self.lines))


def _logs() -> FixedLogs:
    lines = [
        LogRecord(
            timestamp=START + timedelta(seconds=20 * i),
            service="checkout",
            level="ERROR" if i > 120 and i % 2 else "INFO",
            message="payment call failed: timeout" if i > 120 and i % 2 else f"order {i} placed",
        )
        for i in range(180)
    ]
    return FixedLogs(lines)


def _scope() -> Scope:
    return Scope((), START + timedelta(minutes=40), START + timedelta(minutes=60))


def _collect(url: str, settings: PrometheusSettings = QUICK, budget: float = 30) -> Collected:
    source = PrometheusSource(url, settings)
    return collect_live(_scope(), source, _logs(), CollectSettings(budget_s=budget))


def _completes_naming_prometheus(collected: Collected) -> str:
    """The analysis runs on the logs and reports the Prometheus failure; its message."""
    assert [f.source for f in collected.failures] == ["prometheus"]
    assert collected.snapshot.logs and collected.snapshot.signals == []
    analysis = analyze(collected.snapshot, source_failures=collected.failures)
    assert analysis.source_failures == collected.failures
    assert analysis.candidates and analysis.candidates[0].service == "checkout"
    return collected.failures[0].error


def test_prometheus_down_is_recorded_and_the_logs_still_count() -> None:
    url = closed_port_url()
    error = _completes_naming_prometheus(_collect(url))
    assert error == f"cannot connect to {url}: connection refused"


def test_a_server_that_never_answers_times_out_per_query() -> None:
    server = SilentServer()
    try:
        error = _completes_naming_prometheus(_collect(server.url))
    finally:
        server.close()
    assert error == "probe up: no answer within 0.5 s"


def test_the_collection_budget_bounds_a_slow_source() -> None:
    server = SilentServer()
    try:
        slow = PrometheusSettings(timeout_s=5, retries=0)
        collected = _collect(server.url, slow, budget=0.5)
        error = _completes_naming_prometheus(collected)
    finally:
        server.close()
    # Each source's time is kept for the service's per-source metric; the slow one took
    # about the budget, the in-memory logs next to nothing.
    assert set(collected.durations) == {"prometheus", "elasticsearch"}
    assert 0.3 < collected.durations["prometheus"] < 5
    assert collected.durations["elasticsearch"] < collected.durations["prometheus"]
    # Whichever notices first: the source (its timeouts shrink to the time left) or collect.
    assert error in (
        "probe up: no answer within 0.5 s",
        "no answer within the collection budget of 0.5 s",
    )


def test_5xx_answers_are_retried_then_recorded() -> None:
    stub = StubPrometheus(503, {"status": "error", "errorType": "unavailable", "error": "busy"})
    try:
        error = _completes_naming_prometheus(_collect(stub.url))
    finally:
        stub.close()
    assert error == "probe up: HTTP 503: busy"
    assert len(stub.requests) == 1 + QUICK.retries


def test_4xx_answers_are_not_retried() -> None:
    body = {"status": "error", "errorType": "bad_data", "error": "invalid parameter"}
    stub = StubPrometheus(400, body)
    try:
        error = _completes_naming_prometheus(_collect(stub.url))
    finally:
        stub.close()
    assert error == "probe up: HTTP 400: invalid parameter"
    assert len(stub.requests) == 1


def test_a_proxy_answering_html_is_named_not_a_traceback() -> None:
    stub = StubPrometheus(200, {"not": "prometheus"})
    try:
        error = _completes_naming_prometheus(_collect(stub.url))
    finally:
        stub.close()
    assert error == f"probe up: {stub.url} did not answer with the Prometheus API's JSON"


def test_when_no_source_returns_anything_collection_raises_naming_them() -> None:
    url = closed_port_url()
    with pytest.raises(SourceError) as caught:
        collect_live(_scope(), PrometheusSource(url, QUICK), None, CollectSettings())
    assert str(caught.value) == (
        "collect: no source returned data for the window "
        f"(prometheus: cannot connect to {url}: connection refused)"
    )


def test_collect_uses_the_configured_live_source(monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url()
    settings = Settings(prometheus_url=url, prometheus=QUICK)
    with pytest.raises(SourceError, match=f"prometheus: cannot connect to {url}"):
        collect(_scope(), settings)


# --- partial data from the real Prometheus --------------------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, PrometheusServer]]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("collect-partial")
    scenario = simulate(145)  # memory leak, 8 services
    server = start_prometheus(backfill_scenarios([scenario], root / "tsdb"), root / "server")
    yield scenario, server
    server.stop()


@pytest.mark.integration
def test_a_window_only_partly_covered_by_data_still_analyses(
    small: tuple[Scenario, PrometheusServer],
) -> None:
    scenario, server = small
    timeline = scenario.telemetry.timeline
    end = datetime.fromtimestamp(timeline.end, UTC) + timedelta(minutes=30)
    scope = Scope((), datetime.fromtimestamp(timeline.end, UTC), end, scenario.snapshot.alert)
    source = PrometheusSource(server.url, PrometheusSettings())
    collected = collect_live(scope, source, None, CollectSettings(baseline_minutes=120))
    assert collected.failures == []
    stamps = [t for s in collected.snapshot.signals for t in s.timestamps]
    assert min(stamps) < timeline.start < timeline.end < max(stamps)
    services = {s.service for s in collected.snapshot.signals}
    assert services == {spec.name for spec in scenario.graph.services}
    assert analyze(collected.snapshot).window.end == end
