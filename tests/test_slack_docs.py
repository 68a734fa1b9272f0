"""docs/slack.md: the app manifest pastes into Slack and covers what the code calls."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from agent.slack.transport import EVENTS_PATH
from connectors.slack_settings import SlackSettings

DOC = Path(__file__).parent.parent / "docs" / "slack.md"


def _yaml_blocks() -> list[dict]:
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_manifest_routes_everything_to_the_events_endpoint_with_needed_scopes() -> None:
    manifest = _yaml_blocks()[0]
    (command,) = manifest["features"]["slash_commands"]
    settings = manifest["settings"]
    urls = [
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    ]
    assert command["command"] == "/rca" and all(u.endswith(EVENTS_PATH) for u in urls)
    assert settings["event_subscriptions"]["bot_events"] == ["app_mention"]
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {"chat:write", "commands", "app_mentions:read", "files:write", "channels:history"}
    assert needed <= scopes


def test_documented_settings_example_is_valid_and_every_setting_is_listed() -> None:
    example = _yaml_blocks()[1]
    SlackSettings.model_validate(example["slack"])
    text = DOC.read_text()
    for name in SlackSettings.model_fields:
        assert f"`slack.{name}`" in text, name
