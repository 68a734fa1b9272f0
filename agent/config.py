"""Configuration: one settings object, read at the edge (CLI, service) and passed down.

Sources, highest priority first: explicit arguments, environment (``RCA_*``, nested with
``__``, e.g. ``RCA_ENGINE__LOOKBACK_MINUTES=15``), a YAML file (``--config`` or
``RCA_CONFIG``), defaults. Nothing here is read at import time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from agent.errors import ConfigError
from agent.service.settings import (
    ApiToken,
    LogFormat,
    LogLevel,
    ServiceSettings,
    parse_api_tokens,
)
from agent.summarize.settings import SummarizerSettings
from agent.window import WindowSettings
from connectors.settings import (
    CollectSettings,
    ElasticsearchSettings,
    PrometheusSettings,
    checked_url,
    url_problem,
)
from connectors.slack_settings import DEFAULT_API_URL, SlackSettings


class EngineSettings(BaseModel):
    """Knobs of the deterministic evidence engine. Defaults are tuned for generality."""

    model_config = ConfigDict(extra="forbid")

    lookback_minutes: float = Field(
        10.0, gt=0, description="incident window starts this long before the alert fired"
    )
    onset: Literal["lookback", "data"] = Field(
        "lookback",
        description="without an incident start, split at lookback_minutes before the alert, "
        "or where the series rose together before it (docs/benchmarks.md, Real incidents)",
    )
    z_threshold: float = Field(
        4.0, gt=0, description="robust z-score above which a series counts as anomalous"
    )
    max_evidence: int = Field(40, ge=1, description="evidence items kept in an analysis")
    max_candidates: int = Field(10, ge=1, description="ranked candidates kept in an analysis")
    log_burst_ratio: float = Field(
        3.0,
        gt=1,
        description="incident/baseline rate ratio for a log template to count as bursting",
    )
    calibration: Path | None = Field(
        None,
        description="confidence calibration (JSON from python -m evals.calibrate) to use "
        "instead of the one shipped, e.g. one refitted on the team's own rated incidents",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RCA_", env_nested_delimiter="__", extra="forbid")

    config: Path | None = Field(None, description="YAML settings file")
    data_dir: Path = Field(Path(".rca"), description="where reports and the database live")
    backend: str = Field("extractive", description="summarizer backend: extractive|openai|hf")
    engine: EngineSettings = Field(default_factory=EngineSettings)
    summarizer: SummarizerSettings = Field(default_factory=SummarizerSettings)

    prometheus_url: str | None = Field(None, description="Prometheus (or Thanos/Mimir) base URL")
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    elasticsearch_url: str | None = Field(
        None, description="Elasticsearch URL; several nodes separated by commas"
    )
    elasticsearch: ElasticsearchSettings = Field(default_factory=ElasticsearchSettings)
    collect: CollectSettings = Field(default_factory=CollectSettings)
    window: WindowSettings = Field(default_factory=WindowSettings)
    snapshot_dir: Path | None = Field(
        None, description="offline source: a directory of recorded incident snapshots"
    )

    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: SQLite file under data_dir"
    )
    api_tokens: Annotated[list[ApiToken], NoDecode] = Field(
        default_factory=list,
        description="bearer tokens of the HTTP API: TOKEN:read or TOKEN:write (bare TOKEN: "
        "write), comma separated; none: the API needs no token",
    )
    webhook_token: SecretStr | None = Field(
        None, description="bearer token Alertmanager sends to the webhook; none: no token needed"
    )
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    log_level: LogLevel = Field("info", description="log level of rca serve (debug shows probes)")
    log_format: LogFormat = Field(
        "text", description="text (for people) or json (one object per line, for log pipelines)"
    )

    slack_api_url: str = Field(DEFAULT_API_URL, description="Slack Web API base URL (proxies)")
    slack_bot_token: SecretStr | None = Field(
        None, description="Slack bot token (xoxb-...); none: nothing is posted"
    )
    slack_signing_secret: SecretStr | None = Field(
        None, description="Slack signing secret; none: the /slack/events bot is off"
    )
    slack: SlackSettings = Field(default_factory=SlackSettings)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _api_tokens(cls, value: Any) -> Any:
        return parse_api_tokens(value)

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("prometheus_url", "slack_api_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return checked_url(value)

    @field_validator("elasticsearch_url")
    @classmethod
    def _node_urls(cls, value: str | None) -> str | None:
        for node in (value or "").split(","):
            checked_url(node, port=True)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        """Only the scheme: SQLAlchemy itself judges the rest when the service starts."""
        if value is not None and value.strip() and "://" not in value:
            raise ValueError(
                f"{value!r} has no scheme, e.g. sqlite:///var/lib/rca/rca.db or "
                "postgresql+psycopg://rca@db:5432/rca"
            )
        return value

    @model_validator(mode="after")
    def _nested_urls(self) -> Settings:
        """URLs of sections whose models live elsewhere, named by their full setting path."""
        for name, value in (
            ("summarizer.base_url", self.summarizer.base_url),
            ("summarizer.azure_endpoint", self.summarizer.azure_endpoint),
            ("slack.public_url", self.slack.public_url),
        ):
            problem = url_problem(value) if value else None
            if problem is not None:
                raise ValueError(f"{_setting_name(name.split('.'))}: {problem}")
        return self


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment, an optional YAML file and overrides."""
    try:
        env_only = Settings()
        path = config_file or env_only.config
        file_values: dict[str, Any] = {}
        if path is not None:
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            try:
                file_values = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
            if not isinstance(file_values, dict):
                raise ConfigError(f"config file {path} must hold a mapping at the top level")
        merged = _merge(_merge(file_values, env_only.model_dump(exclude_unset=True)), overrides)
        return Settings.model_validate(merged)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:  # a check across fields: its message names the setting
            raise ConfigError(f"invalid setting {message}") from None
        raise ConfigError(f"invalid setting {_setting_name(err['loc'])}: {message}") from None


def _setting_name(loc: Sequence[int | str]) -> str:
    """``prometheus.graph_url (RCA_PROMETHEUS__GRAPH_URL)``: the YAML path and, where there is
    one, the environment variable, so the message names the setting however it was given."""
    path = ".".join(str(part) for part in loc)
    if not all(isinstance(part, str) for part in loc):
        return path
    return f"{path} (RCA_{'__'.join(str(part).upper() for part in loc)})"


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins; nested sections merge key by key, so ``RCA_PROMETHEUS__TIMEOUT_S`` keeps
    the rest of the file's ``prometheus:`` section."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def otel_environment() -> dict[str, str]:
    """The standard ``OTEL_*`` variables, the only configuration of tracing (agent.tracing):
    read here, at the edge, like every other setting."""
    return {name: value for name, value in os.environ.items() if name.startswith("OTEL_")}
