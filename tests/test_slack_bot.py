"""The bolt bot, mounted in FastAPI, driven by signed (and badly signed) Slack requests:
slash commands, mentions, the rerun button (the feedback modal: test_slack_feedback.py).

The bot, its scripted backend and the request builders are in slack_support.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from slack_double import SIGNING_SECRET, TEAM_ID, TOKEN, SlackDouble, sign
from slack_evidence import promql_link, with_links
from slack_support import (  # noqa: F401 (pytest finds the *_fixture names here)
    CHANNEL,
    NOW,
    USER,
    FakeBackend,
    action,
    api_fixture,
    backend_fixture,
    bot_client,
    client_fixture,
    form,
    post,
)

from agent.errors import ConfigError
from agent.slack.backend import AnalysisAsk, ReplyTo
from agent.slack.blocks import ACTION_RERUN
from agent.slack.bot import build_bot
from connectors.slack import SlackPublisher, build_client
from connectors.slack_settings import SlackSettings


def _command(text: str, channel: str = CHANNEL) -> str:
    return form(
        command="/rca",
        text=text,
        channel_id=channel,
        user_id=USER,
        team_id=TEAM_ID,
        trigger_id="1337.42.abcd",
        response_url="https://hooks.slack.invalid/commands/1",
    )


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
    response = post(client, _command("checkout last 45m why so slow?"))
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
    response = post(client, _command("checkout"), headers=headers)
    assert response.status_code == 401
    time.sleep(0.1)  # give a wrongly started handler the chance to show itself
    assert backend.asks == [] and api.calls() == []


def test_typo_gets_usage_with_suggestions_and_runs_nothing(
    backend: FakeBackend, client: TestClient
) -> None:
    text = post(client, _command("chekout last 30m")).text
    assert "Unknown service `chekout`" in text and "Did you mean `checkout`?" in text
    assert "Known services: `checkout`, `frontend`, `payments`" in text
    assert backend.asks == []


def test_private_flag_answers_ephemerally(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    post(client, _command("payments since 10:30 --private"))
    (call,) = api.wait_for("chat.postEphemeral")
    assert call.params["user"] == USER and call.params["channel"] == CHANNEL
    assert backend.asks[0][0].start == datetime(2024, 5, 14, 10, 30, tzinfo=UTC)
    assert api.calls("chat.postMessage") == []


def test_posts_link_the_report_through_the_publishers_report_link(
    api: SlackDouble, backend: FakeBackend
) -> None:
    """The service signs share links; the bot must use them, in channel and private answers."""
    signed = "https://rca.example.com/v1/analyses/{}/report.md?share=1716000000.c2ln"
    client = bot_client(
        api, backend, report_link=signed.format, public_url="https://unsigned.example.com"
    )
    post(client, _command("payments --private"))
    (private,) = api.wait_for("chat.postEphemeral")
    post(client, _command("payments"))
    (public,) = api.wait_for("chat.postMessage")
    for blocks in (private.params["blocks"], public.params["blocks"]):
        context = json.dumps(blocks)
        assert f"<{signed.format('an-test-1')}|full report>" in context
        assert "unsigned.example.com" not in context


def test_channel_allow_list(api: SlackDouble, backend: FakeBackend) -> None:
    client = bot_client(api, backend, allowed_channels=["C0PAYMENTS"])
    text = post(client, _command("checkout")).text
    assert "not enabled in this channel" in text and backend.asks == []


# --- mentions -----------------------------------------------------------------------------


def test_mention_with_a_question_answers_from_the_stored_analysis(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    backend.threads[(CHANNEL, "1715680000.000100")] = "an-test-1"
    assert (
        post(
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
    post(client, _event("<@U0RCABOT> what are M1, M2 and M3?", "1715680000.000100"), kind="json")
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
    post(client, _event("<@U0RCABOT> rerun", ref.ts), kind="json")
    (update,) = api.wait_for("chat.update")
    assert update.params["ts"] == ref.ts
    ask, reply = backend.asks[0]
    assert (ask.start, ask.end) == (backend.analysis.window.incident_start, NOW)
    assert reply.message_ts == ref.ts
    assert len(api.top_level()) == 1


def test_mention_outside_an_incident_thread_explains(api: SlackDouble, client: TestClient) -> None:
    post(client, _event("<@U0RCABOT> hello", None), kind="json")
    (reply,) = api.wait_for("chat.postMessage")
    assert "mention me in the thread of an incident message" in reply.params["text"]


# --- the rerun button, secrets -------------------------------------------------------------


def test_rerun_button_widens_the_window_and_updates_the_message(
    api: SlackDouble, backend: FakeBackend, client: TestClient
) -> None:
    seeded = SlackPublisher(
        build_client(api.api_url, SecretStr(TOKEN), SlackSettings()), SlackSettings()
    )
    ref = seeded.post_incident(CHANNEL, "incident", [{"type": "divider"}], "an-test-1")
    post(client, action(ACTION_RERUN, message_ts=ref.ts))
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
    post(client, _command("checkout"))
    post(client, _command("checkout"), headers=sign(_command("x")))
    api.wait_for("chat.postMessage")
    assert "RequestVerification" in caplog.text and "Sending a request" in caplog.text
    assert SIGNING_SECRET not in caplog.text and TOKEN not in caplog.text
