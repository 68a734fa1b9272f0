"""Slack inside the service: the outbox publisher, the bot at /slack/events, the metrics.

The app runs in-process (its workers and its Slack publisher are real threads); Slack is the
Web API double, driven by slack-sdk. Outages are scripted on the double (503 for every
method, a 429 longer than the in-process cap) or are a closed port that a double later
opens. The real Alertmanager and ``rca serve`` restarts are in test_service_slack_e2e.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from service_support import (
    CHANNEL,
    READ_TOKEN,
    WEBHOOK_TOKEN,
    analysis_done,
    auth,
    free_port,
    notification,
    postgres_database,
    settings_for,
    slack_settings,
    texts,
    wait_for,
)
from slack_double import (
    TEAM_ID,
    SlackDouble,
    app_mention,
    block_action,
    sign,
    slash_command,
    view_submission,
)
from sqlalchemy.orm import sessionmaker

from agent.errors import ConfigError
from agent.service.app import create_app
from agent.slack.blocks import ACTION_CORRECT, ACTION_WRONG
from agent.slack.transport import EVENTS_PATH
from agent.store import queries
from agent.store.db import make_engine, migrate
from agent.store.tables import Base, SlackPost

USER = "U0ALICE"
WEBHOOK = "/v1/alertmanager"
RETRY_AFTER_S = 3


@pytest.fixture
def api() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


def fire(client: TestClient, payload: dict[str, Any] | None = None, **changes: str) -> str:
    body = payload or notification(**changes)
    response = client.post(WEBHOOK, json=body, headers=auth(WEBHOOK_TOKEN))
    assert response.status_code == 202, response.text
    analysis_id: str = response.json()["analysis_id"] or ""
    return analysis_id


def metric(client: TestClient, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, client.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def posts(client: TestClient) -> list[SlackPost]:
    engine = client.app.state.rca.engine  # type: ignore[attr-defined]
    with sessionmaker(engine)() as session:
        return list(session.scalars(sa.select(SlackPost)))


# --- the schema ---------------------------------------------------------------------------


def test_migrations_build_exactly_the_declared_tables(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rca.db'}")
    migrate(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


# --- posting ------------------------------------------------------------------------------


def test_alert_is_posted_once_then_updated_in_place_when_resolved(
    tmp_path: Path, api: SlackDouble
) -> None:
    with TestClient(create_app(slack_settings(tmp_path, api.api_url))) as client:
        analysis_id = fire(client)
        body = analysis_done(client, analysis_id)
        (message,) = wait_for(api.top_level, 15, "the incident post")
        fire(client)  # Alertmanager repeats the notification: same episode
        client.post(WEBHOOK, json=notification(status="resolved"), headers=auth(WEBHOOK_TOKEN))
        (update,) = api.wait_for("chat.update", 1, 15)
        replies = api.wait_for("chat.postMessage", 2, 15)
        pending = metric(client, "rca_slack_pending_posts")
        posted = metric(client, "rca_slack_posts_total", '{result="posted"}')
        updated = metric(client, "rca_slack_posts_total", '{result="updated"}')
    root = body["analysis"]["root_cause"]["service"]
    assert message.channel == CHANNEL
    assert f"*Root cause:* `{root}`" in texts(message.blocks or [])
    assert message.metadata and message.metadata["event_payload"]["incident_key"]
    assert len(api.top_level()) == 1
    assert update.params["ts"] == message.ts and "Resolved" in texts(update.params["blocks"])
    assert "alert resolved" in replies[1].params["text"]
    assert replies[1].params["thread_ts"] == message.ts
    assert (pending, posted, updated) == (0, 1, 1)


@pytest.mark.parametrize("outage", ["503", "429-too-long"])
def test_slack_outage_keeps_the_analysis_served_and_the_post_pending(
    tmp_path: Path, api: SlackDouble, outage: str
) -> None:
    if outage == "503":
        api.set_down(True)
    else:  # longer than slack.max_retry_after_s (1 s): the attempt fails, the outbox retries
        api.fail("chat.postMessage", status=429, retry_after=str(RETRY_AFTER_S))
    with TestClient(create_app(slack_settings(tmp_path, api.api_url))) as client:
        analysis_id = fire(client)
        body = analysis_done(client, analysis_id)
        wait_for(
            lambda: metric(client, "rca_slack_posts_total", '{result="retry"}') >= 1,
            15,
            "a failed delivery",
        )
        assert api.top_level() == []
        assert body["analysis"]["root_cause"] is not None
        assert metric(client, "rca_slack_pending_posts") == 1
        (row,) = posts(client)
        assert row.state in ("pending", "posting") and row.last_error
        api.set_down(False)
        wait_for(lambda: metric(client, "rca_slack_pending_posts") == 0, 15, "the post")
        (row,) = posts(client)
    assert len(api.top_level()) == 1
    assert row.state == "done" and row.last_error is None
    if outage != "503":  # the outbox waited as long as Slack asked, not its own 0.2 s
        first, *_, delivered = api.calls("chat.postMessage")
        assert delivered.at - first.at >= RETRY_AFTER_S


def test_slack_unreachable_then_back_on_the_same_address(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet: connection refused
    settings = slack_settings(tmp_path, f"http://127.0.0.1:{port}/api/")
    with TestClient(create_app(settings)) as client:
        analysis_done(client, fire(client))
        wait_for(
            lambda: metric(client, "rca_slack_posts_total", '{result="retry"}') >= 1,
            15,
            "a refused delivery",
        )
        assert "cannot reach Slack" in (posts(client)[0].last_error or "")
        with SlackDouble(port=port) as api:
            wait_for(lambda: metric(client, "rca_slack_pending_posts") == 0, 15, "the post")
            assert len(api.top_level()) == 1


def test_unrouted_alerts_are_skipped_and_refused_posts_fail_without_retrying(
    tmp_path: Path, api: SlackDouble
) -> None:
    routes = [{"match": {"severity": "page"}, "channel": "C0NOWHERE"}]
    settings = slack_settings(tmp_path, api.api_url, default_channel=None, routes=routes)
    unrouted = notification(group="unrouted")
    unrouted["commonLabels"]["severity"] = "info"
    with TestClient(create_app(settings)) as client:
        analysis_done(client, fire(client, group="routed"))
        analysis_done(client, fire(client, unrouted))
        wait_for(lambda: metric(client, "rca_slack_pending_posts") == 0, 15, "both deliveries")
        states = sorted((r.state, r.last_error or "") for r in posts(client))
        failed = metric(client, "rca_slack_posts_total", '{result="failed"}')
    assert [s for s, _ in states] == ["failed", "skipped"]
    assert "channel_not_found" in states[0][1]
    assert failed == 1 and api.top_level() == []
    assert len(api.calls("chat.postMessage")) == 1  # not retried


# --- the bot, mounted in the service -------------------------------------------------------


def test_bot_is_mounted_and_checks_signatures(tmp_path: Path, api: SlackDouble) -> None:
    with TestClient(create_app(slack_settings(tmp_path, api.api_url))) as client:
        body = slash_command("frontend last 30m", CHANNEL, USER)
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        unsigned = client.post(EVENTS_PATH, content=body, headers=form)
        assert unsigned.status_code == 401
        signed = client.post(EVENTS_PATH, content=body, headers={**form, **sign(body)})
        assert signed.status_code == 200 and "Analysing `frontend`" in signed.text
        (message,) = wait_for(api.top_level, 60, "the /rca answer")
        listed = client.get("/v1/analyses", headers=auth(READ_TOKEN)).json()["items"]
    assert [i["trigger"]["kind"] for i in listed] == ["slack"]
    assert "*Root cause:*" in texts(message.blocks or [])


def test_feedback_buttons_and_mentions_on_an_incident_post(
    tmp_path: Path, api: SlackDouble
) -> None:
    settings = slack_settings(tmp_path, api.api_url)
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    def send(body: str, kind: str = "form") -> Any:
        headers = {"Content-Type": "application/json"} if kind == "json" else form
        return client.post(EVENTS_PATH, content=body, headers={**headers, **sign(body)})

    with TestClient(create_app(settings)) as client:
        analysis_id = fire(client)
        analysis_done(client, analysis_id)
        (message,) = wait_for(api.top_level, 15, "the incident post")
        assert send(block_action(ACTION_CORRECT, analysis_id, CHANNEL, message.ts, USER)).is_success
        send(block_action(ACTION_WRONG, analysis_id, CHANNEL, message.ts, USER))
        (opened,) = api.wait_for("views.open")
        view = opened.params["view"]
        values = {
            "actual_service": {"service": "checkout"},
            "actual_fault_type": {"fault_type": "bad_deploy"},
            "note": {"note": "deploy 4711"},
        }
        submitted = send(view_submission(view, values, USER))
        assert submitted.status_code == 200
        send(app_mention("<@U0RCABOT> what next?", CHANNEL, message.ts, USER), kind="json")
        replies = [
            c
            for c in api.wait_for("chat.postMessage", 2, 15)
            if c.params.get("thread_ts") == message.ts
        ]
        api_feedback = client.post(
            f"/v1/analyses/{analysis_id}/feedback",
            json={"verdict": "partially", "author": "api-user"},
            headers=auth("writer-token-1"),
        )
        assert api_feedback.status_code == 201
        engine = client.app.state.rca.engine  # type: ignore[attr-defined]
        with sessionmaker(engine).begin() as session:
            rated = list(queries.analyses_with_feedback(session))
    author = f"slack:{TEAM_ID}/{USER}"
    got = [(a.id, f.verdict, f.actual_service, f.actual_fault_type, f.author) for a, f in rated]
    root = rated[0][0].root_cause
    assert root is not None
    assert got == [
        (analysis_id, "correct", root.service, root.fault_type.value, author),
        (analysis_id, "wrong", "checkout", "bad_deploy", author),
        (analysis_id, "partially", None, None, "api-user"),
    ]
    assert rated[1][1].note == "deploy 4711"
    assert replies and "Next steps" in replies[0].params["text"]
    # ... and the fine-tuning dataset reads the Slack correction as the training target.
    from finetune.dataset import feedback_incidents, read_feedback

    url = engine.url.render_as_string(hide_password=False)
    truths = {
        (i.truth.service, i.truth.fault_type.value)
        for i in feedback_incidents(read_feedback(url))
        if not isinstance(i, str)
    }
    assert ("checkout", "bad_deploy") in truths


# --- replicas -----------------------------------------------------------------------------


@pytest.mark.integration
def test_two_replicas_on_postgresql_post_each_incident_once(
    tmp_path: Path, api: SlackDouble
) -> None:
    with postgres_database() as url:
        settings = slack_settings(tmp_path, api.api_url).model_copy(update={"database_url": url})
        with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
            ids = [fire(client, group=f"g{n}") for n, client in enumerate([one, two] * 3)]
            for analysis_id in ids:
                analysis_done(one, analysis_id)
            wait_for(lambda: len(api.top_level()) >= 6, 30, "six incident posts")
            wait_for(lambda: metric(one, "rca_slack_pending_posts") == 0, 15, "the outbox")
            keys = [m.metadata["event_payload"]["incident_key"] for m in api.top_level()]
    assert len(keys) == len(set(keys)) == 6


def test_socket_mode_connects_with_the_app_token_and_needs_no_events_route(
    tmp_path: Path, api: SlackDouble
) -> None:
    settings = slack_settings(tmp_path, api.api_url, app_token="xapp-1-test-app-token")
    settings = settings.model_copy(update={"slack_signing_secret": None})
    with TestClient(create_app(settings)) as client:
        (opened,) = api.wait_for("apps.connections.open", 1, 15)
        healthy = client.get("/healthz").status_code
        events = client.post(EVENTS_PATH, content="{}").status_code
    assert opened.headers["Authorization"] == "Bearer xapp-1-test-app-token"
    assert (healthy, events) == (200, 404)


def test_a_signing_secret_without_a_bot_token_is_refused(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, slack_signing_secret="a-secret-of-some-length")
    with pytest.raises(ConfigError, match="RCA_SLACK_BOT_TOKEN"):
        create_app(settings)
