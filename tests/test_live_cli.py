"""The live commands of the CLI: ``analyze --alert``, ``record``, ``check-sources`` and
``simulate --load-prometheus/--load-elasticsearch``, including the newcomer's path from a
simulated incident loaded into real servers to an analysis of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from es_double import EsDouble, running
from prometheus_server import (
    EMPTY_MATRIX,
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
        assert result.output.startswith(
            "rca: error: give either SNAPSHOT_DIR or --alert FILE (exactly one)"
        )
        assert len(result.output.strip().splitlines()) == 1


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
    assert result.exit_code == 3  # a source is down: not 1, which means a bug
    assert result.output.strip().splitlines()[-1] == (
        "rca: error: collect: no source returned data for the window "
        f"(prometheus: cannot connect to {url}: connection refused)"
    )


def test_record_with_prometheus_down_exits_3_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCA_PROMETHEUS_URL", closed_port_url())
    monkeypatch.setenv("RCA_PROMETHEUS__RETRIES", "0")
    result = _rca("record", "--alert", str(_alert(tmp_path)), "--out", str(tmp_path / "out"))
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.count("connection refused") == 1
    assert not (tmp_path / "out").exists()


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
    assert result.exit_code == 3
    assert result.stderr == (
        f"rca: error: check-sources: prometheus: cannot connect to {url}: connection refused\n"
    )
    assert result.output.count("cannot connect") == 1  # said once, not on stdout as well


def test_check_sources_names_rejected_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    stub = StubPrometheus(401, {"status": "error", "error": "Unauthorized"})
    try:
        monkeypatch.setenv("RCA_PROMETHEUS_URL", stub.url)
        monkeypatch.setenv("RCA_PROMETHEUS__BEARER_TOKEN", "wrong")
        result = _rca("check-sources")
    finally:
        stub.close()
    assert result.exit_code == 3
    assert result.output.count("rejected the credentials") == 1
    assert result.output.strip().splitlines()[-1] == (
        f"rca: error: check-sources: prometheus: {stub.url} rejected the credentials (HTTP 401): "
        "check prometheus.bearer_token or prometheus.username/password"
    )
    assert stub.requests[0][1]["authorization"] == "Bearer wrong"


def test_check_sources_json_comes_before_the_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A script reads what each source holds from stdout and why it failed from the exit
    code: 4 here, every query answered with no series."""
    stub = StubPrometheus(200, EMPTY_MATRIX)
    try:
        monkeypatch.setenv("RCA_PROMETHEUS_URL", stub.url)
        result = _rca("check-sources", "--window", "30m", "--json")
        written = _rca("check-sources", "--json-file", str(tmp_path / "check.json"))
    finally:
        stub.close()
    assert result.exit_code == 4
    report = json.loads(result.stdout)
    assert report["window"] == "30m" and report["problems"] == []
    (prometheus,) = report["sources"]
    assert prometheus["source"] == "prometheus" and prometheus["url"] == stub.url
    assert prometheus["series"] == 0 and prometheus["error"] is None
    assert prometheus["signals"] and all(s["samples"] == 0 for s in prometheus["signals"])
    assert "nothing found in the window" in result.stderr
    assert written.exit_code == 4 and "prometheus" in written.stdout  # the table, as before
    assert json.loads((tmp_path / "check.json").read_text())["sources"][0]["series"] == 0


def test_check_sources_json_says_which_source_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    url = closed_port_url()
    monkeypatch.setenv("RCA_PROMETHEUS_URL", url)
    monkeypatch.setenv("RCA_PROMETHEUS__RETRIES", "0")
    result = _rca("check-sources", "--json")
    assert result.exit_code == 3
    (prometheus,) = json.loads(result.stdout)["sources"]
    assert "connection refused" in prometheus["error"]


@pytest.mark.parametrize(
    ("variable", "value", "fix"),
    [
        (
            "RCA_PROMETHEUS_URL",
            "127.0.0.1:9090",
            "add http:// (or https://), e.g. http://127.0.0.1:9090",
        ),
        ("RCA_ELASTICSEARCH_URL", "http://es-1:9200,es-2:9200", "e.g. http://es-2:9200"),
        ("RCA_ELASTICSEARCH_URL", "https://es-1", "has no port: add it, e.g. https://es-1:443"),
        ("RCA_PROMETHEUS__GRAPH_URL", "grafana:3000", "e.g. http://grafana:3000"),
        ("RCA_ELASTICSEARCH__KIBANA_URL", "kibana:5601", "e.g. http://kibana:5601"),
        ("RCA_SUMMARIZER__BASE_URL", "vllm:8000/v1", "e.g. http://vllm:8000/v1"),
        ("RCA_SLACK__PUBLIC_URL", "rca.example.com", "e.g. http://rca.example.com"),
        ("RCA_SLACK_API_URL", "slack.example/api", "e.g. http://slack.example/api"),
    ],
)
def test_a_url_without_scheme_is_refused_naming_the_setting_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fix: str
) -> None:
    """Before: ``RCA_PROMETHEUS_URL=127.0.0.1:9090`` failed at the first query with requests'
    "No host specified"."""
    monkeypatch.setenv(variable, value)
    result = _rca("check-sources")
    assert result.exit_code == 2
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and "No host specified" not in line
    assert line.startswith("rca: error: invalid setting ")
    assert f"({variable})" in line
    assert fix in line


def test_a_url_without_scheme_in_the_settings_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "rca.yaml"
    config.write_text("prometheus_url: prometheus.monitoring:9090\n")
    result = _rca("--config", str(config), "check-sources")
    assert result.exit_code == 2
    assert result.stderr == (
        "rca: error: invalid setting prometheus_url (RCA_PROMETHEUS_URL): "
        "'prometheus.monitoring:9090' has no scheme: add http:// (or https://), "
        "e.g. http://prometheus.monitoring:9090\n"
    )


def test_check_sources_rejects_a_malformed_window() -> None:
    result = _rca("check-sources", "--window", "ten minutes")
    assert result.exit_code == 2
    assert "is not a duration such as 30m, 2h or 1h30m" in result.stderr


# --- the newcomer's path: simulate, load into real servers, analyze live ---------------------


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, EsDouble]]:
    """``rca simulate --load-prometheus --load-elasticsearch``, then Prometheus started."""
    require_binaries("promtool", "prometheus")
    tmp_path = tmp_path_factory.mktemp("loaded")
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

    fired = json.loads((sim / "alert.json").read_text())["alerts"][0]["startsAt"]
    checked = _rca("check-sources", "--at", fired[:19] + "Z", "--window", "1h")
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


def _counts(output: str) -> dict[str, tuple[int, int]]:
    """Series and samples per catalog signal from check-sources' table."""
    rows = re.findall(r"^│ (\S+)\s+│ (\d+)\s+│ ([\d,]+)\s+│", output, re.MULTILINE)
    return {name: (int(series), int(samples.replace(",", ""))) for name, series, samples in rows}


@pytest.mark.integration
def test_check_sources_at_the_incident_finds_what_now_does_not(
    loaded: tuple[Path, str, EsDouble], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tutorial's own data: months old. At "now" every count is 0, and that must not
    read as success; at the alert's time the same servers show series, samples and lines."""
    sim, prometheus_url, double = loaded
    monkeypatch.setenv("RCA_PROMETHEUS_URL", prometheus_url)
    monkeypatch.setenv("RCA_ELASTICSEARCH_URL", double.url)
    fired = json.loads((sim / "alert.json").read_text())["alerts"][0]["startsAt"][:19] + "Z"

    now = _rca("check-sources")
    past = _rca("check-sources", "--at", fired, "--window", "30m")

    assert now.exit_code == 4, now.output
    assert set(_counts(now.stdout).values()) == {(0, 0)}
    assert "in the window: 0 log lines" in now.stdout
    error = now.stderr.strip()
    assert "\n" not in error
    assert error.startswith("rca: error: nothing found in the window ")
    assert "every source answered" in error
    assert "rca check-sources --at 20" in error and "--window 1h" in error  # copyable

    assert past.exit_code == 0, past.output
    assert past.stderr == ""
    assert "window 20" in past.stdout and "(30m)" in past.stdout
    counts = _counts(past.stdout)
    assert counts["container_memory_working_set_bytes"][0] > 0
    assert all(samples >= series for series, samples in counts.values())
    assert sum(samples for _, samples in counts.values()) > 1000
    lines = re.search(r"in the window: ([\d,]+) log lines from (\d+) services", past.stdout)
    assert lines is not None and int(lines.group(1).replace(",", "")) > 0
    assert int(lines.group(2)) > 1


@pytest.mark.integration
def test_a_live_analysis_of_a_window_without_data_exits_4(
    loaded: tuple[Path, str, EsDouble], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Servers up, nothing at that time: not "a source is down" (3), not a bug (1)."""
    _, prometheus_url, _ = loaded
    monkeypatch.setenv("RCA_PROMETHEUS_URL", prometheus_url)
    result = _rca("analyze", "--alert", str(_alert(tmp_path)))  # 2024-05-14: before the data
    assert result.exit_code == 4, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line
    assert line.startswith("rca: error: nothing found in the window 2024-05-14 ")
    assert "every source answered" in line
    assert "rca check-sources --at 2024-05-14T" in line  # where to look next, copyable


@pytest.mark.integration
def test_a_source_down_beside_one_that_answers_is_reported_once(
    loaded: tuple[Path, str, EsDouble], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus answers, Elasticsearch is down: the analysis runs (exit 0) and names the
    failure once: in the report, or on stderr when stdout is JSON."""
    sim, prometheus_url, _ = loaded
    monkeypatch.setenv("RCA_PROMETHEUS_URL", prometheus_url)
    monkeypatch.setenv("RCA_ELASTICSEARCH_URL", closed_port_url())
    monkeypatch.setenv("RCA_ELASTICSEARCH__RETRIES", "0")
    alert = str(sim / "alert.json")

    report = _rca("analyze", "--alert", alert)
    as_json = _rca("analyze", "--alert", alert, "--json")

    assert report.exit_code == 0, report.output
    assert report.output.count("cannot connect") == 1
    assert "Source failures" in report.stdout
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["source_failures"][0]["source"] == "elasticsearch"
    assert as_json.stderr.count("cannot connect") == 1
    assert as_json.stderr.startswith("rca: warning: elasticsearch: cannot connect")
