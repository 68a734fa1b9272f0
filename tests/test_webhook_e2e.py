"""End to end: a Prometheus rule fires on a scraped metric, the real Alertmanager posts to
the running service with bearer auth, the analysis is stored and served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from alertmanager_server import ALERT_NAME, alerting_stack
from service_support import READ_TOKEN, WEBHOOK_TOKEN, LiveServer, auth, settings_for, wait_for

from agent.service.app import create_app

pytestmark = pytest.mark.integration


def test_prometheus_alert_through_alertmanager_is_analyzed(tmp_path: Path) -> None:
    server = LiveServer(create_app(settings_for(tmp_path)))
    try:
        with alerting_stack(tmp_path, server.url, WEBHOOK_TOKEN):

            def analyzed() -> dict[str, Any] | None:
                page = httpx.get(
                    f"{server.url}/v1/analyses",
                    params={"service": "frontend", "status": "done"},
                    headers=auth(READ_TOKEN),
                ).json()
                return next(
                    (i for i in page["items"] if i["trigger"]["alert_name"] == ALERT_NAME), None
                )

            item = wait_for(analyzed, 90, "Alertmanager's notification to be analyzed")
        body = httpx.get(f"{server.url}/v1/analyses/{item['id']}", headers=auth(READ_TOKEN)).json()
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        server.stop()
    analysis = body["analysis"]
    assert analysis["trigger"]["kind"] == "alert"
    assert analysis["trigger"]["group_key"]
    assert analysis["trigger"]["services"] == ["frontend"]
    assert analysis["candidates"]
    assert 'rca_webhook_requests_total{result="new"} 1.0' in metrics
