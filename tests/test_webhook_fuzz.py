"""Hypothesis on the webhook: well-formed but arbitrary notifications (any labels, text,
fingerprints, times, statuses, repeats). Every one is answered 202 or 422, and every
accepted firing episode has exactly one stored analysis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_support import READ_TOKEN, WEBHOOK_TOKEN, LiveServer, auth, settings_for

from agent.service.app import create_app

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
