"""Ad-hoc requests name where it hurts, like an alert: the named services' call-graph
neighbourhood is collected and ranked (agent/scope.py, connectors/collect.py), and the window
rule frames every trigger (agent/window.py). End to end through the service and a real
Prometheus backfilled with promtool: seed 145 is a memory leak in ``shipping-service`` that
pages on the front end ``storefront``, in 2024."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_server import PrometheusServer, require_binaries, start_prometheus
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    auth,
    settings_for,
    wait_for,
)

from agent.cli import cli
from agent.engine.pipeline import analyze
from agent.models import Edge, Signal, Topology, Trigger
from agent.scope import as_request, in_neighbourhood, neighbourhood
from agent.service.app import create_app
from agent.snapshot import write_snapshot
from evals.bench_sources import backfill_scenarios
from evals.simulator import Scenario, simulate

SEED = 145  # memory leak in shipping-service; the alert pages on storefront, 2024-11-07
ROOT_CAUSE, ENTRY = "shipping-service", "storefront"


def _topology(*pairs: tuple[str, str]) -> Topology:
    return Topology(edges=[Edge(caller=a, callee=b) for a, b in pairs])


# --- the neighbourhood ---------------------------------------------------------------------


def test_the_neighbourhood_is_everything_called_and_the_direct_callers() -> None:
    graph = _topology(
        ("edge", "web"), ("web", "api"), ("api", "db"), ("api", "cache"), ("batch", "db"),
        ("admin", "web"), ("other", "queue"),
    )  # fmt: skip
    assert neighbourhood(graph, ["api"]) == {"api", "db", "cache", "web"}
    assert neighbourhood(graph, ["web"]) == {"web", "api", "db", "cache", "edge", "admin"}
    assert neighbourhood(graph, ["db"]) == {"db", "api", "batch"}


def test_without_a_graph_that_places_the_service_nothing_is_ruled_out() -> None:
    assert neighbourhood(None, ["web"]) is None
    assert neighbourhood(Topology(), ["web"]) is None
    assert neighbourhood(_topology(("a", "b")), ["web"]) is None


def _series(service: str) -> Signal:
    return Signal(service=service, name="cpu", timestamps=[0.0, 60.0], values=[1.0, 2.0])


def test_services_the_graph_does_not_place_stay_in_scope() -> None:
    """A graph from mesh telemetry rarely has the database exporter in it."""
    scenario = simulate(SEED)
    names = {s.name for s in scenario.graph.services}
    snapshot = scenario.snapshot.model_copy(
        update={"signals": [*scenario.snapshot.signals, _series("unmeshed-db")]}
    )
    kept = in_neighbourhood(snapshot, [ROOT_CAUSE])
    services = {s.service for s in kept.signals}
    assert "unmeshed-db" in services
    assert {ROOT_CAUSE, "station-service", "postgres-delivery", ENTRY} <= services
    assert not {"billing-service", "auth-service"} & services  # beside it, not below it
    assert services - {"unmeshed-db"} < names


def test_a_replayed_snapshot_names_the_requested_service_instead_of_its_alert() -> None:
    snapshot = simulate(SEED).snapshot.model_copy(update={"ground_truth": None})
    with_alert = analyze(snapshot)
    replay = as_request(snapshot, [ENTRY], timedelta(minutes=10))
    assert replay.alert is not None and replay.alert.alert_name == "RcaRequest"
    assert replay.alert.services() == [ENTRY]
    assert snapshot.alert is not None and replay.alert.starts_at == snapshot.alert.starts_at
    assert replay.meta.window.incident_start == with_alert.window.incident_start
    analysis = analyze(replay, trigger=Trigger(kind="cli", services=[ENTRY]))
    assert analysis.candidates[0].service == ROOT_CAUSE


# --- the command line ---------------------------------------------------------------------


def _rca(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_rca_analyze_service_replays_a_snapshot_as_a_request(tmp_path: Path) -> None:
    snapshot = simulate(SEED).snapshot.model_copy(update={"ground_truth": None})
    assert snapshot.alert is not None
    path = write_snapshot(snapshot, tmp_path / "s")
    result = _rca("analyze", str(path), "--service", ENTRY, "--json")
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.output)
    trigger = analysis["trigger"]
    assert (trigger["kind"], trigger["services"], trigger["alert_name"]) == ("cli", [ENTRY], None)
    assert datetime.fromisoformat(trigger["since"]) == snapshot.alert.starts_at  # recorded
    assert analysis["candidates"][0]["service"] == ROOT_CAUSE
    assert analysis["window"]["step_s"] == 10


def test_rca_analyze_service_errors_say_what_to_give(tmp_path: Path) -> None:
    path = write_snapshot(simulate(SEED).snapshot, tmp_path / "s")
    unknown = _rca("analyze", str(path), "--service", "storefrnt")
    assert unknown.exit_code == 2
    assert "--service storefrnt: not in this snapshot; it has " in unknown.output
    both = _rca("analyze", "--alert", str(path / "alert.json"), "--service", ENTRY)
    assert "--alert and --service both say where it hurts" in both.output
    since = _rca("analyze", str(path), "--service", ENTRY, "--since", "2024-11-07T10:00:00")
    assert "--since goes with --service on live sources" in since.output


# --- through the service and a real Prometheus -------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Scenario, str]]:
    require_binaries("promtool", "prometheus")
    root = tmp_path_factory.mktemp("scope")
    scenario = simulate(SEED)
    server: PrometheusServer = start_prometheus(
        backfill_scenarios([scenario], root / "tsdb"), root / "server"
    )
    try:
        yield scenario, server.url
    finally:
        server.stop()


def _finished(client: TestClient, analysis_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.get(f"/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN)).json()
        return body if body["status"] in ("done", "failed") else None

    body: dict[str, Any] = wait_for(done, 90, f"analysis {analysis_id}")
    assert body["status"] == "done", body["error"]
    return body


def _client(tmp_path: Path, url: str, **overrides: Any) -> TestClient:
    settings = settings_for(tmp_path, prometheus_url=url, snapshot_dir=None, **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False)


def _points(window: dict[str, Any]) -> float:
    start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
    return (end - start).total_seconds() / window["step_s"]


@pytest.mark.integration
def test_a_request_naming_the_front_end_finds_the_downstream_root_cause(
    served: tuple[Scenario, str], tmp_path: Path
) -> None:
    """Before: only storefront's series were collected, so storefront was the root cause."""
    scenario, url = served
    alert = scenario.snapshot.alert
    assert alert is not None
    end = datetime.fromtimestamp(scenario.telemetry.timeline.end, UTC)
    body = {"services": [ENTRY], "start": alert.starts_at.isoformat(), "end": end.isoformat()}
    with _client(tmp_path, url) as client:
        created = client.post("/v1/analyses", json=body, headers=auth(WRITE_TOKEN))
        assert created.status_code == 202, created.text
        result = _finished(client, created.json()["id"])
        report = client.get(result["report_url"], headers=auth(READ_TOKEN)).text
    analysis = result["analysis"]
    assert analysis["trigger"]["services"] == [ENTRY]
    assert analysis["candidates"][0]["service"] == ROOT_CAUSE
    assert analysis["candidates"][0]["fault_type"] == "memory_leak"
    assert {c["service"] for c in analysis["candidates"]} - {ENTRY}, "more than the named one"
    assert analysis["window"]["step_s"] == 10  # the scrape interval, not coarser
    assert _points(analysis["window"]) >= 30
    assert "step 10 s" in report


@pytest.mark.integration
def test_an_alert_firing_since_2024_gets_a_bounded_window_and_a_note(
    served: tuple[Scenario, str], tmp_path: Path
) -> None:
    """Before: 2024-11-07 -> now, at a step of most of a day."""
    scenario, url = served
    assert scenario.snapshot.alert is not None
    payload = json.loads(scenario.snapshot.alert.model_dump_json())
    with _client(tmp_path, url) as client:
        accepted = client.post("/v1/alertmanager", json=payload, headers=auth(WEBHOOK_TOKEN))
        assert accepted.status_code == 202, accepted.text
        result = _finished(client, accepted.json()["analysis_id"])
        report = client.get(result["report_url"], headers=auth(READ_TOKEN)).text
    analysis = result["analysis"]
    window = analysis["window"]
    start, end = (datetime.fromisoformat(window[k]) for k in ("start", "end"))
    assert end - start <= timedelta(hours=8)
    assert start.year == end.year == 2024
    assert 10 <= window["step_s"] <= 60 and _points(window) >= 30  # 8 h in <= 1100 points
    assert any("window cut to 6 h from 2024-11-07" in note for note in analysis["notes"])
    assert analysis["candidates"][0]["service"] == ROOT_CAUSE
    assert "window cut to 6 h" in report and f"step {window['step_s']:g} s" in report


@pytest.mark.integration
def test_an_alert_older_than_the_data_kept_says_so_instead_of_analysing_it(
    served: tuple[Scenario, str], tmp_path: Path
) -> None:
    scenario, url = served
    assert scenario.snapshot.alert is not None
    payload = json.loads(scenario.snapshot.alert.model_dump_json())
    with _client(tmp_path, url, window={"max_age_days": 30}) as client:
        accepted = client.post("/v1/alertmanager", json=payload, headers=auth(WEBHOOK_TOKEN))
        result = _finished(client, accepted.json()["analysis_id"])
    analysis = result["analysis"]
    (note,) = [n for n in analysis["notes"] if "before the oldest data kept" in n]
    assert "started 2024-11-07" in note and "window.max_age_days 30" in note
    end = datetime.fromisoformat(analysis["window"]["end"])
    assert end > datetime.now(UTC) - timedelta(hours=1)  # the recent window, not 2024


@pytest.mark.integration
def test_rca_analyze_service_live_finds_the_downstream_root_cause(
    served: tuple[Scenario, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario, url = served
    assert scenario.snapshot.alert is not None
    monkeypatch.setenv("RCA_PROMETHEUS_URL", url)
    since = f"{scenario.snapshot.alert.starts_at:%Y-%m-%dT%H:%M:%S}Z"
    end = f"{datetime.fromtimestamp(scenario.telemetry.timeline.end, UTC):%Y-%m-%dT%H:%M:%S}Z"
    result = _rca("analyze", "--service", ENTRY, "--since", since, "--end", end, "--json")
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.output)
    assert analysis["candidates"][0]["service"] == ROOT_CAUSE
    assert analysis["trigger"]["services"] == [ENTRY]
    recorded = _rca("record", "--service", ENTRY, "--since", since, "--end", end,
                    "--out", str(tmp_path / "rec"))  # fmt: skip
    assert recorded.exit_code == 0, recorded.output
    replay = json.loads(_rca("analyze", str(tmp_path / "rec"), "--json").output)
    assert replay["candidates"][0]["service"] == ROOT_CAUSE  # the request travels with it
