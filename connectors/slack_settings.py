"""Settings of the Slack integration: where incident posts go, how hard to retry, who may ask.

The API URL and the secrets live at the top level of :class:`agent.config.Settings`
(``RCA_SLACK_API_URL``, ``RCA_SLACK_BOT_TOKEN``, ``RCA_SLACK_SIGNING_SECRET``); everything
else sits under ``slack:`` in the YAML file or ``RCA_SLACK__*`` in the environment. Plain
pydantic: importing this module pulls no Slack library.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_API_URL = "https://slack.com/api/"


class ChannelRoute(BaseModel):
    """Alerts whose labels match every ``match`` entry (shell globs) go to ``channel``."""

    model_config = ConfigDict(extra="forbid")

    match: dict[str, str] = Field(
        min_length=1,
        description='label globs, all must match, e.g. {team: payments, severity: "crit*"}',
    )
    channel: str = Field(min_length=1, description="channel ID (C0123...) or #name")

    def matches(self, labels: dict[str, str]) -> bool:
        return all(
            key in labels and fnmatchcase(labels[key], pattern)
            for key, pattern in self.match.items()
        )


class SlackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    default_channel: str | None = Field(
        None,
        description="channel for incidents no route matches; none: such incidents are not posted",
    )
    routes: list[ChannelRoute] = Field(
        default_factory=list, description="label-based channel routes; the first match wins"
    )
    allowed_channels: list[str] = Field(
        default_factory=list,
        description="channel IDs where /rca, mentions and buttons work; empty: everywhere",
    )
    public_url: str | None = Field(
        None, description="base URL people reach the rca API at, for report links in posts"
    )
    timezone: str = Field(
        "UTC", description="IANA zone for clock times in /rca (since 14:05) and in posts"
    )
    timeout_s: float = Field(10.0, gt=0, description="per-request timeout of the Web API")
    retries: int = Field(
        3, ge=0, le=10, description="retries of a request that got 429, 5xx or failed to connect"
    )
    backoff_s: float = Field(
        0.5, ge=0, description="first retry delay after a 5xx or connection failure; doubles"
    )
    max_retry_after_s: float = Field(
        30.0,
        ge=0,
        description="longest 429 Retry-After waited in-process; longer ones fail the attempt",
    )
    max_upload_bytes: int = Field(
        5_000_000, ge=1, description="largest evidence chart uploaded; larger ones are noted"
    )
    chart: bool = Field(True, description="upload the evidence chart into the incident thread")
    analysis_wait_s: float = Field(
        600.0, gt=0, description="how long /rca and re-runs wait for their analysis"
    )
    outbox_backoff_s: float = Field(
        5.0,
        gt=0,
        description="wait before retrying an incident post Slack did not take; doubles",
    )
    outbox_max_backoff_s: float = Field(
        300.0, gt=0, description="longest wait between retries of a pending incident post"
    )
    app_token: SecretStr | None = Field(
        None,
        description="app-level token (xapp-...) for Socket Mode; set: rca serve connects to "
        "Slack over a WebSocket instead of waiting at /slack/events",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (an IANA name, e.g. Europe/Berlin)"
            ) from None
        return value

    def channel_for(self, labels: dict[str, str]) -> str | None:
        """The channel an incident with these alert labels is posted to."""
        route = next((r for r in self.routes if r.matches(labels)), None)
        return route.channel if route else self.default_channel

    def allows(self, channel: str) -> bool:
        return not self.allowed_channels or channel in self.allowed_channels
