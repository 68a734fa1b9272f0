"""Settings of the HTTP service (``rca serve``). The database URL and the tokens live at the
top level of :class:`agent.config.Settings` (``RCA_DATABASE_URL``, ``RCA_API_TOKENS``,
``RCA_WEBHOOK_TOKEN``); the rest sits under ``service:`` / ``RCA_SERVICE__*``.

API tokens are written ``TOKEN:SCOPE`` with SCOPE ``read`` or ``write`` (write includes
read); a bare ``TOKEN`` means ``write``. In the environment they are comma separated
(``RCA_API_TOKENS=ops-ro:read,ci-bot:write``); in YAML a list of such strings.

``service.share_secret`` (``RCA_SERVICE__SHARE_SECRET``) keys the signed, expiring share
links of :mod:`agent.service.share`; they admit reading one analysis without a token.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

TokenScope = Literal["read", "write"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["json", "text"]


class ApiToken(BaseModel):
    """One bearer token accepted by the API, and what it may do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr
    scope: TokenScope = "write"

    @field_validator("token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("an API token needs at least 8 characters")
        return value

    def allows(self, needed: TokenScope) -> bool:
        return self.scope == "write" or needed == "read"


def parse_api_tokens(value: Any) -> Any:
    """``"a:read,b"`` or ``["a:read", "b"]`` -> ApiToken dicts; the rest is left to pydantic."""
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    if not isinstance(value, list):
        return value
    parsed: list[Any] = []
    for item in value:
        if isinstance(item, SecretStr):
            item = item.get_secret_value()
        if isinstance(item, str):
            token, _, scope = item.strip().rpartition(":")
            if not token or scope not in ("read", "write"):
                token, scope = item.strip(), "write"
            parsed.append({"token": token, "scope": scope})
        else:
            parsed.append(item)
    return parsed


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port to listen on (0: any free port)")
    workers: int = Field(2, ge=1, le=64, description="analyses run at the same time")
    analysis_budget_s: float = Field(
        120.0, gt=0, description="time budget of one analysis; over it the job fails"
    )
    lease_grace_s: float = Field(
        30.0,
        gt=0,
        description="a job's lease is the budget plus this; then another worker may take it",
    )
    max_attempts: int = Field(
        3, ge=1, description="claims of one job (crashes, transient errors) before it fails"
    )
    retry_backoff_s: float = Field(
        5.0, ge=0, description="wait before retrying a job after a transient error"
    )
    poll_interval_s: float = Field(
        1.0, gt=0, description="how often idle workers look for jobs queued by other replicas"
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="largest request body accepted (413 above)"
    )
    read_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="a request's head, and then its body, must arrive within this; else the "
        "connection is closed (408 once the head is in), so stalled clients cannot hold it",
    )
    page_size: int = Field(50, ge=1, le=500, description="default page size of GET /v1/analyses")
    charts: bool = Field(True, description="render the evidence chart (PNG) of each analysis")
    job_delay_s: float = Field(
        0.0,
        ge=0,
        description="TESTING ONLY: sleep this long at the start of every analysis "
        "(crash-recovery tests); keep 0",
    )
    source_check_timeout_s: float = Field(
        2.0,
        gt=0,
        description="timeout of each background source check (reported by /readyz?verbose "
        "and rca_source_up; never blocks readiness)",
    )
    source_check_interval_s: float = Field(
        30.0, ge=1, description="how often the configured sources are checked in the background"
    )
    share_secret: SecretStr | None = Field(
        None,
        description="key that signs read-only share links to one analysis (the report link "
        "of a Slack post), 16+ characters; none: derived from the first API token, so "
        "rotating that token voids posted links",
    )
    share_ttl_hours: float = Field(
        168.0, gt=0, le=24 * 366, description="how long a share link stays valid (7 days)"
    )
    changes_retention_days: float = Field(
        90.0,
        gt=0,
        description="changes (POST /v1/changes) are kept this long; an older one is refused",
    )
    changes_max_skew_s: float = Field(
        300.0,
        ge=0,
        description="how far in the future a reported change may lie (the reporter's clock "
        "may run ahead); further is refused",
    )

    @field_validator("share_secret")
    @classmethod
    def _share_secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("a share secret needs at least 16 characters")
        return value
