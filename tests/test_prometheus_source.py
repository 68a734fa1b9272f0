"""PrometheusSource against the real Prometheus, over one backfilled simulated incident."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from prometheus_server import (
    BASIC_AUTH_PASSWORD,
    BASIC_AUTH_USER,
    EMPTY_MATRIX,
    PrometheusServer,
    StubPrometheus,
    require_binaries,
    start_prometheus,
)
from pydantic import SecretStr

from agent.errors import SourceError
from connectors.catalog import CatalogSignal, load_catalog
from connectors.prometheus import MetricFetch, PrometheusSource
from connectors.promql import equals
from connectors.settings import PrometheusSettings
from evals.bench_sources import backfill_scenarios
from evals.simulator import Scenario, simulate

SEED = 12  # packet loss on a 13-service graph at 10 s resolution: small and quick


@dataclass
class Incident:
    scenario: Scenario
    server: PrometheusServer
    data_dir: Path

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.scenario.telemetry.timeline.start, UTC)

    @property
    def end(self) -> datetime:
        return datetime.fromtimestamp(self.scenario.telemetry.timeline.end, UTC)

    @property
    def labels(self) -> dict[str, str]:
        return {"namespace": self.scenario.graph.namespace}


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Incident]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("prom-source")
    scenario = simulate(SEED)
    data_dir = backfill_scenarios([scenario], root / "tsdb")
    server = start_prometheus(data_dir, root / "server")
    yield Incident(scenario, server, data_dir)
    server.stop()


def _fetch(incident: Incident, **settings: Any) -> MetricFetch:
    source = PrometheusSource(incident.server.url, PrometheusSettings(**settings))
    return source.fetch(incident.start, incident.end, alert_labels=incident.labels)


@pytest.mark.integration
def test_signals_carry_the_catalog_name_kind_unit_and_the_pods(incident: Incident) -> None:
    fetch = _fetch(incident)
    catalog = {entry.name: entry for entry in load_catalog().signals}
    assert fetch.failures == []
    assert {s.service for s in fetch.signals} == {
        spec.name for spec in incident.scenario.graph.services
    }
    pods = {p.name for series in incident.scenario.telemetry.services.values() for p in series.pods}
    for signal in fetch.signals:
        entry = catalog[signal.name]
        assert (signal.kind, signal.unit) == (entry.kind, entry.unit)
        assert (signal.pod is not None) == entry.per_pod, signal.series_id
        if signal.pod is not None:
            assert signal.pod in pods
    cpu = [s for s in fetch.signals if s.name == "container_cpu_usage_seconds:rate"]
    assert {s.pod for s in cpu} == pods


@pytest.mark.integration
def test_the_step_is_the_scrape_interval_and_caps_points_per_series(incident: Incident) -> None:
    resolution = incident.scenario.telemetry.timeline.resolution
    fine = _fetch(incident)
    assert f"scrape interval {resolution:g} s" in fine.notes[0]
    assert {s.resolution_s for s in fine.signals} == {float(resolution)}
    coarse = _fetch(incident, max_points=40)
    assert max(len(s.timestamps) for s in coarse.signals) <= 40
    assert min(s.resolution_s or 0 for s in coarse.signals) > resolution


@pytest.mark.integration
def test_each_link_opens_exactly_its_service_in_the_graph_browser(incident: Incident) -> None:
    signal = next(s for s in _fetch(incident).signals if s.name == "http_requests:rate")
    assert signal.link is not None
    params = parse_qs(urlparse(signal.link).query)
    query = params["g0.expr"][0]
    assert equals("service", signal.service) in query
    answer = httpx.get(
        f"{incident.server.url}/api/v1/query",
        params={"query": query, "time": str(incident.end.timestamp())},
        timeout=10,
    ).json()
    assert {r["metric"]["service"] for r in answer["data"]["result"]} == {signal.service}


@pytest.mark.integration
def test_services_and_scope_labels_narrow_the_queries(incident: Incident) -> None:
    source = PrometheusSource(incident.server.url, PrometheusSettings())
    wanted = sorted(spec.name for spec in incident.scenario.graph.services)[:2]
    narrowed = source.fetch(incident.start, incident.end, wanted, incident.labels)
    assert {s.service for s in narrowed.signals} == set(wanted)
    elsewhere = source.fetch(incident.start, incident.end, (), {"namespace": 'x"} or up{a="'})
    assert elsewhere.signals == [] and elsewhere.failures == []


@pytest.mark.integration
def test_the_call_graph_comes_from_the_service_graph_metric(incident: Incident) -> None:
    fetch = _fetch(incident)
    expected = {(e.caller, e.callee) for e in incident.scenario.graph.topology().edges}
    assert {(e.caller, e.callee) for e in fetch.edges} == expected


@pytest.mark.integration
def test_a_query_the_server_rejects_is_recorded_and_the_others_count(
    incident: Incident, tmp_path: Path
) -> None:
    broken = CatalogSignal(name="broken", kind="other", query="sum by ($by) (rate(up{$selector}")
    catalog = load_catalog()
    catalog = catalog.model_copy(update={"signals": [broken, *catalog.signals]})
    source = PrometheusSource(incident.server.url, PrometheusSettings(), catalog)
    fetch = source.fetch(incident.start, incident.end, alert_labels=incident.labels)
    assert len(fetch.failures) == 1
    assert fetch.failures[0].startswith("broken: HTTP 400: ") and "parse error" in fetch.failures[0]
    assert {s.name for s in fetch.signals} >= {"http_requests:rate", "up"}


@pytest.mark.integration
def test_check_runs_every_catalog_query_once(incident: Incident) -> None:
    rows = PrometheusSource(incident.server.url, PrometheusSettings()).check(at=incident.end)
    assert [r.name for r in rows] == [s.name for s in load_catalog().signals]
    assert all(r.error is None for r in rows)
    found = {r.name: r for r in rows}
    assert found["up"].series == len(incident.scenario.graph.services)
    assert found["http_server_request_duration_seconds:p99"].series == 0  # OTel names absent


@pytest.fixture(scope="module")
def guarded(incident: Incident, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Prometheus over a copy of the TSDB, behind basic auth."""
    root = tmp_path_factory.mktemp("prom-auth")
    data = Path(shutil.copytree(incident.data_dir, root / "tsdb"))
    (data / "lock").unlink(missing_ok=True)
    server = start_prometheus(data, root / "server", basic_auth=True)
    yield server.url
    server.stop()


@pytest.mark.integration
def test_basic_auth_with_the_right_password_works(incident: Incident, guarded: str) -> None:
    settings = PrometheusSettings(username=BASIC_AUTH_USER, password=SecretStr(BASIC_AUTH_PASSWORD))
    fetch = PrometheusSource(guarded, settings).fetch(
        incident.start, incident.end, alert_labels=incident.labels
    )
    assert fetch.signals and fetch.failures == []


@pytest.mark.integration
def test_wrong_credentials_give_a_clear_error_naming_the_source(
    incident: Incident, guarded: str
) -> None:
    wrong = PrometheusSettings(username=BASIC_AUTH_USER, password=SecretStr("wrong"))
    with pytest.raises(SourceError) as caught:
        PrometheusSource(guarded, wrong).fetch(incident.start, incident.end)
    assert caught.value.source == "prometheus"
    assert str(caught.value).startswith(
        f"prometheus: {guarded} rejected the credentials (HTTP 401)"
    )
    assert "prometheus.bearer_token" in str(caught.value)


def test_bearer_token_and_tenant_headers_are_sent() -> None:
    stub = StubPrometheus(200, EMPTY_MATRIX)
    try:
        settings = PrometheusSettings(
            bearer_token=SecretStr("t0ken"), headers={"X-Scope-OrgID": "team-a"}
        )
        start = datetime(2024, 1, 1, tzinfo=UTC)
        fetch = PrometheusSource(stub.url, settings).fetch(start, start.replace(hour=1))
    finally:
        stub.close()
    assert fetch.signals == [] and fetch.failures == []
    probes = 2  # no samples at the window's end, so the probe tries its middle too
    catalog = load_catalog()
    assert len(stub.requests) == probes + len(catalog.signals) + len(catalog.topology)
    for _, headers in stub.requests:
        assert headers["authorization"] == "Bearer t0ken"
        assert headers["x-scope-orgid"] == "team-a"
