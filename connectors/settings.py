"""Settings of the metric and log sources. Plain pydantic models: importing this module pulls
no client library, so the CLI and the service can read configuration cheaply.

The URLs live at the top level of :class:`agent.config.Settings` (``RCA_PROMETHEUS_URL``,
``RCA_ELASTICSEARCH_URL``); everything else sits under ``prometheus:`` / ``elasticsearch:``
in the YAML file or ``RCA_PROMETHEUS__*`` / ``RCA_ELASTICSEARCH__*`` in the environment.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


def url_problem(value: str, *, port: bool = False) -> str | None:
    """Why ``value`` cannot serve as an http(s) base URL, said with the fix; None if it can.

    The client libraries fail late and obscurely on a URL without a scheme (``127.0.0.1:9090``
    gives requests' "No host specified"), so settings check this when they load.
    ``port``: the URL must name its port (the Elasticsearch client refuses one without).
    """
    text = value.strip()
    if "://" not in text:
        return f"{text!r} has no scheme: add http:// (or https://), e.g. http://{text}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        return f"{text!r} must start with http:// or https://, not {parts.scheme}://"
    try:
        number = parts.port
    except ValueError:
        return f"{text!r} has an invalid port"
    if not parts.hostname:
        return f"{text!r} names no host"
    if port and number is None:
        default = 443 if parts.scheme == "https" else 9200
        return f"{text!r} has no port: add it, e.g. {parts.scheme}://{parts.netloc}:{default}"
    return None


def checked_url(value: str | None, *, port: bool = False) -> str | None:
    """``value`` unchanged, or a ValueError saying what is wrong with it and the fix."""
    if value is not None and value.strip():  # empty: the source is not configured
        problem = url_problem(value, port=port)
        if problem is not None:
            raise ValueError(problem)
    return value


class PrometheusSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bearer_token: SecretStr | None = Field(None, description="sent as Authorization: Bearer")
    username: str | None = Field(None, description="basic auth user")
    password: SecretStr | None = Field(None, description="basic auth password")
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    ca_bundle: Path | None = Field(None, description="CA bundle for TLS verification")
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra headers, e.g. X-Scope-OrgID for Mimir/Thanos"
    )
    timeout_s: float = Field(10.0, gt=0, description="per-query timeout")
    retries: int = Field(2, ge=0, le=10, description="retries of a query that failed to connect")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each retry")
    parallelism: int = Field(4, ge=1, le=64, description="queries in flight at once")
    max_points: int = Field(
        1100, ge=10, le=11000, description="most points per series (sets the query step)"
    )
    scrape_interval_s: float | None = Field(
        None, gt=0, description="scrape interval; default: measured from the catalog's probe"
    )
    service_label: str = Field("service", description="the label whose values are services")
    selector: str = Field("", description='extra label matchers, e.g. namespace="shop"')
    scope_labels: list[str] = Field(
        default_factory=lambda: ["namespace"],
        description="alert labels copied into every query as matchers (values escaped)",
    )
    catalog: Path | None = Field(None, description="YAML signal catalog (default: built in)")
    graph_url: str | None = Field(
        None, description="base URL for graph links when users reach Prometheus elsewhere"
    )

    @field_validator("graph_url")
    @classmethod
    def _graph_url(cls, value: str | None) -> str | None:
        return checked_url(value)


class LogFields(BaseModel):
    """Where each part of a log line lives in an index; defaults are the ECS names.

    A field used for filtering or aggregation must be a ``keyword`` (or ``date``) field; with
    Elasticsearch's dynamic mapping a string is ``text`` with a ``.keyword`` sub-field, so map
    e.g. ``service: service.name.keyword``. The value itself is then read from ``_source`` at
    the path without the ``.keyword`` suffix.
    """

    model_config = ConfigDict(extra="forbid")

    timestamp: str = Field("@timestamp", min_length=1, description="date field of the line")
    service: str = Field("service.name", min_length=1, description="keyword field: service")
    level: str = Field("log.level", min_length=1, description="keyword field: log level")
    message: str = Field("message", min_length=1, description="the log text")
    trace_id: str = Field("trace.id", min_length=1, description="trace id, when logged")
    pod: str = Field("kubernetes.pod.name", min_length=1, description="pod (or host) name")


class ElasticsearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(None, description="API key (id:key base64 or encoded)")
    username: str | None = Field(None, description="basic auth user")
    password: SecretStr | None = Field(None, description="basic auth password")
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    ca_bundle: Path | None = Field(None, description="CA bundle for TLS verification")
    timeout_s: float = Field(10.0, gt=0, description="per-request timeout")
    retries: int = Field(
        1, ge=0, le=10, description="retries of a request that failed to connect or got 429/50x"
    )
    budget_s: float = Field(
        60.0, gt=0, description="time for one fetch; sampling stops there, keeping what it has"
    )
    index: str = Field("logs-*", description="index pattern(s) searched, comma-separated")
    fields: LogFields = Field(default_factory=LogFields, description="field names (ECS)")
    index_fields: dict[str, LogFields] = Field(
        default_factory=dict,
        description="per index pattern (as written in `index`): field names that differ "
        "from `fields`; unset names fall back to `fields`",
    )
    sample_cap: int = Field(
        20_000, ge=1, description="most log lines sampled per service per window"
    )
    max_records: int = Field(
        200_000, ge=1, description="most log lines sampled in all (bounds memory)"
    )
    page_size: int = Field(5_000, ge=1, le=10_000, description="hits per search_after page")
    count_points: int = Field(
        360, ge=10, description="most points per log-count series (sets the histogram step)"
    )
    kibana_url: str | None = Field(None, description="Kibana base URL for Discover links")
    kibana_data_view: str | None = Field(
        None, description="Kibana data view id used in Discover links (default: Kibana's)"
    )

    @field_validator("kibana_url")
    @classmethod
    def _kibana_url(cls, value: str | None) -> str | None:
        return checked_url(value)

    @model_validator(mode="after")
    def _overrides_name_patterns(self) -> ElasticsearchSettings:
        unknown = sorted(set(self.index_fields) - set(self.patterns()))
        if unknown:
            raise ValueError(
                f"index_fields names {', '.join(unknown)}, which is not in index {self.index!r}"
            )
        return self

    def patterns(self) -> list[str]:
        """The configured index patterns, in order."""
        return [p.strip() for p in self.index.split(",") if p.strip()]

    def fields_for(self, pattern: str) -> LogFields:
        """The field names of ``pattern``: its override over the common ``fields``."""
        override = self.index_fields.get(pattern)
        if override is None:
            return self.fields
        return self.fields.model_copy(update=override.model_dump(exclude_unset=True))


class CollectSettings(BaseModel):
    """How live collection frames an incident: history before it and the time it may take."""

    model_config = ConfigDict(extra="forbid")

    baseline_minutes: float = Field(
        60.0, gt=0, description="history fetched before the incident start, as the baseline"
    )
    budget_s: float = Field(
        60.0, gt=0, description="wall-clock limit of one collection across all sources"
    )
    changes: bool = Field(
        True,
        description="read rollouts and pod versions from kube-state-metrics in Prometheus "
        "(kube_pod_owner, kube_replicaset_owner, kube_pod_container_info)",
    )
