"""Alertmanager webhook payload (version 4), as Alertmanager sends it.

Schema: https://prometheus.io/docs/alerting/latest/configuration/#webhook_config.
Fields Alertmanager may add in later releases are kept (``extra="allow"``), but the payload
version must be ``"4"``: a different version means a different shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.models import utc

ZERO_TIME = datetime(1, 1, 1)


class Alert(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""

    @field_validator("startsAt")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[Alert] = Field(min_length=1)

    @property
    def alert_name(self) -> str:
        return self.commonLabels.get("alertname") or self.alerts[0].name

    @property
    def starts_at(self) -> datetime:
        """The earliest start among the group's alerts: the first sign of the incident."""
        return min(a.startsAt for a in self.alerts)

    def services(
        self, labels: tuple[str, ...] = ("service", "job", "app", "container")
    ) -> list[str]:
        """Services named by the alerts, in order of first appearance."""
        seen: dict[str, None] = {}
        for alert in self.alerts:
            for label in labels:
                if value := alert.labels.get(label):
                    seen.setdefault(value, None)
                    break
        return list(seen)
