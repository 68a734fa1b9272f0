"""Settings of the metric and log sources. Plain pydantic models: importing this module pulls
no client library, so the CLI and the service can read configuration cheaply.

The URLs live at the top level of :class:`agent.config.Settings` (``RCA_PROMETHEUS_URL``,
``RCA_ELASTICSEARCH_URL``); everything else sits under ``prometheus:`` / ``elasticsearch:``
in the YAML file or ``RCA_PROMETHEUS__*`` / ``RCA_ELASTICSEARCH__*`` in the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
    service_label: str = Field("service", description="the label whose values are services")
    selector: str = Field("", description='extra label matchers, e.g. namespace="shop"')
    catalog: Path | None = Field(None, description="YAML signal catalog (default: built in)")


class ElasticsearchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: SecretStr | None = Field(None, description="API key (id:key base64 or encoded)")
    username: str | None = Field(None, description="basic auth user")
    password: SecretStr | None = Field(None, description="basic auth password")
    verify_tls: bool = Field(True, description="verify the server's TLS certificate")
    ca_bundle: Path | None = Field(None, description="CA bundle for TLS verification")
    timeout_s: float = Field(10.0, gt=0, description="per-request timeout")
    index: str = Field("logs-*", description="index pattern searched for logs")
    kibana_url: str | None = Field(None, description="Kibana base URL for Discover links")
