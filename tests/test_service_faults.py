"""The service under hostile input and failing dependencies (issue 19), over real HTTP.

The rule for every route: bad input is a 4xx that names what is wrong, never a 5xx; a 2xx
only once the work is stored; the service keeps serving the next request. The webhook runs
on SQLite and the local PostgreSQL; Slack is the Web API double driven by slack-sdk and
slack-bolt; stalled connections go to a real ``rca serve``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import (
    CHANNEL,
    READ_TOKEN,
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    LiveServer,
    Served,
    auth,
    free_port,
    notification,
    postgres_database,
    serve_env,
    settings_for,
    slack_settings,
    snapshot_dir,
    wait_for,
)
from slack_double import SIGNING_SECRET, SlackDouble, sign, slash_command
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from agent.service import jobs
from agent.service.app import create_app
from agent.slack import bot
from agent.slack.transport import EVENTS_PATH
from agent.store.tables import AnalysisRow, Incident

WEBHOOK = "/v1/alertmanager"
USER = "U0ALICE"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'rca.db'}"
        return
    with postgres_database() as url:
        yield url


@pytest.fixture
def served(tmp_path: Path, database: str) -> Iterator[tuple[LiveServer, Any]]:
    app = create_app(settings_for(tmp_path, database_url=database))
    server = LiveServer(app)
    yield server, app.state.rca
    server.stop()


def count(state: Any, query: Any) -> int:
    with state.sessions.begin() as session:
        return int(session.scalar(query) or 0)


def post_raw(url: str, body: str, token: str = WEBHOOK_TOKEN, path: str = WEBHOOK) -> Any:
    headers = {**auth(token), "Content-Type": "application/json"}
    return httpx.post(url + path, content=body.encode("utf-8", "surrogatepass"), headers=headers)


# --- defect 1: text no store can hold ------------------------------------------------------


def _with(raw_value: str, where: str) -> str:
    """The test notification as JSON text with ``raw_value`` (a JSON string literal, escapes
    and all) placed at ``where``: the service label, a label key, or an extra field."""
    payload = notification(group=f"hostile-{where}")
    payload["alerts"][0]["labels"]["service"] = "@VALUE@"
    payload["alerts"][0]["annotations"]["@KEY@"] = "x"
    payload["someFutureField"] = {"nested": ["@EXTRA@"]}
    text = json.dumps(payload)
    text = text.replace('"@KEY@"', raw_value if where == "key" else '"summary2"')
    text = text.replace('"@VALUE@"', raw_value if where == "value" else '"frontend"')
    return text.replace('"@EXTRA@"', raw_value if where == "extra" else '"ok"')


@pytest.mark.parametrize(
    "raw", ['"front\\ud800end"', '"\\udfff"'], ids=["lone-high-surrogate", "lone-low-surrogate"]
)
def test_a_lone_surrogate_anywhere_is_a_422_naming_the_field_on_both_stores(
    served: tuple[LiveServer, Any], raw: str
) -> None:
    server, state = served
    paths = {
        "value": "body.alerts.0.labels.service",
        "key": "body.alerts.0.annotations." + json.loads(raw),
        "extra": "body.someFutureField.nested.0",
    }
    for where, path in paths.items():
        response = post_raw(server.url, _with(raw, where))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert "lone UTF-16 surrogate" in error["message"]
        assert error["fields"][0]["path"] == path
    assert count(state, select(func.count()).select_from(Incident)) == 0
    # The service keeps serving: a clean notification right after is stored.
    ok = httpx.post(server.url + WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN))
    assert ok.status_code == 202, ok.text
    request = '{"services": ["frontend"], "question": "why\\ud800?"}'
    refused = post_raw(server.url, request, WRITE_TOKEN, "/v1/analyses")
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "body.question"


def test_nul_in_declared_text_is_a_422_and_kept_escaped_elsewhere_on_both_stores(
    served: tuple[LiveServer, Any],
) -> None:
    server, state = served
    for where, path in (
        ("value", "body.alerts.0.labels.service"),
        ("key", "body.alerts.0.annotations.a\x00b.[key]"),
    ):
        response = post_raw(server.url, _with('"a\\u0000b"', where))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert "NUL" in error["message"]
        assert error["fields"][0]["path"] == path
    request = '{"services": ["front\\u0000end"]}'
    refused = post_raw(server.url, request, WRITE_TOKEN, "/v1/analyses")
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "body.services.0"
    # A field Alertmanager may add one day is stored as sent, NUL and all (JSON-escaped).
    accepted = post_raw(server.url, _with('"a\\u0000b"', "extra"))
    assert accepted.status_code == 202, accepted.text
    with state.sessions.begin() as session:
        stored = session.scalar(select(Incident.payload))
    assert json.loads(stored)["someFutureField"] == {"nested": ["a\x00b"]}


def test_rtl_marks_and_100kb_label_values_are_stored_and_analysed(
    served: tuple[LiveServer, Any],
) -> None:
    server, state = served
    payload = notification(group="rtl", service="\u202efrontend\u200f" + "x" * 100_000)
    payload["alerts"][0]["annotations"]["description"] = "\u05e9\u05dc\u05d5\u05dd " * 20_000
    accepted = httpx.post(server.url + WEBHOOK, json=payload, headers=auth(WEBHOOK_TOKEN))
    assert accepted.status_code == 202, accepted.text
    analysis_id = accepted.json()["analysis_id"]

    def finished() -> str | None:
        found = httpx.get(f"{server.url}/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN))
        status: str = found.json()["status"]
        return status if status in ("done", "failed") else None

    assert wait_for(finished, 60, "the analysis") == "done"
    with state.sessions.begin() as session:
        stored = session.scalar(select(Incident.payload))
    assert (
        stored is not None
        and json.loads(stored)["alerts"][0]["labels"] == payload["alerts"][0]["labels"]
    )


# --- defects 2 and 3: /slack/events --------------------------------------------------------


@pytest.fixture
def slack_service(tmp_path: Path) -> Iterator[tuple[LiveServer, SlackDouble]]:
    with SlackDouble() as api:
        server = LiveServer(create_app(slack_settings(tmp_path, api.api_url)))
        yield server, api
        server.stop()


def _slack(server: LiveServer, body: bytes | str, headers: dict[str, Any]) -> Any:
    content = body.encode() if isinstance(body, str) else body
    return httpx.post(server.url + EVENTS_PATH, content=content, headers=headers, timeout=30)


def test_malformed_slack_requests_are_4xx_before_and_after_the_signature(
    slack_service: tuple[LiveServer, SlackDouble],
) -> None:
    server, api = slack_service
    now = str(int(time.time()))
    unsigned: list[tuple[str, dict[str, Any]]] = [
        ("%%%=&&\xff", {**FORM, "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=0"}),
        ("a=b", {**FORM, "X-Slack-Request-Timestamp": "1e9", "X-Slack-Signature": "v0=0"}),
        ("a=b", {**FORM, "X-Slack-Request-Timestamp": now}),
        ("a=b", {**FORM, "X-Slack-Request-Timestamp": "١٢٣".encode(), "X-Slack-Signature": "v0=0"}),
        ("a=b", {**FORM, "X-Slack-Request-Timestamp": now, "X-Slack-Signature": b"v0=\xff"}),
        ("{not json", {"Content-Type": "application/json"}),
    ]
    for body, headers in unsigned:
        response = _slack(server, body, headers)
        assert response.status_code == 401, (body, headers, response.text)
        assert "signed by Slack" in response.json()["error"]["message"]
    signed_but_broken = [
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"authorizations": 5, "enterprise": 7}', "application/json"),
        (b"payload=%7Bnot+json", FORM["Content-Type"]),
        ("text=caf\xe9".encode("latin-1"), FORM["Content-Type"]),  # not UTF-8
    ]
    for raw, kind in signed_but_broken:
        stamp = str(int(time.time()))
        digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + raw, hashlib.sha256)
        headers = {
            "Content-Type": kind,
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=" + digest.hexdigest(),
        }
        response = _slack(server, raw, headers)
        assert 400 <= response.status_code < 500, (raw, response.text)
        assert "malformed Slack request body" in response.json()["error"]["message"]
    body = slash_command("frontend last 30m", CHANNEL, USER)
    answered = _slack(server, body, {**FORM, **sign(body)})
    assert answered.status_code == 200 and "Analysing `frontend`" in answered.text
    assert api.calls("chat.postEphemeral") == []


def test_refused_slack_requests_log_one_short_line_without_the_body(
    slack_service: tuple[LiveServer, SlackDouble], caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = slack_service
    secret_text = "user-typed-secret-" + "x" * 100_000
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        body = "text=" + secret_text
        assert _slack(server, body, {**FORM, **sign("something else")}).status_code == 401
    logged = [r.getMessage() for r in caplog.records]
    assert all("user-typed-secret" not in line for line in logged)
    refusals = [line for line in logged if line.startswith("slack: refused")]
    assert len(refusals) == 1 and "does not match the body" in refusals[0]
    assert len(refusals[0]) < 300


# --- defect 4: stalled connections ---------------------------------------------------------


def test_stalled_connections_are_closed_and_the_webhook_keeps_answering(tmp_path: Path) -> None:
    snapshot_dir(tmp_path)
    server = Served(serve_env(tmp_path, RCA_SERVICE__READ_TIMEOUT_S="1"), tmp_path / "serve.log")
    stalled: list[socket.socket] = []
    try:
        head = b"POST /v1/alertmanager HTTP/1.1\r\nHost: rca\r\n"
        body = head + b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
        for index in range(40):
            connection = socket.create_connection(("127.0.0.1", server.port))
            connection.sendall(body if index % 2 else head)  # stalls in the body or the head
            stalled.append(connection)
        ok = httpx.post(server.url + WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN))
        assert ok.status_code == 202
        answers = []
        for connection in stalled:
            connection.settimeout(10)
            received = b""
            while chunk := connection.recv(65536):  # until the server closes it
                received += chunk
            answers.append(received.split(b"\r\n", 1)[0])
    finally:
        for connection in stalled:
            connection.close()
        server.stop()
    assert answers.count(b"HTTP/1.1 408 Request Timeout") == 20  # the stalled bodies
    assert answers.count(b"") == 20  # the stalled heads: closed without a word


# --- defect 5: /rca while Slack's Web API is down ------------------------------------------


def test_rca_while_slack_is_down_answers_and_the_analysis_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bot, "AUTH_TEST_RETRY_S", 0.2)  # ask auth.test again soon
    port = free_port()  # nothing listens: connection refused, as in a Slack outage
    server = LiveServer(create_app(slack_settings(tmp_path, f"http://127.0.0.1:{port}/api/")))
    try:
        body = slash_command("frontend last 30m", CHANNEL, USER)
        answer = _slack(server, body, {**FORM, **sign(body)})
        assert answer.status_code == 200, answer.text
        assert "Slack's API is unreachable" in answer.text
        (analysis_id,) = [w.strip("`.") for w in answer.text.split() if w.startswith("`an-")]

        def status() -> str | None:
            got = httpx.get(f"{server.url}/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN))
            value: str = got.json()["status"]
            return value if value in ("done", "failed") else None

        assert wait_for(status, 60, "the analysis") == "done"
        with SlackDouble(port=port) as api:  # Slack is back: /rca works as usual
            time.sleep(0.3)
            again = _slack(server, body, {**FORM, **sign(body)})
            assert "Analysing `frontend`" in again.text
            assert wait_for(api.top_level, 60, "the /rca answer")
    finally:
        server.stop()


# --- defect 7: attempts -------------------------------------------------------------------


def test_a_job_failing_every_attempt_stops_at_max_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def lost_database(*_: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(jobs, "run_job", lost_database)
    settings = settings_for(tmp_path, service={"retry_backoff_s": 0, "max_attempts": 3})
    server = LiveServer(create_app(settings))
    try:
        accepted = httpx.post(
            server.url + WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN)
        )
        analysis_id = accepted.json()["analysis_id"]

        def failed() -> dict[str, Any] | None:
            got = httpx.get(f"{server.url}/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN))
            body: dict[str, Any] = got.json()
            return body if body["status"] == "failed" else None

        job = wait_for(failed, 30, "the job to fail")
        time.sleep(0.5)  # a worker that claimed it again would show it now
        again = httpx.get(f"{server.url}/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN))
        metrics = httpx.get(server.url + "/metrics").text
    finally:
        server.stop()
    assert job["attempts"] == 3 and again.json()["attempts"] == 3
    assert job["error"].startswith("gave up after 3 attempts; last error: transient:")
    assert 'rca_analyses_total{status="failed",trigger="alert"} 1.0' in metrics


def test_claims_stop_at_max_attempts_on_both_stores(tmp_path: Path, database: str) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.orm import sessionmaker

    from agent.models import Trigger
    from agent.store import queue
    from agent.store.db import make_engine, migrate
    from agent.store.intake import NewJob, enqueue

    engine = make_engine(database)
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    now = datetime(2024, 5, 14, 10, tzinfo=UTC)
    job = NewJob("an-1", Trigger(kind="api", services=["a"]), now, now, ["a"])
    with sessions.begin() as session:
        enqueue(session, job, now)
    lease = timedelta(seconds=10)
    try:
        for attempt in range(1, 4):  # each claim's worker dies: the lease expires
            when = now + attempt * 2 * lease
            with sessions.begin() as session:
                claimed = queue.claim(session, f"w{attempt}", lease, when, max_attempts=3)
            assert claimed is not None and not claimed.exhausted
            assert claimed.attempts == attempt
        with sessions.begin() as session:
            last = queue.claim(session, "w4", lease, now + 8 * lease, max_attempts=3)
        assert last is not None and last.exhausted and last.attempts == 3
        with sessions.begin() as session:
            row = session.get_one(AnalysisRow, "an-1")
            assert (row.status, row.attempts, row.lease_owner) == ("failed", 3, None)
            assert row.error is not None and "each ended without a result" in row.error
            assert queue.claim(session, "w5", lease, now + 9 * lease, max_attempts=3) is None
    finally:
        engine.dispose()
