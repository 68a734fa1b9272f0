"""The bolt bot, mounted in FastAPI, driven by signed (and badly signed) Slack requests.

Slack's side of the conversation is played twice: requests *to* the bot are built here and
signed with a test secret; the bot's calls *to* Slack go to the Web API double. The bot
acks first and works afterwards, so tests wait for the double to record the later calls.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import build_analysis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from slack_double import SIGNING_SECRET, TEAM_ID, TOKEN, SlackDouble, block_action, sign
from slack_evidence import promql_link, with_links

from agent.errors import ConfigError, RcaError
from agent.models import Analysis, FaultType
from agent.slack.backend import AnalysisAsk, ReplyTo
from agent.slack.blocks import ACTION_CORRECT, ACTION_RERUN, ACTION_WRONG
from agent.slack.bot import build_bot
from agent.slack.modal import FEEDBACK_VIEW, FeedbackOrigin
from agent.slack.transport import EVENTS_PATH, slack_router
from connectors.slack import ReportLink, SlackPublisher, build_client
from connectors.slack_settings import SlackSettings

NOW = datetime(2024, 5, 14, 11, 5, tzinfo=UTC)
CHANNEL, USER = "C0INCIDENTS", "U0ALICE"


@dataclass
class FakeBackend:
    """Scripted :class:`~agent.slack.backend.SlackBackend`: every analysis is the fixture's."""

    analysis: Analysis = field(default_factory=build_analysis)
    asks: list[tuple[AnalysisAsk, ReplyTo]] = field(default_factory=list)
    feedback: list[tuple[Any, ...]] = field(default_factory=list)
    threads: dict[tuple[str, str], str] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.release.set()

    def known_services(self) -> list[str]:
        return ["checkout", "frontend", "payments"]

    def submit_analysis(self, ask: AnalysisAsk, reply_to: ReplyTo) -> str:
        self.asks.append((ask, reply_to))
        return self.analysis.id

    def get_analysis(self, analysis_id: str) -> Analysis | None:
        if analysis_id != self.analysis.id:
            raise RcaError(f"no analysis {analysis_id}")
        return self.analysis if self.release.is_set() else None

    def get_chart(self, analysis_id: str) -> bytes | None:
        return None

    def find_incident(self, channel: str, thread_ts: str) -> str | None:
        return self.threads.get((channel, thread_ts))

    def remember_post(self, analysis_id: str, channel: str, ts: str) -> None:
        self.threads[(channel, ts)] = analysis_id

    def store_feedback(self, *args: Any) -> None:
        if args[0] != self.analysis.id:
            raise RcaError(f"no analysis {args[0]}")
        self.feedback.append(args)


@pytest.fixture
def api() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


def _client(
    api: SlackDouble,
    backend: FakeBackend,
    report_link: ReportLink | None = None,
    **changes: Any,
) -> TestClient:
    settings = SlackSettings.model_validate(
        {"default_channel": CHANNEL, "backoff_s": 0.01, **changes}
    )
    client = build_client(api.api_url, SecretStr(TOKEN), settings)
    publisher = SlackPublisher(client, settings, report_link=report_link)
    bot = build_bot(backend, publisher, SecretStr(SIGNING_SECRET), poll_s=0.01, now=lambda: NOW)
    app = FastAPI()
    app.include_router(slack_router(bot, SIGNING_SECRET))
    return TestClient(app)


@pytest.fixture
def client(api: SlackDouble, backend: FakeBackend) -> TestClient:
    return _client(api, backend)


def _form(**fields: str) -> str:
    return urlencode(fields)


def _command(text: str, channel: str = CHANNEL) -> str:
    return _form(
        command="/rca",
        text=text,
        channel_id=channel,
        user_id=USER,
        team_id=TEAM_ID,
        trigger_id="1337.42.abcd",
        response_url="https://hooks.slack.invalid/commands/1",
    )


def _post(
    client: TestClient, body: str, headers: dict[str, str] | None = None, kind: str = "form"
) -> Any:
    content_type = "application/json" if kind == "json" else "application/x-www-form-urlencoded"
    all_headers = {"Content-Type": content_type, **(sign(body) if headers is None else headers)}
    return client.post(EVENTS_PATH, content=body, headers=all_headers)


def _action(action_id: str, message_ts: str = "1715680000.000100") -> str:
    return block_action(action_id, "an-test-1", CHANNEL, message_ts, USER)


def _event(text: str, thread_ts: str | None) -> str:
    event = {
        "type": "app_mention",
        "user": USER,
        "text": text,
        "ts": "1715680999.000200",
        "channel": CHANNEL,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return json.dumps(
        {
            "token": "unused",
            "team_id": TEAM_ID,
            "api_app_id": "A0RCA",
            "type": "event_callback",
            "event_id": "Ev0001",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": TEAM_ID, "user_id": "U0RCABOT", "is_bot": True}],
            "event": event,
        }
    )


# --- signatures ---------------------------------------------------------------------------


def test_signed_command_acks_before_the_analysis_finishes_then_posts(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    backend.release.clear()  # the analysis "runs" until released
    response = _post(client, _command("checkout last 45m why so slow?"))
    assert response.status_code == 200
    assert "Analysing `checkout` from 10:20 to 11:05 UTC" in response.text
    assert api.calls("chat.postMessage") == []
    backend.release.set()
    posts = api.wait_for("chat.postMessage", count=2)
    ask, reply = backend.asks[0]
    assert ask == AnalysisAsk(("checkout",), NOW - timedelta(minutes=45), NOW, "why so slow?")
    assert reply == ReplyTo(CHANNEL, USER)
    top, answer = posts[0].params, posts[1].params
    assert top["channel"] == CHANNEL and "thread_ts" not in top
    assert top["blocks"][1]["text"]["text"].startswith("*Root cause:* `payments`")
    assert answer["thread_ts"] == api.top_level()[0].ts
    assert backend.threads == {(CHANNEL, api.top_level()[0].ts): backend.analysis.id}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        sign(_command("checkout"), timestamp=int(time.time()) - 301),
        sign(_command("checkout"), secret="another-secret"),
        sign(_command("payments")),  # signed a different body: tampered in transit
    ],
    ids=["unsigned", "stale", "wrong-secret", "tampered"],
)
def test_bad_signatures_get_401_and_do_nothing(
    api: SlackDouble, backend: FakeBackend, client: TestClient, headers: dict[str, str]
) -> None:
    response = _post(client, _command("checkout"), headers=headers)
    assert response.status_code == 401
    time.sleep(0.1)  # give a wrongly started handler the chance to show itself
    assert backend.asks == [] and api.calls() == []


def test_typo_gets_usage_with_suggestions_and_runs_nothing(
    backend: FakeBackend, client: TestClient
) -> None:
    text = _post(client, _command("chekout last 30m")).text
    assert "Unknown service `chekout`" in text and "Did you mean `checkout`?" in text
    assert "Known services: `checkout`, `frontend`, `payments`" in text
    assert backend.asks == []


def test_private_flag_answers_ephemerally(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    _post(client, _command("payments since 10:30 --private"))
    (call,) = api.wait_for("chat.postEphemeral")
    assert call.params["user"] == USER and call.params["channel"] == CHANNEL
    assert backend.asks[0][0].start == datetime(2024, 5, 14, 10, 30, tzinfo=UTC)
    assert api.calls("chat.postMessage") == []


def test_posts_link_the_report_through_the_publishers_report_link(
    api: SlackDouble, backend: FakeBackend
) -> None:
    """The service signs share links; the bot must use them, in channel and private answers."""
    signed = "https://rca.example.com/v1/analyses/{}/report.md?share=1716000000.c2ln"
    client = _client(
        api, backend, report_link=signed.format, public_url="https://unsigned.example.com"
    )
    _post(client, _command("payments --private"))
    (private,) = api.wait_for("chat.postEphemeral")
    _post(client, _command("payments"))
    (public,) = api.wait_for("chat.postMessage")
    for blocks in (private.params["blocks"], public.params["blocks"]):
        context = json.dumps(blocks)
        assert f"<{signed.format('an-test-1')}|full report>" in context
        assert "unsigned.example.com" not in context


def test_channel_allow_list(api: SlackDouble, backend: FakeBackend) -> None:
    client = _client(api, backend, allowed_channels=["C0PAYMENTS"])
    text = _post(client, _command("checkout")).text
    assert "not enabled in this channel" in text and backend.asks == []


# --- mentions -----------------------------------------------------------------------------


def test_mention_with_a_question_answers_from_the_stored_analysis(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    backend.threads[(CHANNEL, "1715680000.000100")] = "an-test-1"
    assert (
        _post(
            client, _event("<@U0RCABOT> what is M2?", "1715680000.000100"), kind="json"
        ).status_code
        == 200
    )
    (reply,) = api.wait_for("chat.postMessage")
    assert reply.params["thread_ts"] == "1715680000.000100"
    assert "*[M2]* checkout · http_latency_p99_seconds" in reply.params["text"]
    assert backend.asks == []


def test_answer_longer_than_a_section_keeps_every_link_whole(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    urls = [promql_link(80, tag=f"t{i}-") for i in range(3)]  # ~1,600 characters each
    backend.analysis = with_links(*urls)
    backend.threads[(CHANNEL, "1715680000.000100")] = "an-test-1"
    _post(client, _event("<@U0RCABOT> what are M1, M2 and M3?", "1715680000.000100"), kind="json")
    (reply,) = api.wait_for("chat.postMessage")
    text = reply.params["text"]
    assert text.endswith("…") and len(text) <= 3000  # the answer had to be shortened
    links = re.findall(r"<[^<>]*>", text)
    assert links and all(f"<{u}|open the source>" in links for u in urls[: len(links)])
    assert text.count("<") == text.count(">") == len(links)


def test_mention_rerun_reanalyses_and_updates_in_place(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    first = api.channels["incidents"]
    seeded = SlackPublisher(
        build_client(api.api_url, SecretStr(TOKEN), SlackSettings()), SlackSettings()
    )
    ref = seeded.post_incident(first, "incident", [{"type": "divider"}], "an-test-1")
    backend.threads[(ref.channel, ref.ts)] = "an-test-1"
    _post(client, _event("<@U0RCABOT> rerun", ref.ts), kind="json")
    (update,) = api.wait_for("chat.update")
    assert update.params["ts"] == ref.ts
    ask, reply = backend.asks[0]
    assert (ask.start, ask.end) == (backend.analysis.window.incident_start, NOW)
    assert reply.message_ts == ref.ts
    assert len(api.top_level()) == 1


def test_mention_outside_an_incident_thread_explains(api: SlackDouble, client: TestClient) -> None:
    _post(client, _event("<@U0RCABOT> hello", None), kind="json")
    (reply,) = api.wait_for("chat.postMessage")
    assert "mention me in the thread of an incident message" in reply.params["text"]


# --- buttons and the modal ----------------------------------------------------------------


def test_thumbs_up_stores_correct_feedback_attributed_to_the_user(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    assert _post(client, _action(ACTION_CORRECT)).status_code == 200
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
    return _form(payload=json.dumps(payload))


def test_thumbs_down_opens_the_modal_and_its_submission_stores_feedback(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    _post(client, _action(ACTION_WRONG))
    (opened,) = api.wait_for("views.open")
    view = opened.params["view"]
    assert opened.params["trigger_id"] == "1337.42.trigger" and view["callback_id"] == FEEDBACK_VIEW
    services = [o["value"] for o in view["blocks"][0]["element"]["options"]]
    assert services[:3] == ["payments", "checkout", "frontend"]
    faults = {o["value"] for o in view["blocks"][1]["element"]["options"]}
    assert faults == {f.value for f in FaultType}

    blocks = [b["block_id"] for b in view["blocks"]]
    assert blocks[-2:] == ["resolution", "resolution_url"]  # what fixed it, optional

    response = _post(
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
    response = _post(client, _submission(None, "cpu_saturation"))
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
    response = _post(client, hostile)
    errors = response.json()["errors"]
    assert set(errors) == {"resolution", "resolution_url"}
    assert "3000" in errors["resolution"] and "http" in errors["resolution_url"]
    assert backend.feedback == []


def test_rerun_button_widens_the_window_and_updates_the_message(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    seeded = SlackPublisher(
        build_client(api.api_url, SecretStr(TOKEN), SlackSettings()), SlackSettings()
    )
    ref = seeded.post_incident(CHANNEL, "incident", [{"type": "divider"}], "an-test-1")
    _post(client, _action(ACTION_RERUN, message_ts=ref.ts))
    (update,) = api.wait_for("chat.update")
    win = backend.analysis.window
    ask, _ = backend.asks[0]
    assert ask.end == win.end and ask.end - ask.start == 2 * (win.end - win.incident_start)
    assert update.params["ts"] == ref.ts and len(api.top_level()) == 1
    notes = [
        c.params["text"]
        for c in api.calls("chat.postMessage")
        if c.params.get("thread_ts") == ref.ts
    ]
    assert any("Re-running with a wider window" in n for n in notes)


def test_bot_refuses_to_start_without_secrets(api: SlackDouble, backend: FakeBackend) -> None:
    settings = SlackSettings()
    publisher = SlackPublisher(build_client(api.api_url, SecretStr(TOKEN), settings), settings)
    with pytest.raises(ConfigError, match="RCA_SLACK_SIGNING_SECRET"):
        build_bot(backend, publisher, None)
    tokenless = SlackPublisher(build_client(api.api_url, None, settings), settings)
    with pytest.raises(ConfigError, match="RCA_SLACK_BOT_TOKEN"):
        build_bot(backend, tokenless, SecretStr(SIGNING_SECRET))


def test_secrets_stay_out_of_the_logs(
    api: SlackDouble, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _post(client, _command("checkout"))
    _post(client, _command("checkout"), headers=sign(_command("x")))
    api.wait_for("chat.postMessage")
    assert "RequestVerification" in caplog.text and "Sending a request" in caplog.text
    assert SIGNING_SECRET not in caplog.text and TOKEN not in caplog.text
