"""Configuration: one settings object, read at the edge (CLI, service) and passed down.

Sources, highest priority first: explicit arguments, environment (``RCA_*``, nested with
``__``, e.g. ``RCA_ENGINE__LOOKBACK_MINUTES=15``), a YAML file (``--config`` or
``RCA_CONFIG``), defaults. Nothing here is read at import time.

Every invalid value is reported at once (:class:`InvalidSettings`, one line per setting), and
environment names that are not settings get a note (``agent.config_env``).
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
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
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from agent.config_env import env_name, read_environment, renamed_env_vars, setting_paths
from agent.errors import ConfigError
from agent.memory.settings import MemorySettings
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

_VALUES_GIVEN: ContextVar[bool] = ContextVar("rca_settings_values_given", default=False)


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
    memory: MemorySettings = Field(default_factory=MemorySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Inside :func:`read_settings` the values arrive whole (environment already read,
        misspelled names already renamed): validating them must not read the environment
        again. ``Settings(...)`` elsewhere (tests) reads it as pydantic-settings does."""
        if _VALUES_GIVEN.get():
            return (init_settings,)
        return (init_settings, env_settings, dotenv_settings, file_secret_settings)

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
        """URLs of sections whose models live elsewhere, and the embeddings memory needs,
        named by their full setting path."""
        for name, value in (
            ("summarizer.base_url", self.summarizer.base_url),
            ("summarizer.azure_endpoint", self.summarizer.azure_endpoint),
            ("slack.public_url", self.slack.public_url),
            ("memory.embeddings_url", self.memory.embeddings_url),
        ):
            problem = url_problem(value) if value else None
            if problem is not None:
                raise ValueError(f"{_setting_name(name.split('.'))}: {problem}")
        embeddings = self.memory.embeddings_problem()
        if embeddings is not None:
            name, problem = embeddings
            raise ValueError(f"{_setting_name(('memory', name))}: {problem}")
        return self


class InvalidSettings(ConfigError):
    """Several settings are invalid; ``problems`` says each on its own line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))

    def lines(self) -> list[str]:
        return list(self.problems)


@dataclass
class SettingsReading:
    """The settings, and what the environment held that is not quite a setting."""

    settings: Settings
    notes: list[str] = field(default_factory=list)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from the environment, an optional YAML file and overrides; notes
    about the environment are logged (the CLI prints them instead: :func:`read_settings`)."""
    reading = read_settings(config_file, **overrides)
    for note in reading.notes:
        logging.getLogger(__name__).warning("%s", note)
    return reading.settings


def read_settings(config_file: Path | None = None, **overrides: Any) -> SettingsReading:
    """The settings from the environment, an optional YAML file and overrides, validated
    together so every invalid value is reported at once."""
    notes = read_environment(os.environ, Settings)
    source = EnvSettingsSource(Settings)
    source.env_vars = renamed_env_vars(source.env_vars, notes.renamed, source.case_sensitive)
    try:
        env_values = source()
    except SettingsError as exc:
        raise ConfigError(f"invalid setting in the environment: {exc}") from None
    given = config_file or env_values.get("config")
    file_values = _file_values(Path(given)) if given else {}
    merged = _merge(_merge(file_values, env_values), overrides)
    given_only = _VALUES_GIVEN.set(True)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        problems = [_problem(err["loc"], err["msg"], err["type"]) for err in exc.errors()]
        raise InvalidSettings(problems) from None
    finally:
        _VALUES_GIVEN.reset(given_only)
    return SettingsReading(settings, notes.notes)


def _file_values(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return values


def _problem(loc: Sequence[int | str], msg: str, kind: str) -> str:
    message = msg.removeprefix("Value error, ")
    if not loc:  # a check across fields: its message names the setting
        return f"invalid setting {message}"
    if kind == "extra_forbidden" and all(isinstance(part, str) for part in loc):
        known = [".".join(path) for path, _ in setting_paths(Settings)]
        close = difflib.get_close_matches(".".join(str(p) for p in loc), known, n=1)
        message = "not a setting" + (
            f"; did you mean {close[0]} ({env_name(tuple(close[0].split('.')))})?" if close else ""
        )
    return f"invalid setting {_setting_name(loc)}: {message}"


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
