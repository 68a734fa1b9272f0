"""The feedback the bolt bot takes in Slack: the 👍 button, and the 👎 button's modal (service,
fault type, note, what fixed it and a link to it), its view submission and the field errors it
answers for an incomplete or hostile one.

The bot, its scripted backend and the request builders are in slack_support.py.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from slack_double import TEAM_ID, SlackDouble
from slack_support import (  # noqa: F401 (pytest finds the *_fixture names here)
    CHANNEL,
    USER,
    FakeBackend,
    action,
    api_fixture,
    backend_fixture,
    client_fixture,
    form,
    post,
)

from agent.models import FaultType
from agent.slack.blocks import ACTION_CORRECT, ACTION_WRONG
from agent.slack.modal import FEEDBACK_VIEW, FeedbackOrigin


def test_thumbs_up_stores_correct_feedback_attributed_to_the_user(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    assert post(client, action(ACTION_CORRECT)).status_code == 200
    (thanks,) = api.wait_for("chat.postEphemeral")
    assert backend.feedback == [
        ("an-test-1", "correct", "payments", FaultType.MEMORY_LEAK, "", f"slack:{TEAM_ID}/{USER}")
    ]
    assert "recorded 👍" in thanks.params["text"]


def _submission(
    service: str | None,
    fault: str | None,
    note: str = "",
    resolution: str | None = None,
    resolution_url: str | None = None,
) -> str:
    def selected(value: str | None) -> dict[str, Any]:
        return {"type": "static_select", "selected_option": {"value": value} if value else None}

    view = {
        "id": "V0FEEDBACK",
        "type": "modal",
        "callback_id": FEEDBACK_VIEW,
        "private_metadata": FeedbackOrigin("an-test-1", CHANNEL, "1715680000.000100").dump(),
        "state": {
            "values": {
                "actual_service": {"service": selected(service)},
                "actual_fault_type": {"fault_type": selected(fault)},
                "note": {"note": {"type": "plain_text_input", "value": note}},
                "resolution": {"resolution": {"type": "plain_text_input", "value": resolution}},
                "resolution_url": {
                    "resolution_url": {"type": "url_text_input", "value": resolution_url}
                },
            }
        },
    }
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "user": {"id": USER, "team_id": TEAM_ID},
        "view": view,
    }
    return form(payload=json.dumps(payload))


def test_thumbs_down_opens_the_modal_and_its_submission_stores_feedback(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    post(client, action(ACTION_WRONG))
    (opened,) = api.wait_for("views.open")
    view = opened.params["view"]
    assert opened.params["trigger_id"] == "1337.42.trigger" and view["callback_id"] == FEEDBACK_VIEW
    services = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert services[:3] == ["payments", "checkout", "frontend"]
    faults = {o["value"] for o in view["blocks"][1]["element"]["options"]}
    assert faults == {f.value for f in FaultType}

    blocks = [b["block_id"] for b in view["blocks"]]
    assert blocks[-2:] == ["resolution", "resolution_url"]  # what fixed it, optional

    response = post(
        client,
        _submission(
            "checkout",
            "bad_deploy",
            "deploy 4711 at 10:41",
            "rolled back to 4710",
            "https://git.example.com/pr/9",
        ),
    )
    assert response.status_code == 200 and response.content in (b"", b"null")
    assert backend.feedback == [
        (
            "an-test-1",
            "wrong",
            "checkout",
            FaultType.BAD_DEPLOY,
            "deploy 4711 at 10:41",
            f"slack:{TEAM_ID}/{USER}",
            "rolled back to 4710",
            "https://git.example.com/pr/9",
        )
    ]
    (thanks,) = api.wait_for("chat.postEphemeral")
    assert "`checkout` (bad_deploy)" in thanks.params["text"]


def test_incomplete_modal_gets_field_errors_and_stores_nothing(
    backend: FakeBackend, client: TestClient
) -> None:
    response = post(client, _submission(None, "cpu_saturation"))
    assert response.json() == {
        "response_action": "errors",
        "errors": {"actual_service": "Pick the service that really caused it."},
    }
    assert backend.feedback == []


def test_modal_refuses_a_link_that_is_not_http_and_a_resolution_over_the_limit(
    backend: FakeBackend, client: TestClient
) -> None:
    hostile = _submission(
        "checkout", "bad_deploy", "", "x" * 3001, "javascript:alert(document.cookie)"
    )
    response = post(client, hostile)
    errors = response.json()["errors"]
    assert set(errors) == {"resolution", "resolution_url"}
    assert "3000" in errors["resolution"] and "http" in errors["resolution_url"]
    assert backend.feedback == []
