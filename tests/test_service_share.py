"""The "full report" link of a Slack post opens for whoever reads it, and only that report.

End to end in process: an alert reaches the service's webhook, the analysis runs, the outbox
posts to the Slack Web API double through the real slack-sdk, and the test follows the link in
the posted blocks with no token, as a browser opened from Slack would. Unit tests of the
signer itself (:mod:`agent.service.share`) follow.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_support import (
    READ_TOKEN,
    WEBHOOK_TOKEN,
    auth,
    notification,
    settings_for,
    slack_settings,
    texts,
    wait_for,
)
from slack_double import SlackDouble

from agent.config import Settings
from agent.errors import ConfigError
from agent.service.app import create_app
from agent.service.share import (
    ShareLinkRefused,
    ShareSigner,
    share_key,
    share_url,
    signer_for,
)

PUBLIC = "https://rca.example.com"
LINK = re.compile(r"<(https://rca\.example\.com/[^|>]+)\|full report>")


def _fire_and_read_the_post(client: TestClient, api: SlackDouble, **alert: str) -> tuple[str, Any]:
    response = client.post(
        "/v1/alertmanager", json=notification(**alert), headers=auth(WEBHOOK_TOKEN)
    )
    assert response.status_code == 202, response.text
    analysis_id: str = response.json()["analysis_id"]
    wait_for(
        lambda: [m for m in api.top_level() if analysis_id in texts(m.blocks or [])], 60, "post"
    )
    (message,) = [m for m in api.top_level() if analysis_id in texts(m.blocks or [])]
    return analysis_id, message


def test_the_posted_report_link_opens_without_a_token_and_only_for_its_analysis(
    tmp_path: Path,
) -> None:
    with SlackDouble() as api:
        settings = slack_settings(tmp_path, api.api_url, public_url=PUBLIC)
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            first, message = _fire_and_read_the_post(client, api, group="a")
            other, _ = _fire_and_read_the_post(client, api, group="b")
            (url,) = LINK.findall(texts(message.blocks or []))
            path = url.removeprefix(PUBLIC)
            report = client.get(path)  # what a browser opened from Slack sends: no token
            analysis = client.get(f"/v1/analyses/{first}", headers=auth(READ_TOKEN)).json()
            swapped = client.get(path.replace(first, other))
            token = path.partition("?share=")[2]
            tampered = client.get(path[:-1] + ("x" if path[-1] != "x" else "y"))
            plain = client.get(path.partition("?")[0])
    assert path.startswith(f"/analyses/{first}?share=")  # the report page
    assert report.status_code == 200, report.text
    assert report.headers["content-type"].startswith("text/html")
    root = analysis["analysis"]["root_cause"]["service"]
    assert root in report.text
    header = message.blocks[0]["text"]["text"]
    assert header.endswith(f"root cause: {root}")
    # Valid for a week by default: the expiry in the token is about seven days ahead.
    expires = datetime.fromtimestamp(int(token.partition(".")[0]), UTC)
    assert timedelta(days=6.9) < expires - datetime.now(UTC) <= timedelta(days=7)
    for refused in (swapped, tampered):  # the page answers a browser in HTML
        assert refused.status_code == 401
        assert "share_link_invalid" in refused.text
    assert plain.status_code == 401


def test_without_a_public_url_posts_have_no_report_link(tmp_path: Path) -> None:
    with SlackDouble() as api, TestClient(create_app(slack_settings(tmp_path, api.api_url))) as c:
        _, message = _fire_and_read_the_post(c, api)
    assert "full report" not in texts(message.blocks or [])


# --- the signer ----------------------------------------------------------------------------

NOW = datetime(2024, 5, 14, 11, 0, tzinfo=UTC)
SIGNER = ShareSigner(b"0123456789abcdef-key")


def test_sign_then_verify_returns_the_expiry() -> None:
    token = SIGNER.sign("an-1", NOW + timedelta(hours=2))
    assert SIGNER.verify("an-1", token, NOW) == NOW + timedelta(hours=2)
    assert re.fullmatch(r"\d+\.[A-Za-z0-9_-]{43}", token)


@pytest.mark.parametrize(
    ("analysis_id", "token", "problem"),
    [
        ("an-2", SIGNER.sign("an-1", NOW + timedelta(hours=1)), "bad_signature"),
        ("an-1", ShareSigner(b"another-key-of-16+").sign("an-1", NOW), "bad_signature"),
        ("an-1", SIGNER.sign("an-1", NOW), "expired"),  # valid until, not through, expiry
        ("an-1", SIGNER.sign("an-1", NOW - timedelta(days=1)), "expired"),
        ("an-1", "", "malformed"),
        ("an-1", "123", "malformed"),
        ("an-1", "abc.def", "malformed"),
        ("an-1", "-5.def", "malformed"),
        ("an-1", "99999999999999999999.sig", "bad_signature"),
    ],
)
def test_verify_names_the_problem(analysis_id: str, token: str, problem: str) -> None:
    with pytest.raises(ShareLinkRefused) as caught:
        SIGNER.verify(analysis_id, token, NOW)
    assert caught.value.problem == problem


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        ShareSigner(b"short")


def test_key_is_the_share_secret_else_derived_from_the_first_api_token(tmp_path: Path) -> None:
    with_secret = settings_for(tmp_path / "1", service={"share_secret": "s" * 20})
    derived = settings_for(tmp_path / "2")
    rotated = settings_for(tmp_path / "3", api_tokens=["rotated-token-1:write"])
    open_api = settings_for(tmp_path / "4", api_tokens=[])
    assert share_key(with_secret) == b"s" * 20
    assert share_key(derived) not in (None, b"s" * 20)
    assert share_key(derived) != share_key(rotated)  # rotating the token voids the links
    assert share_key(open_api) is None and signer_for(open_api) is None


def test_share_url_is_signed_only_where_the_api_needs_tokens(tmp_path: Path) -> None:
    signed = settings_for(tmp_path / "1", slack={"public_url": PUBLIC + "/"})
    open_api = settings_for(tmp_path / "2", api_tokens=[], slack={"public_url": PUBLIC})
    url = share_url(signed, "an-1", NOW)
    assert url is not None and url.startswith(f"{PUBLIC}/analyses/an-1?share=")
    signer = signer_for(signed)
    assert signer is not None
    assert signer.verify("an-1", url.partition("share=")[2], NOW) == NOW + timedelta(days=7)
    assert share_url(open_api, "an-1", NOW) == f"{PUBLIC}/analyses/an-1"
    assert share_url(Settings(data_dir=tmp_path), "an-1", NOW) is None


def test_settings_check_the_secret_and_the_lifetime(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 16 characters"):
        settings_for(tmp_path / "1", service={"share_secret": "too-short"})
    with pytest.raises(ConfigError, match="share_ttl_hours"):
        settings_for(tmp_path / "2", service={"share_ttl_hours": 0})
    hours = settings_for(tmp_path / "3", service={"share_ttl_hours": 24}).service.share_ttl_hours
    assert hours == 24
