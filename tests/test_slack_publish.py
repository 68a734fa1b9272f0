"""Posting through the real slack-sdk ``WebClient`` against the Slack Web API double."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from conftest import build_analysis
from pydantic import SecretStr
from slack_double import TOKEN, SlackDouble
from slack_sdk.http_retry.response import HttpResponse

from agent.errors import SourceError
from agent.models import Analysis, FaultType, RootCause
from agent.slack.blocks import incident_blocks
from agent.slack.publish import chart_png, incident_view, publish_incident
from agent.snapshot import Snapshot
from connectors.alertmanager import AlertmanagerWebhook
from connectors.slack import (
    RetryAfterHandler,
    SlackError,
    SlackPublisher,
    SlackRef,
    build_client,
)
from connectors.slack_settings import ChannelRoute, SlackSettings

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
GROUP_KEY = '{}:{alertname="CheckoutLatencyHigh"}'


def _alert(status: str = "firing", **labels: str) -> AlertmanagerWebhook:
    common = {"alertname": "CheckoutLatencyHigh", "service": "checkout", **labels}
    return AlertmanagerWebhook.model_validate(
        {
            "version": "4",
            "groupKey": GROUP_KEY,
            "status": status,
            "receiver": "rca",
            "groupLabels": {"alertname": "CheckoutLatencyHigh"},
            "commonLabels": common,
            "alerts": [
                {
                    "status": status,
                    "labels": common,
                    "startsAt": datetime(2024, 5, 14, 10, 44, tzinfo=UTC).isoformat(),
                }
            ],
        }
    )


def _analysis() -> Analysis:
    base = build_analysis()
    return base.model_copy(
        update={"trigger": base.trigger.model_copy(update={"group_key": GROUP_KEY})}
    )


@pytest.fixture
def api() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


@pytest.fixture
def waits() -> list[float]:
    return []


def _settings(**changes: object) -> SlackSettings:
    values: dict[str, object] = {
        "default_channel": "C0INCIDENTS",
        "routes": [ChannelRoute(match={"team": "pay*"}, channel="#payments-oncall")],
        "public_url": "https://rca.example.com",
        "backoff_s": 0.01,
        **changes,
    }
    return SlackSettings.model_validate(values)


def _publisher(url: str, waits: list[float], **changes: object) -> SlackPublisher:
    settings = _settings(**changes)
    client = build_client(url, SecretStr(TOKEN), settings, sleep=waits.append)
    return SlackPublisher(client, settings)


@pytest.fixture
def publisher(api: SlackDouble, waits: list[float]) -> SlackPublisher:
    return _publisher(api.api_url, waits)


def test_first_post_is_routed_by_labels_with_blocks_and_metadata(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    alert = _alert(team="payments", severity="critical")
    ref = publish_incident(publisher, _analysis(), alert, None)
    assert ref is not None and ref.channel == "C0PAYMENTS"
    (call,) = api.calls("chat.postMessage")
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.params["channel"] == "#payments-oncall"
    view = incident_view(alert, "https://rca.example.com/analyses/an-test-1", UTC)  # the page
    assert call.params["blocks"] == incident_blocks(_analysis(), view)
    assert "root cause: payments (memory_leak, confidence 0.83)" in call.params["text"]
    assert call.params["metadata"] == {
        "event_type": "rca_incident",
        "event_payload": {"incident_key": GROUP_KEY},
    }
    assert [m.ts for m in api.top_level()] == [ref.ts]


def test_unrouted_labels_use_the_default_channel_or_are_skipped(
    api: SlackDouble, waits: list[float]
) -> None:
    publisher = _publisher(api.api_url, waits)
    ref = publish_incident(publisher, _analysis(), _alert(team="search"), None)
    assert ref is not None and ref.channel == "C0INCIDENTS"
    silent = _publisher(api.api_url, waits, default_channel=None, routes=[])
    assert publish_incident(silent, _analysis(), _alert(), None) is None
    assert len(api.calls("chat.postMessage")) == 1


def test_chart_is_uploaded_into_the_thread_with_files_upload_v2(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    ref = publish_incident(publisher, _analysis(), _alert(), None, chart=PNG)
    assert ref is not None
    (url_call,) = api.calls("files.getUploadURLExternal")
    assert url_call.params["filename"] == "an-test-1-evidence.png"
    assert int(url_call.params["length"]) == len(PNG)
    (upload,) = api.calls("upload")
    assert upload.raw == PNG
    (complete,) = api.calls("files.completeUploadExternal")
    assert complete.params["channel_id"] == ref.channel
    assert complete.params["thread_ts"] == ref.ts
    assert complete.params["files"] == [{"id": upload.params["file_id"], "title": "Evidence chart"}]


def test_oversized_chart_is_noted_in_the_thread_not_dropped(
    api: SlackDouble, waits: list[float]
) -> None:
    publisher = _publisher(api.api_url, waits, max_upload_bytes=100)
    ref = publish_incident(publisher, _analysis(), _alert(), None, chart=PNG)
    assert ref is not None and api.calls("files.getUploadURLExternal") == []
    replies = [c for c in api.calls("chat.postMessage") if c.params.get("thread_ts") == ref.ts]
    assert "chart not uploaded: 2,056 bytes is over the 100-byte limit" in replies[0].params["text"]


def test_a_failed_chart_upload_keeps_the_post(api: SlackDouble, publisher: SlackPublisher) -> None:
    api.fail("files.getUploadURLExternal", error="not_allowed_token_type")
    ref = publish_incident(publisher, _analysis(), _alert(), None, chart=PNG)
    assert ref is not None and [m.ts for m in api.top_level()] == [ref.ts]


def test_stored_ref_updates_in_place_and_resolution_replies_in_thread(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    first = publish_incident(publisher, _analysis(), _alert(), None)
    assert first is not None
    again = publish_incident(
        publisher, _analysis(), _alert("resolved"), first, previous=_analysis()
    )
    assert again == first
    assert len(api.top_level()) == 1
    (update,) = api.calls("chat.update")
    assert (update.params["channel"], update.params["ts"]) == (first.channel, first.ts)
    assert update.params["blocks"][0]["text"]["text"].startswith("✅ Resolved: CheckoutLatencyHigh")
    (reply,) = [c for c in api.calls("chat.postMessage") if c.params.get("thread_ts")]
    assert reply.params["thread_ts"] == first.ts and "resolved" in reply.params["text"]


def test_report_link_comes_from_the_publisher_fresh_on_every_update(
    api: SlackDouble, waits: list[float]
) -> None:
    signed = iter(["1716000000.first", "1716090000.second"])
    publisher = _publisher(api.api_url, waits)
    publisher.report_link = lambda analysis_id: (
        f"https://r.example/{analysis_id}?share={next(signed)}"
    )
    ref = publish_incident(publisher, _analysis(), _alert(), None)
    publish_incident(publisher, _analysis(), _alert("resolved"), ref, previous=_analysis())
    (post,) = api.calls("chat.postMessage")[:1]
    (update,) = api.calls("chat.update")
    context = json.dumps(post.params["blocks"][-2])
    assert "<https://r.example/an-test-1?share=1716000000.first|full report>" in context
    assert "rca.example.com" not in context  # the plain (401) API link is not used
    assert "share=1716090000.second|full report>" in json.dumps(update.params["blocks"])


def test_reanalysis_reply_says_what_changed(api: SlackDouble, publisher: SlackPublisher) -> None:
    before = _analysis()
    ref = publish_incident(publisher, before, _alert(), None)
    after = before.model_copy(
        update={
            "confidence": 0.55,
            "root_cause": RootCause(
                service="checkout", fault_type=FaultType.NETWORK_LATENCY, summary="s"
            ),
        }
    )
    publish_incident(publisher, after, _alert(), ref, previous=before, chart=PNG)
    reply = next(c for c in api.calls("chat.postMessage") if c.params.get("thread_ts"))
    assert (
        "Root cause changed: `payments` (memory_leak) → `checkout` (network_latency)"
        in reply.params["text"]
    )
    assert "Confidence 0.83, high → 0.55, medium" in reply.params["text"]
    assert len(api.calls("files.completeUploadExternal")) == 1
    assert len(api.top_level()) == 1


def test_429_retry_after_is_honoured(
    api: SlackDouble, publisher: SlackPublisher, waits: list[float]
) -> None:
    api.fail("chat.postMessage", status=429, retry_after="2")
    ref = publish_incident(publisher, _analysis(), _alert(), None)
    assert ref is not None
    assert len(api.calls("chat.postMessage")) == 2
    assert len(waits) == 1 and 2.0 <= waits[0] <= 2.1
    assert len(api.top_level()) == 1


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"Retry-After": ["30"]}, 30.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"Retry-After": ["0"]}, 0.0),  # now, not the 1 s default
        ({"Retry-After": ["-5"]}, 0.0),
        ({"Retry-After": ["Wed, 21 Oct 2026 07:28:00 GMT"]}, 1.0),  # a date: the default
        ({}, 1.0),
    ],
)
def test_the_wait_a_429_asks_for_is_read_in_any_form(
    headers: dict[str, object], wait: float
) -> None:
    response = HttpResponse(status_code=429, headers=headers)  # type: ignore[arg-type]
    assert RetryAfterHandler.retry_after(response) == wait


def test_retry_after_beyond_the_cap_fails_fast_and_retryable(
    api: SlackDouble, publisher: SlackPublisher, waits: list[float]
) -> None:
    api.fail("chat.postMessage", status=429, retry_after="120")
    with pytest.raises(SlackError) as caught:
        publish_incident(publisher, _analysis(), _alert(), None)
    assert caught.value.retryable and caught.value.code == "ratelimited"
    assert caught.value.retry_after_s == 120.0  # the outbox must not retry sooner
    assert waits == [] and len(api.calls("chat.postMessage")) == 1
    assert api.top_level() == []


def test_lost_answer_is_recovered_from_metadata_not_reposted(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    api.fail("chat.postMessage", status=500, processed=True)
    ref = publish_incident(publisher, _analysis(), _alert(), None)
    (posted,) = api.top_level()
    assert ref == SlackRef(posted.channel, posted.ts)
    assert len(api.calls("chat.postMessage")) == 1
    assert len(api.calls("conversations.history")) == 1


def test_recover_finds_an_earlier_post_before_posting(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    first = publish_incident(publisher, _analysis(), _alert(), None)
    second = publish_incident(publisher, _analysis(), _alert(), None, recover=True)
    assert second == first and len(api.top_level()) == 1


def test_update_is_retried_on_server_errors(
    api: SlackDouble, publisher: SlackPublisher, waits: list[float]
) -> None:
    ref = publish_incident(publisher, _analysis(), _alert(), None)
    assert ref is not None
    api.fail("chat.update", status=503, times=2)
    assert publish_incident(publisher, _analysis(), _alert("resolved"), ref) == ref
    assert len(api.calls("chat.update")) == 3 and len(waits) == 2


def test_slack_down_is_a_recordable_source_error(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    api.set_down(True)
    with pytest.raises(SourceError) as caught:
        publish_incident(publisher, _analysis(), _alert(), None)
    error = caught.value
    assert isinstance(error, SlackError) and error.retryable and error.source == "slack"
    assert str(error).startswith("slack: chat.postMessage failed") and "503" in str(error)
    api.set_down(False)
    assert publish_incident(publisher, _analysis(), _alert(), None) is not None
    assert len(api.top_level()) == 1


def test_unreachable_slack_is_a_recordable_source_error(waits: list[float]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    publisher = _publisher(f"http://127.0.0.1:{port}/api/", waits, retries=1)
    with pytest.raises(SlackError, match="cannot reach Slack") as caught:
        publish_incident(publisher, _analysis(), _alert(), None)
    assert caught.value.retryable and len(waits) == 1


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        ({"error": "channel_not_found"}, "channel_not_found"),
        ({"error": "invalid_auth"}, "invalid_auth"),
    ],
)
def test_permanent_errors_are_not_retried(
    api: SlackDouble, publisher: SlackPublisher, failure: dict[str, str], code: str
) -> None:
    api.fail("chat.postMessage", **failure)
    with pytest.raises(SlackError) as caught:
        publish_incident(publisher, _analysis(), _alert(), None)
    assert caught.value.code == code and not caught.value.retryable
    assert len(api.calls("chat.postMessage")) == 1


def test_a_wrong_token_is_reported_by_slack_code(api: SlackDouble, waits: list[float]) -> None:
    settings = _settings()
    client = build_client(api.api_url, SecretStr("xoxb-wrong"), settings, sleep=waits.append)
    with pytest.raises(SlackError, match="invalid_auth"):
        publish_incident(SlackPublisher(client, settings), _analysis(), _alert(), None)


def test_secrets_never_reach_logs_or_messages(
    api: SlackDouble, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    publisher = _publisher(api.api_url, waits)
    ref = publish_incident(publisher, _analysis(), _alert(), None, chart=PNG)
    api.fail("chat.update", status=429, retry_after="1")
    publish_incident(publisher, _analysis(), _alert("resolved"), ref)
    api.set_down(True)
    with pytest.raises(SlackError):
        publish_incident(publisher, _analysis(), _alert(), None)
    assert "slack_sdk" in caplog.text  # the client's debug log was captured
    assert TOKEN not in caplog.text
    for call in api.calls():
        assert TOKEN.encode() not in call.raw


def test_the_evidence_chart_renders_and_uploads(
    api: SlackDouble, publisher: SlackPublisher, snapshot: Snapshot
) -> None:
    png = chart_png(_analysis(), snapshot)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    publish_incident(publisher, _analysis(), _alert(), None, chart=png)
    (upload,) = api.calls("upload")
    assert upload.raw == png
