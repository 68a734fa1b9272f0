"""The service with incident memory on a real database, for the memory tests: start it on
SQLite or the local PostgreSQL, get an alert analysed, and ask for its similar past ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    analysis_done,
    auth,
    notification,
    postgres_database,
    settings_for,
)

from agent.service.app import create_app

WEBHOOK = "/v1/alertmanager"


@contextmanager
def memory_service(tmp_path: Path, backend: str, **overrides: Any) -> Iterator[TestClient]:
    """The service on ``backend`` (``sqlite`` or ``postgresql``), settings ``overrides``."""
    if backend == "postgresql":
        with postgres_database() as url:
            settings = settings_for(tmp_path, database_url=url, **overrides)
            with TestClient(create_app(settings), raise_server_exceptions=False) as client:
                yield client
    else:
        settings = settings_for(tmp_path, **overrides)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client


def analysed(client: TestClient, group: str) -> dict[str, Any]:
    """Post an alert of ``group`` and return its analysis once done."""
    response = client.post(WEBHOOK, json=notification(group=group), headers=auth(WEBHOOK_TOKEN))
    assert response.status_code == 202, response.text
    return analysis_done(client, response.json()["analysis_id"])


def similar_items(client: TestClient, analysis_id: str) -> list[dict[str, Any]]:
    """``GET /v1/analyses/{id}/similar``'s items."""
    response = client.get(f"/v1/analyses/{analysis_id}/similar", headers=auth(READ_TOKEN))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
