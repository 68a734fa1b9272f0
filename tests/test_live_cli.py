"""The live commands of the CLI: ``analyze --alert``, ``record``, ``check-sources`` and
``simulate --load-prometheus/--load-elasticsearch``, including the newcomer's path from a
simulated incident loaded into real servers to an analysis of it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from es_double import EsDouble, running
from prometheus_server import (
    StubPrometheus,
    closed_port_url,
    require_binaries,
    start_prometheus,
)

from agent.cli import cli
from agent.cli_sources import SIMULATED_LOG_INDEX


@pytest.fixture(autouse=True)
def no_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RCA_PROMETHEUS_URL", "RCA_ELASTICSEARCH_URL", "RCA_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def _rca(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def _alert(tmp_path: Path) -> Path:
    path = tmp_path / "alert.json"
    path.write_text(
        json.dumps(
            {
                "version": "4",
                "groupKey": '{}:{alertname="HighLatency"}',
                "status": "firing",
                "receiver": "team",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "HighLatency", "service": "checkout"},
                        "startsAt": "2024-05-14T10:40:00Z",
                    }
                ],
            }
        )
    )
    return path


def test_analyze_needs_exactly_one_of_a_snapshot_or_an_alert(tmp_path: Path) -> None:
    for args in ([], [str(tmp_path), "--alert", str(_alert(tmp_path))]):
        result = _rca("analyze", *args)
        assert result.exit_code == 2
        assert result.output.strip() == (
            "rca: error: give either SNAPSHOT_DIR or --alert FILE (exactly one)"
        )


def test_a_live_analysis_without_a_source_says_what_to_set(tmp_path: Path) -> None:
    result = _rca("analyze", "--alert", str(_alert(tmp_path)))
    assert result.exit_code == 2
    assert result.output.strip() == (
        "rca: error: --alert needs a live source: "
        "set RCA_PROMETHEUS_URL and/or RCA_ELASTICSEARCH_URL"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ('{"version": "4"}', "is not an Alertmanager webhook payload: groupKey: Field required"),
    ],
)
def test_a_bad_alert_file_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, expected: str
) -> None:
    monkeypatch.setenv("RCA_PROMETHEUS_URL", closed_port_url())
    alert = tmp_path / "alert.json"
    alert.write_text(content)
    result = _rca("record", "--alert", str(alert), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.startswith(f"rca: error: alert file {alert} {expected}")
    assert len(result.output.strip().splitlines()) == 1


def test_a_live_analysis_with_prometheus_down_fails_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = closed_port_url()
    monkeypatch.setenv("RCA_PROMETHEUS_URL", url)
    monkeypatch.setenv("RCA_PROMETHEUS__RETRIES", "0")
    result = _rca("analyze", "--alert", str(_alert(tmp_path)))
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "rca: error: collect: no source returned data for the window "
        f"(prometheus: cannot connect to {url}: connection refused)"
    )


def test_check_sources_without_a_source_is_a_config_error() -> None:
    result = _rca("check-sources")
    assert result.exit_code == 2
    assert "no source configured" in result.output


def test_check_sources_fails_when_prometheus_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = closed_port_url()
    monkeypatch.setenv("RCA_PROMETHEUS_URL", url)
    monkeypatch.setenv("RCA_PROMETHEUS__RETRIES", "0")
    result = _rca("check-sources")
    assert result.exit_code == 1
    assert f"prometheus {url}: FAILED: cannot connect" in result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith(f"rca: error: check-sources: prometheus: cannot connect to {url}")
    )


def test_check_sources_names_rejected_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = StubPrometheus(401, {"status": "error", "error": "Unauthorized"})
    try:
        monkeypatch.setenv("RCA_PROMETHEUS_URL", stub.url)
        monkeypatch.setenv("RCA_PROMETHEUS__BEARER_TOKEN", "wrong")
        result = _rca("check-sources")
    finally:
        stub.close()
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        f"rca: error: check-sources: prometheus: {stub.url} rejected the credentials (HTTP 401): "
        "check prometheus.bearer_token or prometheus.username/password"
    )
    assert stub.requests[0][1]["authorization"] == "Bearer wrong"


# --- the newcomer's path: simulate, load into real servers, analyze live ---------------------


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[Path, str, EsDouble]]:
    """``rca simulate --load-prometheus --load-elasticsearch``, then Prometheus started."""
    require_binaries("promtool", "prometheus")
    with running() as double:
        result = _rca(
            "simulate",
            "--seed",
            "145",
            "--out",
            str(tmp_path / "sim"),
            "--load-prometheus",
            str(tmp_path / "tsdb"),
            "--load-elasticsearch",
            double.url,
        )
        assert result.exit_code == 0, result.output
        assert f"into {double.url}/{SIMULATED_LOG_INDEX}" in result.output
        server = start_prometheus(tmp_path / "tsdb", tmp_path / "server")
        try:
            yield tmp_path / "sim", server.url, double
        finally:
            server.stop()
        assert double.errors == []


@pytest.mark.integration
def test_a_simulated_incident_loaded_into_servers_is_analysed_live(
    loaded: tuple[Path, str, EsDouble], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, prometheus_url, double = loaded
    monkeypatch.setenv("RCA_PROMETHEUS_URL", prometheus_url)
    monkeypatch.setenv("RCA_ELASTICSEARCH_URL", double.url)

    checked = _rca("check-sources")
    result = _rca("analyze", "--alert", str(sim / "alert.json"), "--json")

    assert checked.exit_code == 0, checked.output
    assert "log lines from" in checked.output
    assert result.exit_code == 0, result.output
    analysis = json.loads(result.output)
    assert analysis["source_failures"] == []
    sources = {e["source"] for e in analysis["evidence"]}
    assert sources == {"metric", "log"}
    offline = json.loads(_rca("analyze", str(sim), "--json").output)
    assert analysis["candidates"][0]["service"] == offline["candidates"][0]["service"]
