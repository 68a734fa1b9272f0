"""Slack settings: label routes, the channel allow-list, the time zone."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectors.slack_settings import SlackSettings


def _settings() -> SlackSettings:
    return SlackSettings.model_validate(
        {
            "default_channel": "C0INCIDENTS",
            "routes": [
                {"match": {"team": "payments", "severity": "crit*"}, "channel": "C0PAYPAGE"},
                {"match": {"team": "payments"}, "channel": "C0PAYMENTS"},
            ],
        }
    )


def test_first_matching_route_wins_and_all_labels_must_match() -> None:
    settings = _settings()
    assert settings.channel_for({"team": "payments", "severity": "critical"}) == "C0PAYPAGE"
    assert settings.channel_for({"team": "payments", "severity": "warning"}) == "C0PAYMENTS"
    assert settings.channel_for({"severity": "critical"}) == "C0INCIDENTS"


def test_allow_list_empty_means_everywhere() -> None:
    assert SlackSettings().allows("C0ANY")
    assert not SlackSettings(allowed_channels=["C0A"]).allows("C0B")


def test_unknown_time_zone_and_empty_route_are_rejected() -> None:
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        SlackSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="match"):
        SlackSettings.model_validate({"routes": [{"match": {}, "channel": "C0X"}]})
