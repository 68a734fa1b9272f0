"""Hypothesis on the webhook, over real HTTP.

- Well-formed but arbitrary notifications (any labels, text, fingerprints, times, statuses,
  repeats): every one is answered 202 or 422, and every accepted firing episode has exactly
  one stored analysis.
- Any Unicode at all, on SQLite and on PostgreSQL: lone surrogates, NUL, right-to-left marks,
  label values of 100 kB. A notification with text no store can hold is a 422 that names the
  field holding it; every other one is a 202 whose labels are stored exactly as sent.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    LiveServer,
    auth,
    notification,
    postgres_database,
    settings_for,
)
from sqlalchemy import select

from agent.service.app import create_app
from agent.store.tables import Incident

text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
labels = st.dictionaries(text, text, max_size=4)
times = st.datetimes(
    min_value=__import__("datetime").datetime(1960, 1, 1),
    max_value=__import__("datetime").datetime(2300, 1, 1),
).map(lambda t: t.isoformat() + "Z")
alert = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": labels,
        "startsAt": times,
        "fingerprint": st.sampled_from(["", "a", "b", "c"]) | text,
    },
    optional={"annotations": labels, "endsAt": times, "generatorURL": text},
)
payload = st.fixed_dictionaries(
    {
        "version": st.sampled_from(["4", "4", "4", "3"]),
        "groupKey": st.sampled_from(["{}:{a}", "{}:{b}"]) | text,
        "status": st.sampled_from(["firing", "resolved"]),
        "receiver": text,
        "alerts": st.lists(alert, min_size=0, max_size=4),
    },
    optional={"groupLabels": labels, "commonLabels": labels, "truncatedAlerts": st.integers(0, 9)},
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp: Path = tmp_path_factory.mktemp("webhook-fuzz")
    server = LiveServer(create_app(settings_for(tmp)))
    yield server
    server.stop()


@given(body=payload)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_notification_is_accepted_or_rejected_cleanly(live: LiveServer, body: Any) -> None:
    response = httpx.post(f"{live.url}/v1/alertmanager", json=body, headers=auth(WEBHOOK_TOKEN))
    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"]["fields"], "a 422 names the bad field"
        return
    accepted = response.json()
    if body["status"] == "firing" and accepted["outcome"] in ("new", "duplicate"):
        assert accepted["analysis_id"]
        got = httpx.get(
            f"{live.url}/v1/analyses/{accepted['analysis_id']}", headers=auth(READ_TOKEN)
        )
        assert got.status_code == 200, f"accepted {accepted} but nothing is stored"


# --- any Unicode ---------------------------------------------------------------------------

HOSTILE = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\u202e", "\u200f", "\u200e", "\ufeff"]
any_char = st.characters(exclude_categories=()) | st.sampled_from(HOSTILE)
any_text = st.text(any_char, max_size=12)
big_text = st.builds(
    lambda head, tail: head + "\u202e" * 3 + "v" * 100_000 + tail, any_text, any_text
)
label_value = any_text | big_text
any_labels = st.dictionaries(any_text, label_value, max_size=3)
SURROGATE = re.compile("[\ud800-\udfff]")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def any_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, Any]]:
    tmp: Path = tmp_path_factory.mktemp(f"unicode-{request.param}")
    if request.param == "sqlite":
        app = create_app(settings_for(tmp))
        server = LiveServer(app)
        yield server, app.state.rca
        server.stop()
        return
    with postgres_database() as url:
        app = create_app(settings_for(tmp, database_url=url))
        server = LiveServer(app)
        yield server, app.state.rca
        server.stop()


def _first_refusal(payload: dict[str, Any]) -> tuple[str, str] | None:
    """(path, what) of the first text the service must refuse, in the order it checks: a lone
    surrogate anywhere (body order), then NUL in the alert's labels and annotations."""

    def walk(value: Any, at: str) -> str | None:
        if isinstance(value, str):
            return at if SURROGATE.search(value) else None
        if isinstance(value, dict):
            for key in value:
                if SURROGATE.search(key):
                    return f"{at}.{key}"
            for key, item in value.items():
                if (found := walk(item, f"{at}.{key}")) is not None:
                    return found
        if isinstance(value, list):
            for index, item in enumerate(value):
                if (found := walk(item, f"{at}.{index}")) is not None:
                    return found
        return None

    if (path := walk(payload, "body")) is not None:
        return path, "surrogate"
    alert = payload["alerts"][0]
    for field in ("labels", "annotations"):  # pydantic's order: fields, then item by item
        for key, value in alert[field].items():
            if "\x00" in key or "\x00" in value:
                return f"body.alerts.0.{field}.{key}", "NUL"
    return None


@given(labels=any_labels, summary=any_text, extra=any_text)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_any_unicode_is_stored_exactly_or_refused_naming_the_field(
    any_store: tuple[LiveServer, Any], labels: dict[str, str], summary: str, extra: str
) -> None:
    server, state = any_store
    payload = notification(group=f"unicode-{uuid.uuid4().hex}")  # a new episode each time
    payload["alerts"][0]["annotations"]["summary"] = summary
    payload["alerts"][0]["labels"] = {"alertname": "Hostile", **labels}
    payload["someFutureField"] = extra  # kept as sent, NUL included
    body = json.dumps(payload).encode()  # ASCII: lone surrogates travel as \ud800 escapes
    response = httpx.post(
        f"{server.url}/v1/alertmanager",
        content=body,
        headers={**auth(WEBHOOK_TOKEN), "Content-Type": "application/json"},
        timeout=30,
    )
    refusal = _first_refusal(payload)
    if refusal is not None:
        assert response.status_code == 422, response.text
        path, what = refusal
        field = response.json()["error"]["fields"][0]
        assert field["path"] in (path, path + ".[key]"), (field, path)
        assert ("surrogate" if what == "surrogate" else "NUL") in field["message"]
        return
    assert response.status_code == 202, response.text
    incident_id = response.json()["incident_id"]
    with state.sessions.begin() as session:
        stored = session.scalar(select(Incident.payload).where(Incident.id == incident_id))
    assert stored is not None
    kept = json.loads(stored)
    assert kept["alerts"][0]["labels"] == payload["alerts"][0]["labels"]
    assert kept["someFutureField"] == extra
