"""What an on-call engineer clicks and reads first: evidence links arrive whole, and the header
says whether its service is the root cause or only where the alert fired.

Through the real slack-sdk ``WebClient`` against the Slack Web API double, so the assertions
are on the blocks Slack would receive. The links are real Prometheus graph URLs with a long
PromQL query, which is where cutting hurt: a URL cut mid-query opens a different query.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import build_analysis
from pydantic import SecretStr
from slack_double import TOKEN, SlackDouble
from slack_evidence import promql_link, with_links

from agent.models import Analysis
from agent.slack.blocks import BULLET_TEXT, LINK_TEXT, IncidentView, incident_blocks
from agent.slack.limits import SECTION_TEXT, clip_mrkdwn, escape, link, problems
from agent.slack.publish import publish_incident
from connectors.slack import SlackPublisher, build_client
from connectors.slack_settings import SlackSettings


def sections(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def bullet(blocks: list[dict[str, Any]], evidence_id: str) -> str:
    """The one evidence bullet of ``evidence_id`` (the timeline cites ids too)."""
    (line,) = [
        line
        for text in sections(blocks)
        for line in text.splitlines()
        if line.startswith(f"• *[{evidence_id}]*")
    ]
    return line


def all_text(blocks: list[dict[str, Any]]) -> str:
    out = sections(blocks)
    out += [e["text"] for b in blocks if b["type"] == "context" for e in b["elements"]]
    return "\n".join(out)


@pytest.fixture
def api() -> Iterator[SlackDouble]:
    with SlackDouble() as double:
        yield double


@pytest.fixture
def publisher(api: SlackDouble) -> SlackPublisher:
    settings = SlackSettings(default_channel="C0INCIDENTS", backoff_s=0.01)
    return SlackPublisher(build_client(api.api_url, SecretStr(TOKEN), settings), settings)


def posted(api: SlackDouble, publisher: SlackPublisher, analysis: Analysis) -> dict[str, Any]:
    assert publish_incident(publisher, analysis, None, None) is not None
    (call,) = api.calls("chat.postMessage")
    params: dict[str, Any] = call.params
    return params


# --- links --------------------------------------------------------------------------------


def test_a_long_promql_link_arrives_whole(api: SlackDouble, publisher: SlackPublisher) -> None:
    url = promql_link(40)
    assert BULLET_TEXT < len(url) < LINK_TEXT  # longer than the old clip, short enough to keep
    blocks = posted(api, publisher, with_links(url))["blocks"]
    (bullet,) = [
        line
        for text in sections(blocks)
        for line in text.splitlines()
        if line.startswith("• *[M1]*")
    ]
    assert bullet.endswith(" · " + link(url, "Prometheus graph"))
    assert "baseline" in bullet and "onset" in bullet  # the words are still there
    assert problems(blocks) == []


def test_five_long_links_spill_into_more_sections_all_whole(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    urls = [promql_link(100, tag=f"t{i}-") for i in range(5)]  # ~2,000 characters each
    blocks = posted(api, publisher, with_links(*urls))["blocks"]
    texts = sections(blocks)
    for url in urls:
        assert sum(link(url, "Prometheus graph") in t for t in texts) == 1
    evidence = [t for t in texts if "• *[M" in t]
    assert evidence[0].startswith("*Evidence*") and len(evidence) == 5
    assert all(len(t) <= SECTION_TEXT for t in texts)
    order = re.findall(r"\[(M\d)\]", "\n".join(evidence))
    assert order == ["M1", "M2", "M3", "M4", "M5"]
    assert problems(blocks) == []


def test_a_link_longer_than_any_section_is_left_out_whole(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    url = promql_link(250)
    assert len(url) > SECTION_TEXT
    blocks = posted(api, publisher, with_links(url, promql_link(5)))["blocks"]
    text = all_text(blocks)
    assert "graph?g0.expr" not in text.replace(link(promql_link(5), "Prometheus graph"), "")
    assert "_link too long for Slack, in the full report_" in text
    assert "(truncated) evidence links too long for Slack" in text
    assert link(promql_link(5), "Prometheus graph") in text  # the other link is kept
    assert problems(blocks) == []


def test_long_evidence_words_give_way_but_the_link_stays() -> None:
    url = promql_link(30)
    analysis = with_links(url)
    long_name = analysis.evidence[0].model_copy(update={"signal": "x" * 2000})
    blocks = incident_blocks(analysis.model_copy(update={"evidence": [long_name]}), IncidentView())
    (bullet,) = [
        line for t in sections(blocks) for line in t.splitlines() if line.startswith("• *[M1]*")
    ]
    words, _, rest = bullet.partition(" · <")
    assert words.endswith("…") and len(words) <= BULLET_TEXT
    assert "<" + rest == link(url, "Prometheus graph")


@pytest.mark.parametrize("limit", range(1, 60))
def test_clip_mrkdwn_never_ends_inside_a_link_or_an_entity(limit: int) -> None:
    text = "a &amp; b <http://prom/graph?g0=x|graph> c " + escape("<x>")
    out, cut = clip_mrkdwn(text, limit)
    assert len(out) <= max(limit, 1) and cut == (len(text) > limit)
    body = out.removesuffix("…")
    assert body.count("<") == body.count(">")
    assert not re.search(r"&[a-z]*$", body)
    assert "<http" not in body or "<http://prom/graph?g0=x|graph>" in body


# --- the header ---------------------------------------------------------------------------


def test_header_names_the_root_cause_in_words(api: SlackDouble, publisher: SlackPublisher) -> None:
    params = posted(api, publisher, build_analysis())
    header = params["blocks"][0]["text"]["text"]
    assert header == "🔴 CheckoutLatencyHigh · root cause: payments"
    assert params["text"] == header + " (memory_leak, confidence 0.83)"


def test_header_names_the_alerting_service_when_no_root_cause_is_named(
    api: SlackDouble, publisher: SlackPublisher
) -> None:
    base = build_analysis()
    # A best guess with too little evidence: the header must not present it as the cause.
    unsure = base.model_copy(
        update={
            "insufficient_evidence": True,
            "confidence": 0.2,
            "trigger": base.trigger.model_copy(update={"services": ["checkout"]}),
        }
    )
    params = posted(api, publisher, unsure)
    header = params["blocks"][0]["text"]["text"]
    assert header == "🔴 CheckoutLatencyHigh · alert: checkout"
    assert "payments" not in header and "root cause:" not in params["text"]
    assert "insufficient evidence" in params["text"]
    assert "*Insufficient evidence*" in params["blocks"][1]["text"]["text"]
