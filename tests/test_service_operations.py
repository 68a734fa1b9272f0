"""Operating ``rca serve``: JSON logs with request and analysis ids, probes at DEBUG, the
request id header, readiness that a stalled source cannot block, and ``/metrics`` as the
real ``promtool check metrics`` judges it."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_server import SilentServer
from service_support import (
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    Served,
    auth,
    notification,
    serve_env,
    settings_for,
    snapshot_dir,
    unavailable,
    wait_for,
)

from agent.service import logs
from agent.service.app import create_app

ROOT = Path(__file__).resolve().parents[1]

# --- log lines -------------------------------------------------------------------------------


def _record(name: str, message: str, *args: object, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def _formatted(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    logs.ContextFilter().filter(record)
    return formatter.format(record)


def test_a_json_line_carries_time_level_logger_message_and_the_bound_ids() -> None:
    with logs.bound(request_id="req-1", analysis_id="an-42", group_key='{}:{alertname="X"}'):
        line = _formatted(logs.JsonFormatter(), _record("rca.jobs", "job %s failed", "an-42"))
    entry = json.loads(line)
    assert entry.pop("time").endswith("Z")
    assert entry == {
        "level": "INFO",
        "logger": "rca.jobs",
        "message": "job an-42 failed",
        "request_id": "req-1",
        "analysis_id": "an-42",
        "group_key": '{}:{alertname="X"}',
    }
    # Outside the block nothing is bound any more.
    assert "analysis_id" not in json.loads(_formatted(logs.JsonFormatter(), _record("x", "m")))


def test_a_text_line_shows_the_ids_after_the_message() -> None:
    with logs.bound(analysis_id="an-42"):
        line = _formatted(logs.TextFormatter(), _record("rca.jobs", "stored"))
    assert line.endswith(" INFO rca.jobs stored [analysis_id=an-42]")


def test_a_forged_request_id_is_replaced_and_a_sane_one_kept() -> None:
    assert logs.request_id_of([(b"x-request-id", b"trace-7f3a:01")]) == "trace-7f3a:01"
    forged = logs.request_id_of([(b"x-request-id", b'a"\n{"level": "ERROR"}')])
    assert len(forged) == 32 and forged.isalnum()
    assert logs.request_id_of([]) != logs.request_id_of([])


def test_probe_access_lines_are_debug() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    access = logging.getLogger("uvicorn.access")
    saved = (access.level, access.filters[:], access.handlers[:], access.propagate)
    access.setLevel(logging.INFO)
    access.addFilter(logs.ProbeAccessFilter())
    access.handlers, access.propagate = [handler], False
    root_level = logging.getLogger().level
    try:
        logging.getLogger().setLevel(logging.INFO)
        for path in ("/healthz", "/readyz?verbose", "/metrics", "/v1/analyses"):
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", path, "1.1", 200)
        logging.getLogger().setLevel(logging.DEBUG)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/healthz", "1.1", 200)
    finally:
        logging.getLogger().setLevel(root_level)
        access.level, access.filters, access.handlers, access.propagate = saved
    lines = stream.getvalue().splitlines()
    assert lines == [
        '127.0.0.1:1 - "GET /v1/analyses HTTP/1.1" 200',
        '127.0.0.1:1 - "GET /healthz HTTP/1.1" 200',
    ]


# --- readiness and the background source checks ---------------------------------------------


@pytest.fixture
def stalled() -> Iterator[SilentServer]:
    server = SilentServer()
    yield server
    server.close()


def test_a_stalled_prometheus_leaves_readyz_ready_and_fast(
    tmp_path: Path, stalled: SilentServer
) -> None:
    settings = settings_for(
        tmp_path,
        prometheus_url=stalled.url,
        service={"source_check_timeout_s": 0.5, "source_check_interval_s": 1},
    )
    with TestClient(create_app(settings)) as client:
        for _ in range(3):  # before, while and after the first check hangs on the socket
            began = time.perf_counter()
            ready = client.get("/readyz")
            assert time.perf_counter() - began < 1.0
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            time.sleep(0.3)
        checked = wait_for(
            lambda: client.get("/readyz?verbose").json()["checks"].get("prometheus"),
            5,
            "the first prometheus check",
        )
        assert checked["up"] is False
        assert checked["error"] == "no answer within 0.5 s"
        assert 0.4 < checked["latency_s"] < 1.0
        ready = client.get("/readyz").json()
        assert ready["sources"] == {"prometheus": False, "snapshot_dir": True}
        assert "checks" not in ready
        metrics = client.get("/metrics").text
    assert 'rca_source_up{source="prometheus"} 0.0' in metrics
    assert 'rca_source_up{source="snapshot_dir"} 1.0' in metrics


def test_readyz_rejects_an_unknown_query_but_takes_verbose(tmp_path: Path) -> None:
    with TestClient(create_app(settings_for(tmp_path))) as client:
        assert client.get("/readyz?verbos").status_code == 422
        wait_for(lambda: client.get("/readyz?verbose=1").json().get("checks"), 5, "a check")
        assert "checks" not in client.get("/readyz?verbose=false").json()


# --- metrics in process ----------------------------------------------------------------------


def test_requests_are_counted_by_route_template_even_when_refused_before_routing(
    tmp_path: Path,
) -> None:
    settings = settings_for(tmp_path)
    with TestClient(create_app(settings)) as client:
        client.get("/v1/analyses/an-one", headers=auth(WRITE_TOKEN))
        client.get("/v1/analyses/an-two", headers=auth(WRITE_TOKEN))
        client.get("/no/such/path")
        too_big = client.post("/v1/alertmanager", content=b"x" * 2_000_000)
        assert too_big.status_code == 413
        text = client.get("/metrics").text
    route = 'method="GET",route="/v1/analyses/{analysis_id}",status="404"'
    assert f"rca_http_requests_total{{{route}}} 2.0" in text
    assert f"rca_http_request_duration_seconds_count{{{route}}} 2.0" in text
    assert 'rca_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'rca_http_requests_total{method="POST",route="/v1/alertmanager",status="413"} 1.0' in text
    )


def test_counters_start_at_zero_and_the_queue_reports_each_state(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, service={"workers": 1, "job_delay_s": 3})
    with TestClient(create_app(settings)) as client:
        for group in ("a", "b"):
            sent = client.post(
                "/v1/alertmanager", json=notification(group=group), headers=auth(WEBHOOK_TOKEN)
            )
            assert sent.status_code == 202

        def one_running() -> str | None:
            text = client.get("/metrics").text
            return text if 'rca_queue_depth{state="running"} 1.0' in text else None

        text = wait_for(one_running, 10, "one running job")
    assert 'rca_queue_depth{state="pending"} 1.0' in text
    assert 'rca_analyses_total{status="failed",trigger="alert"} 0.0' in text
    assert 'rca_analyses_total{status="done",trigger="api"} 0.0' in text
    assert 'rca_summarizer_fallbacks_total{backend="extractive"} 0.0' in text
    assert 'rca_webhook_requests_total{result="unauthorized"} 0.0' in text
    assert 'rca_slack_posts_total{result="failed"} 0.0' in text
    assert 'rca_build_info{version="' in text
    assert "process_resident_memory_bytes" in text and "python_info{" in text


# --- a live rca serve: its log lines and its /metrics ----------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    tmp = tmp_path_factory.mktemp("operations")
    snapshot_dir(tmp)
    log = tmp / "serve.log"
    agent = Served(serve_env(tmp, RCA_LOG_FORMAT="json", RCA_LOG_LEVEL="INFO"), log)
    yield agent, log
    agent.stop()


def _json_lines(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


@pytest.mark.integration
def test_rca_serve_logs_json_with_request_and_analysis_ids(served: tuple[Served, Path]) -> None:
    agent, log = served
    for _ in range(3):
        assert httpx.get(agent.url + "/healthz").status_code == 200
    sent = httpx.post(
        agent.url + "/v1/alertmanager",
        json=notification(group="logs"),
        headers={**auth(WEBHOOK_TOKEN), "X-Request-ID": "am-retry-0042"},
    )
    assert sent.status_code == 202 and sent.headers["x-request-id"] == "am-retry-0042"
    analysis_id = sent.json()["analysis_id"]
    stored = wait_for(
        lambda: [
            e
            for e in _json_lines(log)
            if e.get("analysis_id") == analysis_id and e["logger"] == "rca.jobs"
        ],
        30,
        "the analysis' log line",
    )
    assert str(stored[0]["message"]).startswith("analysis stored in")
    assert stored[0]["group_key"] == '{}:{alertname="logs"}'
    lines = _json_lines(log)
    assert lines, log.read_text()
    assert all({"time", "level", "logger", "message"} <= set(e) for e in lines)
    access = [e for e in lines if e["logger"] == "uvicorn.access"]
    assert [e["path"] for e in access if e.get("request_id") == "am-retry-0042"] == [
        "/v1/alertmanager"
    ]
    assert not [e for e in access if e["path"] == "/healthz"]  # probes: DEBUG, not shown


@pytest.mark.integration
def test_promtool_accepts_a_live_metrics_scrape(served: tuple[Served, Path]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool not installed (make servers)")
    assert promtool is not None
    agent, _ = served
    httpx.get(agent.url + "/v1/analyses/an-none", headers=auth(WRITE_TOKEN))
    scrape = httpx.get(agent.url + "/metrics")
    assert scrape.status_code == 200
    check = subprocess.run(
        [promtool, "check", "metrics"], input=scrape.text, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    families = {line.split()[2] for line in scrape.text.splitlines() if line.startswith("# TYPE ")}
    assert {
        "process_cpu_seconds_total",
        "python_info",
        "rca_build_info",
        "rca_http_requests_total",
        "rca_http_request_duration_seconds",
        "rca_analysis_duration_seconds",
        "rca_analysis_stage_duration_seconds",
        "rca_queue_depth",
        "rca_analyses_total",
    } <= families
    documented = (ROOT / "docs" / "service.md").read_text()
    ours = {f for f in families if f.startswith("rca_") and not f.endswith("_created")}
    missing = sorted(f for f in ours if f"`{f}`" not in documented)
    assert missing == [], "document these in docs/service.md (Metrics)"
