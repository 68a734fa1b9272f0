"""The report pages as ``rca serve`` serves them (in process): who may read and rate, the
feedback rows a rating writes, the list and its filters, pages of unfinished analyses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import build_analysis, build_snapshot
from fastapi.testclient import TestClient
from page_support import Page, store_done
from service_support import READ_TOKEN, WRITE_TOKEN, auth, settings_for

from agent.models import Analysis
from agent.service import pages
from agent.service.app import create_app
from agent.service.share import signer_for
from agent.store.intake import NewJob, enqueue
from agent.store.queries import analyses_with_feedback

SECRET = "share-secret-for-page-tests"


def _client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = settings_for(tmp_path, service={"share_secret": SECRET}, **overrides)
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with _client(tmp_path) as test_client:
        yield test_client


def _store(client: TestClient, analysis: Analysis | None = None, chart: bool = True) -> str:
    state = client.app.state.rca  # type: ignore[attr-defined]
    return store_done(
        state.sessions, analysis or build_analysis(), build_snapshot() if chart else None
    )


def _share(client: TestClient, analysis_id: str, hours: float = 1) -> str:
    signer = signer_for(client.app.state.rca.settings)  # type: ignore[attr-defined]
    assert signer is not None
    return signer.sign(analysis_id, datetime.now(UTC) + timedelta(hours=hours))


def _rows(client: TestClient) -> list[tuple[str, str, str | None, str | None, str]]:
    with client.app.state.rca.sessions.begin() as session:  # type: ignore[attr-defined]
        return [
            (a.id, f.verdict, f.actual_service, f.actual_fault_type, f.author)
            for a, f in analyses_with_feedback(session)
        ]


def _other(analysis_id: str, **changes: Any) -> Analysis:
    return build_analysis().model_copy(update={"id": analysis_id, **changes})


def test_page_opens_with_a_read_token_or_its_share_link_only(client: TestClient) -> None:
    first = _store(client)
    other = _store(client, _other("an-other"))
    token = _share(client, first)
    with_token = client.get(f"/analyses/{first}", headers=auth(READ_TOKEN))
    shared = client.get(f"/analyses/{first}", params={"share": token})
    anonymous = client.get(f"/analyses/{first}")
    elsewhere = client.get(f"/analyses/{other}", params={"share": token})
    expired = client.get(f"/analyses/{first}", params={"share": _share(client, first, -1)})
    listing = client.get("/analyses", params={"share": token})
    assert with_token.status_code == shared.status_code == 200
    page = Page(shared.text)
    assert page.headings[0] == "h1:Root cause: payments — memory_leak"
    assert shared.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in shared.headers["content-security-policy"]
    assert "default-src 'none'" in shared.headers["content-security-policy"]
    assert shared.headers["referrer-policy"] == "same-origin"  # the token stays on this site
    assert shared.headers["cache-control"] == "no-store"
    # Links from a shared page carry the share on; the list is not offered to it.
    hrefs = [v for t, n, v in page.attrs if n in ("href", "src")]
    assert f"/analyses/{first}/analysis.json?share={token}" in hrefs
    assert f"/v1/analyses/{first}/chart.png?share={token}" in hrefs
    assert ("a", "href", "/analyses") in Page(with_token.text).attrs
    assert ("a", "href", "/analyses") not in page.attrs
    # Refusals are pages too, with the API's status and code.
    assert anonymous.status_code == 401 and "text/html" in anonymous.headers["content-type"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert elsewhere.status_code == 401 and "share_link_invalid" in elsewhere.text
    assert expired.status_code == 401 and "share_link_expired" in expired.text
    assert listing.status_code == 422  # the list takes no share link


def test_json_download_is_the_stored_analysis(client: TestClient) -> None:
    analysis_id = _store(client)
    response = client.get(
        f"/analyses/{analysis_id}/analysis.json", params={"share": _share(client, analysis_id)}
    )
    assert response.status_code == 200
    assert response.headers["content-disposition"] == 'attachment; filename="an-test-1.json"'
    assert Analysis.model_validate_json(response.content) == build_analysis()


def _rate(
    client: TestClient, analysis_id: str, headers: dict[str, str] | None = None, **form: str
) -> Any:
    return client.post(
        f"/analyses/{analysis_id}/feedback", data=form, headers=headers, follow_redirects=False
    )


def test_a_share_link_rates_its_analysis_with_the_rows_slack_writes(client: TestClient) -> None:
    analysis_id = _store(client)
    token = _share(client, analysis_id)
    correct = _rate(client, analysis_id, share=token, verdict="correct", author="alice")
    wrong = _rate(
        client,
        analysis_id,
        share=token,
        verdict="wrong",
        actual_service="checkout",
        actual_fault_type="network_latency",
        note="it was the LB",
    )
    assert correct.status_code == wrong.status_code == 303
    assert (
        correct.headers["location"] == f"/analyses/{analysis_id}?share={token}&rated=correct#rate"
    )
    after = client.get(correct.headers["location"])
    assert "Thank you: your rating “correct” was recorded." in Page(after.text).visible
    assert "share:alice" in after.text and "it was the LB" in after.text
    # 👍 records the named root cause as the actual one, as Slack's button does.
    assert _rows(client) == [
        (analysis_id, "correct", "payments", "memory_leak", "share:alice"),
        (analysis_id, "wrong", "checkout", "network_latency", "share:anonymous"),
    ]


def test_a_share_link_rates_nothing_else(client: TestClient) -> None:
    first = _store(client)
    other = _store(client, _other("an-other"))
    token = _share(client, first)
    elsewhere = _rate(client, other, share=token, verdict="wrong")
    no_share = _rate(client, first, verdict="wrong")
    reader = _rate(client, first, headers=auth(READ_TOKEN), verdict="wrong")
    expired = _rate(client, first, share=_share(client, first, -1), verdict="wrong")
    forged = _rate(client, first, share=token[:-2] + "xx", verdict="wrong")
    cross_site = _rate(
        client, first, headers={"Origin": "https://evil.example"}, share=token, verdict="wrong"
    )
    fetched = _rate(client, first, headers={"Sec-Fetch-Site": "cross-site"}, share=token)
    sibling = _rate(client, first, headers={"Sec-Fetch-Site": "same-site"}, share=token)
    assert elsewhere.status_code == 401 and "share_link_invalid" in elsewhere.text
    assert no_share.status_code == 401
    assert reader.status_code == 403
    assert expired.status_code == 401 and "share_link_expired" in expired.text
    assert forged.status_code == 401
    assert cross_site.status_code == fetched.status_code == sibling.status_code == 403
    assert _rows(client) == []


def test_a_write_token_rates_too_and_bad_forms_are_refused(client: TestClient) -> None:
    analysis_id = _store(client)
    writer = auth(WRITE_TOKEN)
    same_site = {**writer, "Origin": str(client.base_url)}
    stored = _rate(client, analysis_id, headers=same_site, verdict="partially", author="bob")
    # What chromium sends from the page itself (its Origin may be "null").
    browser = {**writer, "Origin": "null", "Sec-Fetch-Site": "same-origin"}
    again = _rate(client, analysis_id, headers=browser, verdict="partially", author="bob")
    bad_verdict = _rate(client, analysis_id, headers=writer, verdict="maybe")
    bad_fault = _rate(client, analysis_id, headers=writer, verdict="wrong", actual_fault_type="x")
    as_json = client.post(
        f"/analyses/{analysis_id}/feedback", json={"verdict": "correct"}, headers=writer
    )
    missing = _rate(client, "an-missing", headers=writer, verdict="correct")
    assert stored.status_code == 303 and stored.headers["location"].endswith(
        "?rated=partially#rate"
    )
    assert bad_verdict.status_code == 422 and "form.verdict" in bad_verdict.text
    assert bad_fault.status_code == 422 and "form.actual_fault_type" in bad_fault.text
    assert as_json.status_code == 415
    assert missing.status_code == 404
    assert again.status_code == 303
    assert _rows(client) == [(analysis_id, "partially", None, None, "web:bob")] * 2


def test_a_share_link_adds_a_bounded_number_of_ratings(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "MAX_SHARED_RATINGS", 2)
    analysis_id = _store(client)
    token = _share(client, analysis_id)
    codes = [_rate(client, analysis_id, share=token, verdict="wrong").status_code for _ in range(3)]
    by_token = _rate(client, analysis_id, headers=auth(WRITE_TOKEN), verdict="correct")
    assert codes == [303, 303, 429]
    assert by_token.status_code == 303  # the bound is on the link, not on the analysis
    assert len(_rows(client)) == 3


def test_an_open_service_serves_and_rates_without_tokens(tmp_path: Path) -> None:
    with _client(tmp_path, api_tokens=[]) as client:
        analysis_id = _store(client)
        page = client.get(f"/analyses/{analysis_id}")
        rated = _rate(client, analysis_id, verdict="correct", share="ignored\r\nX-Evil: 1")
        rows = _rows(client)
    assert page.status_code == 200
    assert rated.status_code == 303 and rated.headers["location"].endswith("?rated=correct#rate")
    assert rows == [(analysis_id, "correct", "payments", "memory_leak", "web:anonymous")]


def _queue(client: TestClient, analysis_id: str) -> None:
    from agent.models import Trigger

    now = datetime.now(UTC)
    job = NewJob(analysis_id, Trigger(kind="api", services=["cart"]), now, now, ["cart"])
    with client.app.state.rca.sessions.begin() as session:  # type: ignore[attr-defined]
        enqueue(session, job, now + timedelta(days=365))  # not due: stays pending


def test_unfinished_analyses_get_a_page_that_reloads(client: TestClient) -> None:
    _queue(client, "an-pending")
    pending = client.get("/analyses/an-pending", headers=auth(READ_TOKEN))
    download = client.get("/analyses/an-pending/analysis.json", headers=auth(READ_TOKEN))
    missing = client.get("/analyses/an-nothing", headers=auth(READ_TOKEN))
    assert pending.status_code == 200
    page = Page(pending.text)
    assert page.headings == ["h1:Analysis pending"]
    assert ("meta", "content", "5") in page.attrs
    assert download.status_code == 409
    assert missing.status_code == 404 and "no analysis 'an-nothing'" in Page(missing.text).visible


def _list(client: TestClient, **params: str) -> list[str]:
    response = client.get("/analyses", params=params, headers=auth(READ_TOKEN))
    assert response.status_code == 200, response.text
    page = Page(response.text)
    return [v or "" for t, n, v in page.attrs if t == "a" and n == "href" and "/an-" in (v or "")]


def test_list_is_newest_first_and_filters_by_service_status_and_rating(
    client: TestClient,
) -> None:
    first = _store(client, _other("an-1-first"))
    second = _store(client, _other("an-2-second", candidates=build_analysis().candidates[1:]))
    _queue(client, "an-3-pending")
    writer = auth(WRITE_TOKEN)
    _rate(client, first, headers=writer, verdict="correct")
    _rate(client, first, headers=writer, verdict="wrong")  # the latest rating counts
    everything = _list(client)
    assert everything == ["/analyses/an-3-pending", f"/analyses/{second}", f"/analyses/{first}"]
    assert _list(client, service="payments") == [f"/analyses/{first}"]
    assert _list(client, status="pending") == ["/analyses/an-3-pending"]
    assert _list(client, rating="wrong") == [f"/analyses/{first}"]
    assert _list(client, rating="correct") == []
    assert _list(client, rating="unrated", status="done") == [f"/analyses/{second}"]
    assert _list(client, service="", status="", rating="") == everything  # the empty form
    text = Page(client.get("/analyses", headers=auth(READ_TOKEN)).text).visible
    assert "0.83, high" in text and "wrong" in text and "unrated" in text


def test_list_pages_with_a_next_link_and_refuses_bad_filters(client: TestClient) -> None:
    for n in range(3):
        _store(client, _other(f"an-{n}"))
    first = client.get("/analyses", params={"limit": "2"}, headers=auth(READ_TOKEN))
    (older,) = [
        v for t, n, v in Page(first.text).attrs if t == "a" and n == "href" and v and "cursor=" in v
    ]
    rest = client.get(older, headers=auth(READ_TOKEN))
    bad = client.get("/analyses", params={"rating": "great"}, headers=auth(READ_TOKEN))
    anonymous = client.get("/analyses")
    assert Page(rest.text).visible.count("an-") >= 1 and "an-0" in rest.text
    assert bad.status_code == 422 and "rating" in Page(bad.text).visible
    assert anonymous.status_code == 401


def test_pages_stay_out_of_the_api_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/analyses")]


def test_a_finished_page_is_drawn_once_and_afresh_when_the_result_changes(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from agent.page import render
    from agent.store.tables import AnalysisRow

    analysis_id = _store(client)
    drawn: list[str] = []
    original = render.evidence_views

    def counting(analysis: Analysis, material: Any) -> Any:
        drawn.append(analysis.id)
        return original(analysis, material)

    monkeypatch.setattr(render, "evidence_views", counting)
    first = client.get(f"/analyses/{analysis_id}", headers=auth(READ_TOKEN))
    again = client.get(f"/analyses/{analysis_id}", headers=auth(READ_TOKEN))
    rerun = build_analysis().model_copy(update={"summary": "re-run: now it is the database"})
    with client.app.state.rca.sessions.begin() as session:  # type: ignore[attr-defined]
        session.execute(
            update(AnalysisRow)
            .where(AnalysisRow.id == analysis_id)
            .values(result=rerun.model_dump_json(), finished_at=datetime.now(UTC))
        )
    after = client.get(f"/analyses/{analysis_id}", headers=auth(READ_TOKEN))
    assert first.text == again.text
    assert drawn == [analysis_id, analysis_id]  # first view, and after the result changed
    assert "re-run: now it is the database" in after.text


def test_the_page_cache_keeps_only_the_most_recently_viewed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent.page import render

    client.app.state.finished_pages = pages.FinishedPages(size=2)  # type: ignore[attr-defined]
    ids = [_store(client, _other(f"an-{n}")) for n in range(3)]
    drawn: list[str] = []
    original = render.evidence_views

    def counting(analysis: Analysis, material: Any) -> Any:
        drawn.append(analysis.id)
        return original(analysis, material)

    monkeypatch.setattr(render, "evidence_views", counting)
    for analysis_id in [*ids, ids[2], ids[0]]:
        assert client.get(f"/analyses/{analysis_id}", headers=auth(READ_TOKEN)).status_code == 200
    assert drawn == ["an-0", "an-1", "an-2", "an-0"]  # an-2 was kept, an-0 had been dropped


def test_an_analysis_stored_by_a_worker_is_drawn_before_anyone_opens_it(
    client: TestClient,
) -> None:
    from service_support import WEBHOOK_TOKEN, notification, wait_for

    accepted = client.post("/v1/alertmanager", json=notification(), headers=auth(WEBHOOK_TOKEN))
    analysis_id = accepted.json()["analysis_id"]
    cache = client.app.state.finished_pages  # type: ignore[attr-defined]
    wait_for(lambda: analysis_id in cache.drawn(), 60, "the page drawn by the worker")
    page = client.get(f"/analyses/{analysis_id}", headers=auth(READ_TOKEN))
    assert page.status_code == 200 and Page(page.text).headings[0].startswith("h1:Root cause")
