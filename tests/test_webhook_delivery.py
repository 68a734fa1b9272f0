"""Delivery guarantees of the webhook over real HTTP: concurrent duplicates, a burst, and a
database that fails mid-transaction."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from service_support import (
    WEBHOOK_TOKEN,
    LiveServer,
    auth,
    notification,
    settings_for,
    wait_for,
)
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from agent.service.app import create_app
from agent.store.tables import AnalysisRow, Incident

WEBHOOK = "/v1/alertmanager"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, Any]]:
    app = create_app(settings_for(tmp_path))
    server = LiveServer(app)
    yield server, app.state.rca
    server.stop()


def count(state: Any, query: Any) -> int:
    with state.sessions.begin() as session:
        return int(session.scalar(query) or 0)


def deliver(url: str, payload: dict[str, Any]) -> int:
    """Post like Alertmanager does: retry on 5xx (and 429) until accepted."""
    with httpx.Client(base_url=url, headers=auth(WEBHOOK_TOKEN), timeout=30) as client:
        for _ in range(20):
            status = client.post(WEBHOOK, json=payload).status_code
            if status < 500 and status != 429:
                return status
    return status


def test_concurrent_duplicates_give_one_analysis(served: tuple[LiveServer, Any]) -> None:
    server, state = served
    payload = notification(group="dup", fingerprint="same")
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda _: deliver(server.url, payload), range(20)))
    assert statuses == [202] * 20
    assert count(state, select(func.count()).select_from(AnalysisRow)) == 1
    assert count(state, select(Incident.notifications)) == 20


def test_burst_of_500_all_stored_and_analyzed(served: tuple[LiveServer, Any]) -> None:
    server, state = served
    payloads = [notification(group=f"burst-{i}", fingerprint=f"fp-{i}") for i in range(500)]
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda p: deliver(server.url, p), payloads))
    assert statuses == [202] * 500
    assert count(state, select(func.count()).select_from(Incident)) == 500

    def all_done() -> bool:
        done = select(func.count()).where(AnalysisRow.status == "done")
        return count(state, done) == 500

    wait_for(all_done, 240, "500 analyses")
    assert count(state, select(func.max(AnalysisRow.attempts))) == 1


def test_database_failure_mid_write_is_503_and_nothing_half_written(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path))
    state = app.state.rca
    from fastapi.testclient import TestClient

    def fail_job_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ANALYSES"):
            raise OperationalError(statement, {}, Exception("server closed the connection"))

    with TestClient(app, raise_server_exceptions=False) as client:
        event.listen(state.engine, "before_cursor_execute", fail_job_insert)
        response = client.post(WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN))
        event.remove(state.engine, "before_cursor_execute", fail_job_insert)
        assert response.status_code == 503
        assert response.headers["retry-after"]
        assert response.json()["error"]["code"] == "database_unavailable"
        assert count(state, select(func.count()).select_from(Incident)) == 0
        retried = client.post(WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN))
        assert retried.status_code == 202
        assert retried.json()["outcome"] == "new"
        metrics = client.get("/metrics").text
    assert 'rca_webhook_requests_total{result="unavailable"} 1.0' in metrics


@pytest.mark.integration
def test_postgres_down_is_503_then_delivery_succeeds(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from fastapi.testclient import TestClient
    from service_support import PG_ADMIN, postgres_database

    with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")

        def allow(flag: bool) -> None:
            with admin.connect() as connection:
                connection.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {flag}'))
                if not flag:
                    connection.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name"
                        ),
                        {"name": name},
                    )

        app = create_app(settings_for(tmp_path, database_url=url))
        state = app.state.rca
        try:
            with TestClient(app, raise_server_exceptions=False) as client:
                allow(False)
                down = client.post(WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN))
                ready = client.get("/readyz")
                allow(True)
                up = client.post(WEBHOOK, json=notification(), headers=auth(WEBHOOK_TOKEN))
                assert count(state, select(func.count()).select_from(Incident)) == 1
        finally:
            allow(True)
            admin.dispose()
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "database_unavailable"
    assert ready.status_code == 503
    assert ready.json()["database"] is False
    assert up.status_code == 202
    assert up.json()["outcome"] == "new"
