"""``POST /v1/changes`` and ``GET /v1/changes`` through the real service, on SQLite and the
local PostgreSQL: stored once however often posted, bad input refused with the field and the
reason, unknown services flagged, nothing lost while the store is down, and the changes of a
window handed to the analysis."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from service_support import (
    MINIMAL,
    PG_ADMIN,
    READ_TOKEN,
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    LiveServer,
    auth,
    notification,
    postgres_database,
    settings_for,
    wait_for,
)
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from agent.models import Change, Trigger
from agent.service.app import create_app
from agent.service.runner import run_job, with_reported_changes
from agent.snapshot import load_snapshot
from agent.store.queue import ClaimedJob
from agent.store.tables import ChangeRow

NOW = datetime(2024, 5, 14, 10, 30, tzinfo=UTC)  # the minimal fixture's incident
CHANGES = "/v1/changes"
DEPLOY = {
    "service": "cartservice",
    "kind": "deploy",
    "at": "2024-05-14T10:15:00Z",
    "from_version": "v1.4.2",
    "to_version": "v1.4.3",
    "author": "github-actions",
    "link": "https://github.com/shop/cart/actions/runs/7",
    "id": "run-7",
}


def _client(tmp_path: Path, **overrides: Any) -> TestClient:
    app = create_app(settings_for(tmp_path, **overrides), clock=lambda: NOW)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "sqlite":
        with _client(tmp_path) as test_client:
            yield test_client
        return
    with postgres_database() as url, _client(tmp_path, database_url=url) as test_client:
        yield test_client


def post(client: TestClient, body: dict[str, Any], token: str = WRITE_TOKEN) -> httpx.Response:
    return client.post(CHANGES, json=body, headers=auth(token))


def rows(client: TestClient) -> int:
    state = client.app.state.rca  # type: ignore[attr-defined]
    with state.sessions.begin() as session:
        return int(session.scalar(select(func.count()).select_from(ChangeRow)))


def listed(client: TestClient, **query: str) -> dict[str, Any]:
    response = client.get(CHANGES, params=query, headers=auth(READ_TOKEN))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- stored once ---------------------------------------------------------------------------


def test_a_change_is_stored_once_however_often_posted(client: TestClient) -> None:
    first = post(client, DEPLOY)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["outcome"] == "new"
    assert body["change"] == {**DEPLOY, "namespace": None, "source": "api"}
    again = post(client, {**DEPLOY, "link": "https://ci/other"})  # a retry, a bit different
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert again.json()["change"]["link"] == DEPLOY["link"]  # the first report is kept
    assert rows(client) == 1
    (item,) = listed(client)["items"]
    assert item["change"]["id"] == "run-7" and item["received_at"].startswith("2024-05-14T10:30")


def test_without_an_id_service_version_and_time_identify_a_change(client: TestClient) -> None:
    bare = {k: v for k, v in DEPLOY.items() if k != "id"}
    assert post(client, bare).status_code == 201
    assert post(client, bare).status_code == 200
    assert post(client, {**bare, "at": "2024-05-14T10:16:00Z"}).status_code == 201
    assert post(client, {**bare, "to_version": "v1.4.4"}).status_code == 201
    # one CI run deploying two services reports two changes under one id
    assert post(client, {**DEPLOY, "service": "frontend"}).status_code == 201
    assert rows(client) == 4


def test_concurrent_repeats_store_one_change(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path), clock=lambda: NOW)
    server = LiveServer(app)
    try:
        with ThreadPoolExecutor(16) as pool:
            statuses = list(
                pool.map(
                    lambda _: (
                        httpx.post(
                            server.url + CHANGES, json=DEPLOY, headers=auth(WRITE_TOKEN), timeout=30
                        ).status_code
                    ),
                    range(16),
                )
            )
    finally:
        server.stop()
    assert sorted(statuses) == [200] * 15 + [201]


@pytest.mark.integration
def test_concurrent_repeats_store_one_change_on_postgresql(tmp_path: Path) -> None:
    with postgres_database() as url:
        app = create_app(settings_for(tmp_path, database_url=url), clock=lambda: NOW)
        server = LiveServer(app)
        try:
            with ThreadPoolExecutor(16) as pool:
                statuses = list(
                    pool.map(
                        lambda _: (
                            httpx.post(
                                server.url + CHANGES,
                                json=DEPLOY,
                                headers=auth(WRITE_TOKEN),
                                timeout=30,
                            ).status_code
                        ),
                        range(16),
                    )
                )
        finally:
            server.stop()
        engine = sa.create_engine(url)
        with engine.connect() as connection:
            stored = connection.scalar(sa.text("SELECT count(*) FROM changes"))
        engine.dispose()
    assert sorted(statuses) == [200] * 15 + [201]
    assert stored == 1


def test_the_namespace_is_stored_listed_and_part_of_the_changes_identity(
    client: TestClient,
) -> None:
    prod = post(client, {**DEPLOY, "namespace": "prod"})
    assert prod.status_code == 201, prod.text
    assert prod.json()["change"]["namespace"] == "prod"
    assert post(client, {**DEPLOY, "namespace": "prod"}).status_code == 200
    # The same service in another namespace is another Deployment, even in one CI run.
    assert post(client, {**DEPLOY, "namespace": "staging"}).status_code == 201
    bare = {k: v for k, v in DEPLOY.items() if k != "id"}
    assert post(client, {**bare, "namespace": "prod"}).status_code == 201
    assert post(client, {**bare, "namespace": "staging"}).status_code == 201
    assert post(client, {**bare, "namespace": "staging"}).status_code == 200
    assert rows(client) == 4
    listing = [(i["change"]["namespace"], i["change"]["id"]) for i in listed(client)["items"]]
    assert sorted(listing, key=str) == sorted(
        [("prod", "run-7"), ("staging", "run-7"), ("prod", None), ("staging", None)], key=str
    )
    staging = listed(client, namespace="staging")["items"]
    assert [i["change"]["namespace"] for i in staging] == ["staging", "staging"]


def test_a_change_without_a_namespace_keeps_its_identity(client: TestClient) -> None:
    """Keys of changes without a namespace are those stored before namespaces were: a retry
    after the upgrade finds its first attempt."""
    from agent.store.changes import change_key

    old_key = hashlib.sha256("\0".join(["id", "cartservice", "run-7"]).encode()).hexdigest()
    assert change_key(Change(service="cartservice", at=NOW, id="run-7")) == old_key
    assert post(client, DEPLOY).status_code == 201
    assert post(client, DEPLOY).status_code == 200
    assert post(client, {**DEPLOY, "namespace": "prod"}).status_code == 201
    (unplaced,) = [i for i in listed(client)["items"] if i["change"]["namespace"] is None]
    assert unplaced["change"]["id"] == "run-7"


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({k: v for k, v in DEPLOY.items() if k != "at"}, "body.at"),
        ({**DEPLOY, "at": "2024-05-14T10:15:00"}, "body.at"),  # no offset: whose clock?
        ({**DEPLOY, "at": "1715681700"}, "body.at"),
        ({**DEPLOY, "at": 1715681700}, "body.at"),
        ({**DEPLOY, "service": ""}, "body.service"),
        ({**DEPLOY, "kind": "reboot"}, "body.kind"),
        ({**DEPLOY, "version": "v2"}, "body.version"),
        ({**DEPLOY, "source": "prometheus"}, "body.source"),
        ({**DEPLOY, "link": "javascript:alert(1)"}, "body.link"),
        ({**DEPLOY, "to_version": "x" * 201}, "body.to_version"),
        ({**DEPLOY, "namespace": "Shop"}, "body.namespace"),
        ({**DEPLOY, "namespace": "shop_eu"}, "body.namespace"),
        ({**DEPLOY, "namespace": "x" * 64}, "body.namespace"),
        ({**DEPLOY, "namespace": ""}, "body.namespace"),
        ({**DEPLOY, "namespace": 7}, "body.namespace"),
    ],
)
def test_a_malformed_change_is_422_naming_the_field(
    client: TestClient, body: dict[str, Any], path: str
) -> None:
    response = post(client, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["message"].startswith(f"{path}:")
    assert rows(client) == 0


def test_a_change_in_the_future_or_past_the_retention_is_422_with_the_reason(
    client: TestClient,
) -> None:
    soon = post(client, {**DEPLOY, "at": "2024-05-14T10:34:00Z"})  # clock skew: accepted
    assert soon.status_code == 201
    future = post(client, {**DEPLOY, "id": "f", "at": "2024-05-14T11:30:00Z"})
    assert future.status_code == 422
    assert (
        "body.at: 2024-05-14T11:30:00+00:00 is in the future" in future.json()["error"]["message"]
    )
    old = post(client, {**DEPLOY, "id": "o", "at": "2023-01-01T00:00:00Z"})
    assert old.status_code == 422
    assert "older than the retention of changes (90 days" in old.json()["error"]["message"]
    assert rows(client) == 1


def test_an_unknown_service_is_stored_and_flagged(client: TestClient) -> None:
    typo = post(client, {**DEPLOY, "service": "chekout"})
    assert typo.status_code == 201
    assert typo.json()["known_service"] is False
    assert "chekout" in typo.json()["warnings"][0]
    accepted = client.post(
        "/v1/alertmanager", json=notification(service="frontend"), headers=auth(WEBHOOK_TOKEN)
    )
    assert accepted.status_code == 202
    known = post(client, {**DEPLOY, "service": "frontend"})
    assert known.json()["known_service"] is True and known.json()["warnings"] == []
    assert [i["known_service"] for i in listed(client)["items"]] == [False, True]


def test_tokens_and_query_parameters(client: TestClient) -> None:
    assert client.post(CHANGES, json=DEPLOY).status_code == 401
    assert post(client, DEPLOY, token=READ_TOKEN).status_code == 403
    assert post(client, DEPLOY, token=WEBHOOK_TOKEN).status_code == 403
    assert client.get(CHANGES).status_code == 401
    typo = client.get(CHANGES, params={"servce": "cart"}, headers=auth(READ_TOKEN))
    assert typo.status_code == 422 and "query.servce" in typo.json()["error"]["message"]
    twice = client.get(
        CHANGES, params=[("service", "cart"), ("service", "web")], headers=auth(READ_TOKEN)
    )
    assert twice.status_code == 422
    assert twice.json()["error"]["message"] == "query.service: given 2 times; give it once"


@pytest.mark.parametrize("number", ["1715680800", "0.2", "5.56e-125", "nan", "-1e3"])
def test_a_number_is_not_a_timestamp(client: TestClient, number: str) -> None:
    # Found by schemathesis: "5.56e-125" was read as seconds since 1970 and answered 200.
    for name in ("since", "until"):
        answer = client.get(CHANGES, params={name: number}, headers=auth(READ_TOKEN))
        assert answer.status_code == 422
        assert "RFC 3339" in answer.json()["error"]["message"]
    listing = client.get("/v1/analyses", params={"since": number}, headers=auth(READ_TOKEN))
    assert listing.status_code == 422


def test_listing_by_service_and_time(client: TestClient) -> None:
    for minute, service in ((5, "cartservice"), (10, "frontend"), (15, "cartservice")):
        body = {**DEPLOY, "service": service, "id": f"r{minute}"}
        assert post(client, {**body, "at": f"2024-05-14T10:{minute:02d}:00Z"}).status_code == 201
    assert [i["change"]["id"] for i in listed(client)["items"]] == ["r5", "r10", "r15"]
    cart = listed(client, service="cartservice", since="2024-05-14T10:06:00Z")["items"]
    assert [i["change"]["id"] for i in cart] == ["r15"]
    until = listed(client, until="2024-05-14T10:10:00Z")["items"]
    assert [i["change"]["id"] for i in until] == ["r5", "r10"]
    page = listed(client, limit="2")
    assert len(page["items"]) == 2 and page["truncated"] is True
    bad = client.get(CHANGES, params={"since": "yesterday"}, headers=auth(READ_TOKEN))
    assert bad.status_code == 422 and "query.since" in bad.json()["error"]["message"]


# --- the store briefly down ----------------------------------------------------------------


def test_sqlite_failing_mid_write_is_503_and_the_retry_stores_it(tmp_path: Path) -> None:
    with _client(tmp_path) as client:
        state = client.app.state.rca  # type: ignore[attr-defined]

        def fail_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("INSERT INTO CHANGES"):
                raise OperationalError(statement, {}, Exception("disk I/O error"))

        event.listen(state.engine, "before_cursor_execute", fail_insert)
        down = post(client, DEPLOY)
        event.remove(state.engine, "before_cursor_execute", fail_insert)
        assert down.status_code == 503
        assert down.headers["retry-after"]
        assert down.json()["error"]["code"] == "database_unavailable"
        assert rows(client) == 0
        assert post(client, DEPLOY).status_code == 201
        assert rows(client) == 1


@pytest.mark.integration
def test_postgresql_down_is_503_and_nothing_is_lost(tmp_path: Path) -> None:
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

        try:
            with _client(tmp_path, database_url=url) as client:
                allow(False)
                down = post(client, DEPLOY)
                allow(True)
                retried = wait_for(
                    lambda: (r := post(client, DEPLOY)).status_code != 503 and r,
                    30,
                    "the store back",
                )
                stored = rows(client)
        finally:
            allow(True)
            admin.dispose()
    assert down.status_code == 503 and down.headers["retry-after"]
    assert retried.status_code == 201 and stored == 1


# --- into the analysis ---------------------------------------------------------------------


def _job(services: list[str]) -> ClaimedJob:
    return ClaimedJob(
        id="an-changes",
        trigger=Trigger(kind="api", services=services),
        incident_start=NOW - timedelta(minutes=10),
        window_end=NOW,
        attempts=1,
        alert_payload=None,
    )


def test_the_reported_changes_of_the_window_reach_the_analysed_snapshot(
    client: TestClient,
) -> None:
    frontend = {**DEPLOY, "service": "frontend", "id": "f", "at": "2024-05-14T10:12:00Z"}
    billing = {**DEPLOY, "service": "billing", "id": "b"}  # placed nowhere in the graph
    for body in (DEPLOY, frontend, billing):
        assert post(client, body).status_code == 201
    state = client.app.state.rca  # type: ignore[attr-defined]
    reported: Callable[..., Any] = state.workers.reported_changes
    result = run_job(_job(["frontend"]), state.settings, reported)
    assert result.snapshot is not None
    found = {(c.service, c.id, c.source) for c in result.snapshot.changes}
    assert found == {
        ("cartservice", "run-7", "api"),
        ("frontend", "f", "api"),
        ("billing", "b", "api"),
    }
    assert result.analysis.root_cause is not None  # the analysis ran on it


def test_a_request_keeps_the_reported_changes_of_its_neighbourhood() -> None:
    """/rca redis: frontend calls cartservice calls redis, so a frontend change cannot be what
    hurts redis; a change of a service the graph does not place stays."""
    reported = [
        Change(service=name, at=NOW - timedelta(minutes=9), to_version="v2")
        for name in ("frontend", "cartservice", "billing")
    ]
    snapshot = load_snapshot(MINIMAL)
    kept = with_reported_changes(snapshot, reported, ["redis"])
    assert {c.service for c in kept.changes} == {"cartservice", "billing"}
    everything = with_reported_changes(snapshot, reported).changes
    assert {c.service for c in everything} == {"frontend", "cartservice", "billing"}
    assert with_reported_changes(snapshot, []) is snapshot
