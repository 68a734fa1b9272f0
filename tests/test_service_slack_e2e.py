"""End to end with real servers: the real Alertmanager notifies the running service, which
posts to the Slack Web API double; and a pending post survives a restart of ``rca serve``.

Alertmanager gets its alerts straight through its own API (``POST /api/v2/alerts``), as
Prometheus would send them, with a short ``repeat_interval`` so that it repeats the same
group's notification while the test watches.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alertmanager_server import ALERTMANAGER, alertmanager_config
from service_support import (
    CHANNEL,
    READ_TOKEN,
    WEBHOOK_TOKEN,
    LiveServer,
    Served,
    auth,
    free_port,
    notification,
    postgres_database,
    serve_env,
    slack_settings,
    snapshot_dir,
    texts,
    unavailable,
    wait_for,
)
from slack_double import TOKEN, SlackDouble

from agent.service.app import create_app

pytestmark = pytest.mark.integration
ALERT = {"alertname": "RcaSlackTest", "service": "frontend", "severity": "page"}


@contextmanager
def alertmanager(tmp_path: Path, service_url: str) -> Iterator[str]:
    """The real Alertmanager, repeating unchanged notifications every 2 s."""
    if shutil.which(ALERTMANAGER) is None:
        unavailable(f"{ALERTMANAGER} is not installed")
    port = free_port()
    config = tmp_path / "alertmanager.yml"
    webhook = f"{service_url}/v1/alertmanager"
    config.write_text(
        alertmanager_config(webhook, WEBHOOK_TOKEN).replace(
            "repeat_interval: 1h", "repeat_interval: 2s"
        )
    )
    with (tmp_path / "alertmanager.log").open("wb") as log:
        process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url + "/-/ready"), 30, "Alertmanager to be ready")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def send_alert(am_url: str, starts: datetime, ends: datetime) -> None:
    alert = {
        "labels": ALERT,
        "annotations": {"summary": "frontend is slow (a test alert)"},
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
    }
    response = httpx.post(f"{am_url}/api/v2/alerts", json=[alert], timeout=5)
    assert response.status_code == 200, response.text


def metric(url: str, name: str, labels: str = "") -> float:
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, httpx.get(url + "/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_alertmanager_notification_is_posted_once_and_resolved_in_place(
    tmp_path: Path,
) -> None:
    with SlackDouble() as api:
        server = LiveServer(create_app(slack_settings(tmp_path, api.api_url)))
        try:
            with alertmanager(tmp_path, server.url) as am_url:
                starts = datetime.now(UTC) - timedelta(minutes=1)
                send_alert(am_url, starts, starts + timedelta(hours=1))
                (message,) = wait_for(api.top_level, 60, "the incident post")
                wait_for(
                    lambda: metric(
                        server.url, "rca_webhook_requests_total", '{result="duplicate"}'
                    ),
                    30,
                    "Alertmanager to repeat the notification",
                )
                assert len(api.top_level()) == 1
                send_alert(am_url, starts, datetime.now(UTC) - timedelta(seconds=1))
                (update,) = api.wait_for("chat.update", 1, 30)
            page = httpx.get(
                f"{server.url}/v1/analyses", params={"status": "done"}, headers=auth(READ_TOKEN)
            ).json()
        finally:
            server.stop()
        top_posts = [c for c in api.calls("chat.postMessage") if "thread_ts" not in c.params]
    (item,) = page["items"]
    assert item["trigger"]["alert_name"] == "RcaSlackTest"
    assert f"*Root cause:* `{item['root_service']}`" in texts(message.blocks or [])
    assert len(top_posts) == 1
    assert update.params["ts"] == message.ts and update.params["channel"] == CHANNEL
    assert "✅ Resolved" in texts(update.params["blocks"])


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'rca.db'}"
        return
    with postgres_database() as url:
        yield url


def test_pending_post_is_delivered_after_a_restart(tmp_path: Path, database: str) -> None:
    snapshot_dir(tmp_path)
    port = free_port()  # Slack is down: nothing listens here until the double comes up
    env = serve_env(
        tmp_path,
        RCA_DATABASE_URL=database,
        RCA_SLACK_API_URL=f"http://127.0.0.1:{port}/api/",
        RCA_SLACK_BOT_TOKEN=TOKEN,
        RCA_SLACK__DEFAULT_CHANNEL=CHANNEL,
        RCA_SLACK__RETRIES="0",
        RCA_SLACK__OUTBOX_BACKOFF_S="0.2",
        RCA_SLACK__OUTBOX_MAX_BACKOFF_S="0.5",
    )
    first = Served(env, tmp_path / "serve-1.log")
    try:
        response = httpx.post(
            first.url + "/v1/alertmanager", json=notification(), headers=auth(WEBHOOK_TOKEN)
        )
        analysis_id = response.json()["analysis_id"]

        def analysis() -> dict[str, Any]:
            body: dict[str, Any] = httpx.get(
                f"{first.url}/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN)
            ).json()
            return body

        wait_for(lambda: analysis()["status"] == "done", 60, "the analysis")
        wait_for(
            lambda: metric(first.url, "rca_slack_posts_total", '{result="retry"}') >= 1,
            30,
            "a refused delivery",
        )
        assert metric(first.url, "rca_slack_pending_posts") == 1
    finally:
        first.stop()
    with SlackDouble(port=port) as api:
        second = Served(env, tmp_path / "serve-2.log")
        try:
            (message,) = wait_for(api.top_level, 30, "the post after the restart")
            wait_for(lambda: metric(second.url, "rca_slack_pending_posts") == 0, 15, "the outbox")
        finally:
            second.stop()
    assert len(api.top_level()) == 1
    assert message.metadata and message.metadata["event_payload"]["incident_key"]
