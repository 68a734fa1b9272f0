"""The HTTP API over SQLite, in process: webhook to stored analysis, reads, feedback, auth,
limits and error bodies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    WRITE_TOKEN,
    auth,
    notification,
    settings_for,
    wait_for,
)

from agent.service.app import create_app
from agent.service.share import share_url, signer_for
from agent.store.queries import analyses_with_feedback

WEBHOOK = "/v1/alertmanager"


def make_client(tmp_path: Path, **overrides: Any) -> TestClient:
    return TestClient(
        create_app(settings_for(tmp_path, **overrides)), raise_server_exceptions=False
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as test_client:
        yield test_client


def finished(client: TestClient, analysis_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = client.get(f"/v1/analyses/{analysis_id}", headers=auth(READ_TOKEN)).json()
        return body if body["status"] in ("done", "failed") else None

    result: dict[str, Any] = wait_for(done, 30, f"analysis {analysis_id}")
    return result


def post_alert(client: TestClient, payload: dict[str, Any]) -> dict[str, Any]:
    response = client.post(WEBHOOK, json=payload, headers=auth(WEBHOOK_TOKEN))
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def test_webhook_to_stored_analysis(client: TestClient) -> None:
    accepted = post_alert(client, notification())
    assert accepted["outcome"] == "new"
    body = finished(client, accepted["analysis_id"])
    assert body["status"] == "done", body["error"]
    analysis = body["analysis"]
    assert analysis["id"] == accepted["analysis_id"]
    assert analysis["trigger"]["kind"] == "alert"
    assert analysis["trigger"]["services"] == ["frontend"]
    assert analysis["candidates"], "the recorded incident has anomalies to rank"
    assert body["incident"] == {"status": "firing", "resolved_at": None}
    report = client.get(body["report_url"], headers=auth(READ_TOKEN))
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/markdown")
    assert analysis["root_cause"]["service"] in report.text


def test_repeats_resolve_and_late_notifications(client: TestClient) -> None:
    first = post_alert(client, notification(group="g", fingerprint="a"))
    assert post_alert(client, notification(group="g", fingerprint="a"))["outcome"] == "duplicate"
    resolved = post_alert(client, notification(group="g", fingerprint="a", status="resolved"))
    assert resolved["outcome"] == "resolved"
    late = post_alert(client, notification(group="g", fingerprint="a"))
    assert late["outcome"] == "late"
    body = finished(client, first["analysis_id"])
    assert body["incident"]["status"] == "resolved"
    listed = client.get("/v1/analyses", headers=auth(READ_TOKEN)).json()["items"]
    assert [item["id"] for item in listed] == [first["analysis_id"]]


def test_resolve_before_firing_is_not_analyzed(client: TestClient) -> None:
    early = post_alert(client, notification(group="o", fingerprint="b", status="resolved"))
    assert early["outcome"] == "resolved_unseen"
    late = post_alert(client, notification(group="o", fingerprint="b"))
    assert late["outcome"] == "late"
    assert client.get("/v1/analyses", headers=auth(READ_TOKEN)).json()["items"] == []


def test_new_alert_in_a_group_is_a_new_episode(client: TestClient) -> None:
    one = post_alert(client, notification(group="n", fingerprint="a"))
    two = post_alert(
        client, notification(group="n", fingerprint="a", starts="2024-05-14T11:00:00Z")
    )
    assert two["outcome"] == "new"
    assert one["analysis_id"] != two["analysis_id"]


def test_ad_hoc_request_filters_and_pages(client: TestClient) -> None:
    ids = []
    for _ in range(3):
        response = client.post(
            "/v1/analyses",
            json={"services": ["frontend"], "last": "2h", "question": "why slow?"},
            headers=auth(WRITE_TOKEN),
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    for analysis_id in ids:
        assert finished(client, analysis_id)["status"] == "done"
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "service": "frontend", "status": "done"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/analyses", params=params, headers=auth(READ_TOKEN)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    other = client.get("/v1/analyses", params={"service": "nope"}, headers=auth(READ_TOKEN))
    assert other.json()["items"] == []
    bad = client.get("/v1/analyses", params={"cursor": "!!"}, headers=auth(READ_TOKEN))
    assert bad.status_code == 422
    typo = client.get("/v1/analyses", params={"servce": "frontend"}, headers=auth(READ_TOKEN))
    assert typo.status_code == 422
    assert "query.servce" in typo.text
    pages = [("limit", "1"), ("limit", "50")]
    twice = client.get("/v1/analyses", params=pages, headers=auth(READ_TOKEN))
    assert twice.status_code == 422
    assert "query.limit: given 2 times" in twice.text
    for since in ("0.2", "1715680800", "yesterday"):
        bad = client.get("/v1/analyses", params={"since": since}, headers=auth(READ_TOKEN))
        assert bad.status_code == 422, since
        assert "since" in bad.text
    recent = client.get(
        "/v1/analyses", params={"since": "2000-01-01T00:00:00Z"}, headers=auth(READ_TOKEN)
    )
    assert len(recent.json()["items"]) == len(ids)


def test_feedback_is_stored_for_the_dataset(client: TestClient) -> None:
    accepted = post_alert(client, notification())
    finished(client, accepted["analysis_id"])
    url = f"/v1/analyses/{accepted['analysis_id']}/feedback"
    rating = {
        "verdict": "partially",
        "actual_service": "cartservice",
        "actual_fault_type": "cpu_saturation",
        "note": "right service, wrong pod",
    }
    response = client.post(url, json=rating, headers=auth(WRITE_TOKEN))
    assert response.status_code == 201, response.text
    missing = client.post("/v1/analyses/an-nope/feedback", json=rating, headers=auth(WRITE_TOKEN))
    assert missing.status_code == 404
    state = client.app.state.rca  # type: ignore[attr-defined]
    with state.sessions.begin() as session:
        rated = list(analyses_with_feedback(session))
    assert [(a.id, f.verdict, f.actual_fault_type) for a, f in rated] == [
        (accepted["analysis_id"], "partially", "cpu_saturation")
    ]


def test_no_source_gives_an_insufficient_evidence_analysis(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        accepted = post_alert(client, notification(service="unknown-service"))
        body = finished(client, accepted["analysis_id"])
    assert body["status"] == "done"
    analysis = body["analysis"]
    assert analysis["insufficient_evidence"] is True
    assert analysis["source_failures"][0]["source"] == "snapshot_dir"
    assert "unknown-service" in analysis["source_failures"][0]["error"]


def test_chart_is_rendered_and_served(tmp_path: Path) -> None:
    with make_client(tmp_path, service={"charts": True}) as client:
        accepted = post_alert(client, notification())
        analysis_id = accepted["analysis_id"]
        body = wait_for(
            lambda: (b := finished(client, analysis_id))["chart_url"] and b, 60, "the chart"
        )
        png = client.get(body["chart_url"], headers=auth(READ_TOKEN))
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("get", "/v1/analyses", {}, 401),
        ("get", "/v1/analyses", auth("wrong-token-123"), 401),
        ("get", "/v1/analyses", auth(WEBHOOK_TOKEN), 403),
        ("post", "/v1/analyses", auth(READ_TOKEN), 403),
        ("post", WEBHOOK, {}, 401),
        ("post", WEBHOOK, auth(WRITE_TOKEN), 401),
        ("post", WEBHOOK, {"Authorization": f"Basic {WEBHOOK_TOKEN}"}, 401),
    ],
)
def test_auth_errors_are_json(
    client: TestClient, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    body = {"services": ["frontend"]} if path == "/v1/analyses" else notification()
    kwargs: dict[str, Any] = {"headers": headers}
    if method == "post":
        kwargs["json"] = body
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert response.json()["error"]["code"] == ("unauthorized" if status == 401 else "forbidden")
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_body_too_large_is_413(tmp_path: Path) -> None:
    with make_client(tmp_path, service={"max_body_bytes": 2048}) as client:
        payload = notification()
        payload["commonAnnotations"]["description"] = "x" * 4096
        response = client.post(WEBHOOK, json=payload, headers=auth(WEBHOOK_TOKEN))
        streamed = client.post(
            WEBHOOK,
            content=iter([b"{" + b" " * 1500, b" " * 1500 + b"}"]),
            headers={**auth(WEBHOOK_TOKEN), "content-type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert streamed.status_code == 413


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"version": "3"}, "body.version"),
        ({"alerts": []}, "body.alerts"),
        ({"status": "burning"}, "body.status"),
        ({"alerts": [{"status": "firing", "labels": {}}]}, "body.alerts.0.startsAt"),
    ],
)
def test_malformed_webhook_is_422_with_field_path(
    client: TestClient, change: dict[str, Any], path: str
) -> None:
    response = client.post(WEBHOOK, json={**notification(), **change}, headers=auth(WEBHOOK_TOKEN))
    assert response.status_code == 422
    error = response.json()["error"]
    assert path in [field["path"] for field in error["fields"]]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(("field", "value"), [("startsAt", 1715681700), ("endsAt", 0.0)])
def test_webhook_times_given_as_numbers_are_422(
    client: TestClient, field: str, value: float
) -> None:
    # Alertmanager writes RFC 3339 text; a number would be read as seconds since 1970.
    payload = notification()
    payload["alerts"][0][field] = value
    response = client.post(WEBHOOK, json=payload, headers=auth(WEBHOOK_TOKEN))
    assert response.status_code == 422
    (error,) = [f for f in response.json()["error"]["fields"] if field in f["path"]]
    assert error["path"] == f"body.alerts.0.{field}"
    assert "RFC 3339" in error["message"]


def test_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        WEBHOOK,
        content=b"{not json",
        headers={**auth(WEBHOOK_TOKEN), "content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/v1/analyses/an-missing", headers=auth(READ_TOKEN))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_operations_endpoints(client: TestClient) -> None:
    accepted = post_alert(client, notification(group="m"))
    assert finished(client, accepted["analysis_id"])["status"] == "done"
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["database"] is True
    assert ready["sources"] == {"snapshot_dir": True}
    metrics = client.get("/metrics").text
    assert 'rca_webhook_requests_total{result="new"} 1.0' in metrics
    assert "rca_queue_depth" in metrics
    assert "rca_oldest_pending_job_age_seconds" in metrics
    assert 'rca_source_query_duration_seconds_count{source="snapshot_dir"} 1.0' in metrics


# --- share links: read one analysis without a token ---------------------------------------

SHARE_SECRET = "share-secret-for-tests-0123"
PUBLIC = "https://rca.example.com"


def _shared_client(tmp_path: Path) -> TestClient:
    return make_client(
        tmp_path,
        service={"charts": True, "share_secret": SHARE_SECRET},
        slack={"public_url": PUBLIC},
    )


def _local(url: str | None) -> str:
    """A public share URL as the path and query the test client requests."""
    assert url is not None and url.startswith(PUBLIC + "/"), url
    return url.removeprefix(PUBLIC)


def test_share_link_reads_its_analysis_report_and_chart_without_a_token(tmp_path: Path) -> None:
    with _shared_client(tmp_path) as client:
        analysis_id = post_alert(client, notification())["analysis_id"]
        wait_for(lambda: finished(client, analysis_id)["chart_url"], 60, "the chart")
        settings = client.app.state.rca.settings  # type: ignore[attr-defined]
        markdown = f"/v1/analyses/{analysis_id}/report.md"
        link = share_url(settings, analysis_id, datetime.now(UTC), path=markdown)
        report = client.get(_local(link))  # no Authorization header at all
        token = _local(link).partition("?share=")[2]
        body = client.get(f"/v1/analyses/{analysis_id}", params={"share": token})
        chart = client.get(body.json()["chart_url"]) if body.status_code == 200 else None
        plain = client.get(f"/v1/analyses/{analysis_id}/report.md")
    assert link is not None and link.startswith(f"{PUBLIC}/v1/analyses/{analysis_id}/report.md?")
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/markdown")
    assert body.status_code == 200, body.text
    analysis = body.json()["analysis"]
    assert analysis["id"] == analysis_id and analysis["root_cause"]["service"] in report.text
    # Links in a shared answer carry the share on, so the report's chart opens too.
    assert f"chart.png?share={token}" in report.text
    assert body.json()["report_url"] == f"/v1/analyses/{analysis_id}/report.md?share={token}"
    assert chart is not None and chart.status_code == 200
    assert chart.content.startswith(b"\x89PNG")
    assert plain.status_code == 401  # the link, not the route, is what opens it


def test_share_link_refuses_tampering_expiry_other_analyses_lists_and_writes(
    tmp_path: Path,
) -> None:
    with _shared_client(tmp_path) as client:
        first = post_alert(client, notification(group="a"))["analysis_id"]
        other = post_alert(client, notification(group="b"))["analysis_id"]
        finished(client, first)
        finished(client, other)
        signer = signer_for(client.app.state.rca.settings)  # type: ignore[attr-defined]
        assert signer is not None
        now = datetime.now(UTC)
        token = signer.sign(first, now + timedelta(hours=1))
        seconds, _, signature = token.partition(".")
        flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")

        def read(analysis_id: str, share: str, route: str = "/report.md") -> Any:
            return client.get(f"/v1/analyses/{analysis_id}{route}", params={"share": share})

        ok = read(first, token)
        tampered = read(first, f"{seconds}.{flipped}")
        longer = read(first, f"{int(seconds) + 86400}.{signature}")  # a later expiry, same sig
        elsewhere = read(other, token, "")
        expired = read(first, signer.sign(first, now - timedelta(seconds=1)), "/chart.png")
        malformed = read(first, "not-a-share-token")
        listing = client.get("/v1/analyses", params={"share": token})
        rating = {"verdict": "correct"}
        feedback = client.post(f"/v1/analyses/{first}/feedback?share={token}", json=rating)
        request = client.post(f"/v1/analyses?share={token}", json={"services": ["frontend"]})
        state = client.app.state.rca  # type: ignore[attr-defined]
        with state.sessions.begin() as session:
            rated = list(analyses_with_feedback(session))
    assert ok.status_code == 200
    for refused, code, words in [
        (tampered, "share_link_invalid", f"not valid for analysis {first!r}"),
        (longer, "share_link_invalid", f"not valid for analysis {first!r}"),
        (elsewhere, "share_link_invalid", f"not valid for analysis {other!r}"),
        (expired, "share_link_expired", "share link expired at"),
        (malformed, "share_link_invalid", "expected share=<expiry>.<signature>"),
    ]:
        assert refused.status_code == 401, refused.text
        error = refused.json()["error"]
        assert error["code"] == code and words in error["message"]
        assert refused.headers["www-authenticate"] == "Bearer"
    for refused in (listing, feedback, request):
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["message"] == "query.share: unknown query parameter"
    assert rated == []


def test_share_key_falls_back_to_the_first_api_token(tmp_path: Path) -> None:
    with make_client(tmp_path, slack={"public_url": PUBLIC}) as client:
        analysis_id = post_alert(client, notification())["analysis_id"]
        finished(client, analysis_id)
        settings = client.app.state.rca.settings  # type: ignore[attr-defined]
        link = share_url(settings, analysis_id, datetime.now(UTC))
        report = client.get(_local(link))
    assert report.status_code == 200, report.text
