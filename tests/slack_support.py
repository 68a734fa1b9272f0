"""The bolt bot under test, shared by test_slack_bot.py (commands, mentions, buttons) and
test_slack_feedback.py (the feedback modal).

Slack's side of the conversation is played twice: requests *to* the bot are built here and
signed with a test secret; the bot's calls *to* Slack go to the Web API double. The bot
acks first and works afterwards, so tests wait for the double to record the later calls.

A test module takes the fixtures by importing them: pytest finds a fixture by the module's
attributes, and ``name=`` keeps the test arguments from shadowing the imported names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from conftest import build_analysis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from slack_double import SIGNING_SECRET, TOKEN, SlackDouble, block_action, sign

from agent.errors import RcaError
from agent.models import Analysis
from agent.slack.backend import AnalysisAsk, ReplyTo
from agent.slack.bot import build_bot
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


@pytest.fixture(name="api")
def api_fixture() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


@pytest.fixture(name="backend")
def backend_fixture() -> FakeBackend:
    return FakeBackend()


def bot_client(
    api: SlackDouble,
    backend: FakeBackend,
    report_link: ReportLink | None = None,
    **changes: Any,
) -> TestClient:
    """The bot mounted in FastAPI, talking to ``api``; ``changes`` are Slack settings."""
    settings = SlackSettings.model_validate(
        {"default_channel": CHANNEL, "backoff_s": 0.01, **changes}
    )
    client = build_client(api.api_url, SecretStr(TOKEN), settings)
    publisher = SlackPublisher(client, settings, report_link=report_link)
    bot = build_bot(backend, publisher, SecretStr(SIGNING_SECRET), poll_s=0.01, now=lambda: NOW)
    app = FastAPI()
    app.include_router(slack_router(bot, SIGNING_SECRET))
    return TestClient(app)


@pytest.fixture(name="client")
def client_fixture(api: SlackDouble, backend: FakeBackend) -> TestClient:
    return bot_client(api, backend)


def form(**fields: str) -> str:
    return urlencode(fields)


def post(
    client: TestClient, body: str, headers: dict[str, str] | None = None, kind: str = "form"
) -> Any:
    """Send ``body`` to the bot, signed unless ``headers`` says otherwise."""
    content_type = "application/json" if kind == "json" else "application/x-www-form-urlencoded"
    all_headers = {"Content-Type": content_type, **(sign(body) if headers is None else headers)}
    return client.post(EVENTS_PATH, content=body, headers=all_headers)


def action(action_id: str, message_ts: str = "1715680000.000100") -> str:
    """A click on one of the buttons under the fixture's incident post, by ``USER``."""
    return block_action(action_id, "an-test-1", CHANNEL, message_ts, USER)
