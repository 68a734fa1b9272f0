"""Typed models that flow between the pipeline stages.

Inputs (what a snapshot or a connector yields): :class:`Signal`, :class:`LogRecord`,
:class:`Topology`, :class:`GroundTruth`, :class:`Window`.
Outputs (what the engine yields): :class:`Evidence`, :class:`Candidate`, :class:`Analysis`.

Timestamps inside a :class:`Signal` are float Unix seconds because series are large and
numeric work wants arrays; every other time is an aware ``datetime`` in UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class SignalKind(StrEnum):
    """What a series measures; decides whether it reads as a cause or a symptom."""

    RESOURCE = "resource"
    LATENCY = "latency"
    ERRORS = "errors"
    TRAFFIC = "traffic"
    SATURATION = "saturation"
    CHANGE = "change"
    OTHER = "other"


class FaultType(StrEnum):
    """The fault hypotheses the engine can name."""

    CPU_SATURATION = "cpu_saturation"
    MEMORY_LEAK = "memory_leak"
    NETWORK_LATENCY = "network_latency"
    PACKET_LOSS = "packet_loss"
    CODE_EXCEPTION = "code_exception"
    BAD_DEPLOY = "bad_deploy"
    DB_POOL_EXHAUSTION = "db_pool_exhaustion"
    DISK_FULL = "disk_full"
    DEPENDENCY_OUTAGE = "dependency_outage"
    UNKNOWN = "unknown"


class Strict(BaseModel):
    """Base for our own formats: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


# Unix seconds beyond this (year 5138) are milliseconds or nanoseconds written by mistake.
_MAX_EPOCH_S = 1e11


class Signal(Strict):
    """One time series of one service (or one pod of it)."""

    service: str = Field(min_length=1)
    name: str = Field(min_length=1)
    kind: SignalKind | None = None
    unit: str = ""
    pod: str | None = None
    resolution_s: float | None = Field(default=None, gt=0)
    timestamps: list[float]
    values: list[float | None]
    labels: dict[str, str] = Field(default_factory=dict)
    origin: str = ""
    link: str | None = None

    @field_validator("values")
    @classmethod
    def _finite_or_missing(cls, values: list[float | None]) -> list[float | None]:
        return [v if v is not None and math.isfinite(v) else None for v in values]

    @model_validator(mode="after")
    def _aligned(self) -> Signal:
        if len(self.timestamps) != len(self.values):
            raise ValueError(
                f"timestamps has {len(self.timestamps)} points but values has {len(self.values)}"
            )
        ts = self.timestamps
        bad = next((t for t in ts if not math.isfinite(t) or abs(t) >= _MAX_EPOCH_S), None)
        if bad is not None:
            raise ValueError(f"timestamps must be finite Unix seconds, got {bad!r} (milliseconds?)")
        if any(b <= a for a, b in pairwise(ts)):
            raise ValueError("timestamps must be strictly increasing")
        return self

    def points(self, start: float = -math.inf, end: float = math.inf) -> list[tuple[float, float]]:
        """The samples from ``start`` to ``end`` (both included) as ``(time, value)``, gaps
        left out."""
        return [
            (t, v)
            for t, v in zip(self.timestamps, self.values, strict=True)
            if v is not None and start <= t <= end
        ]

    @property
    def series_id(self) -> str:
        """A stable human-readable key: ``service/pod:name{labels}``."""
        owner = f"{self.service}/{self.pod}" if self.pod else self.service
        labels = ",".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return f"{owner}:{self.name}" + (f"{{{labels}}}" if labels else "")


class LogRecord(Strict):
    """One log line, already attributed to a service."""

    timestamp: datetime
    service: str = Field(min_length=1)
    level: str = "INFO"
    message: str
    pod: str | None = None
    trace_id: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @field_validator("level")
    @classmethod
    def _normalise_level(cls, value: str) -> str:
        level = value.strip().upper()
        return {"WARNING": "WARN", "ERR": "ERROR", "FATAL": "CRITICAL", "CRIT": "CRITICAL"}.get(
            level, level or "INFO"
        )


class Edge(Strict):
    """``caller`` sends requests to ``callee``; faults propagate from callee to caller."""

    caller: str
    callee: str


class Topology(Strict):
    services: list[str] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)

    def callees(self, service: str) -> list[str]:
        return [e.callee for e in self.edges if e.caller == service]

    def callers(self, service: str) -> list[str]:
        return [e.caller for e in self.edges if e.callee == service]


class GroundTruth(Strict):
    service: str
    fault_type: FaultType
    onset: datetime | None = None
    pod: str | None = None
    note: str = ""
    change: str | None = Field(
        None,
        description="the defective change, as service@to_version (bad_deploy incidents); "
        "None when no change caused the incident",
    )

    @field_validator("onset")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return utc(value) if value is not None else None


class Window(Strict):
    """The analysed time range; ``incident_start`` splits baseline from incident."""

    start: datetime
    end: datetime
    incident_start: datetime
    step_s: float | None = Field(
        None, gt=0, description="seconds between the points of the analysed series"
    )

    @field_validator("start", "end", "incident_start")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if not self.start < self.incident_start < self.end:
            raise ValueError("window needs start < incident_start < end")
        return self


# --- outputs -----------------------------------------------------------------------------


class Stats(Strict):
    """Summary of one series or log template over one part of the window."""

    median: float | None = None
    p95: float | None = None
    max: float | None = None
    mean: float | None = None
    count: int = 0


class Evidence(Strict):
    """One finding the ranking and the summary can cite by ``id`` (``M3``, ``L2``; ``P1``
    is memory's: a confirmed past incident with the same signature, agent.memory.prior)."""

    id: str
    source: Literal["metric", "log", "memory"]
    service: str
    pod: str | None = None
    signal: str | None = None
    signal_kind: SignalKind | None = None
    unit: str = ""
    template: str | None = None
    sample: str | None = None
    pattern: str
    start: datetime
    end: datetime
    onset: datetime | None = None
    baseline: Stats
    incident: Stats
    value: float | None = Field(
        None,
        description="the incident value the item quotes for its direction: the level a rise "
        "or dip held at its peak (beyond the baseline median by construction)",
    )
    samples: int | None = Field(None, description="samples the deviation lasted; 1 is a spike")
    at_data_end: bool = Field(
        False, description="the deviation starts at the last sample: later data must confirm it"
    )
    score: float
    description: str
    link: str | None = None


class Candidate(Strict):
    service: str
    fault_type: FaultType
    score: float
    onset: datetime | None = None
    evidence_ids: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)


class RootCause(Strict):
    service: str
    fault_type: FaultType
    summary: str


class TimelineEvent(Strict):
    time: datetime
    service: str
    text: str
    evidence_id: str | None = None


class Trigger(Strict):
    kind: Literal["snapshot", "alert", "api", "cli", "slack", "simulation"] = "snapshot"
    alert_name: str | None = None
    services: list[str] = Field(default_factory=list)
    group_key: str | None = None
    question: str | None = None
    since: datetime | None = Field(
        None, description="when an ad-hoc request says it began to hurt (its stated start)"
    )


class ChangeKind(StrEnum):
    DEPLOY = "deploy"
    CONFIG = "config"
    SCALE = "scale"
    FEATURE_FLAG = "feature_flag"
    INFRA = "infra"


# A Kubernetes namespace is a DNS-1123 label (RFC 1123; Kubernetes' IsDNS1123Label).
NAMESPACE_MAX = 63
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_NAMESPACE = re.compile(NAMESPACE_PATTERN)


def namespace_label(value: str) -> str:
    """``value`` when it can name a Kubernetes namespace; else a ``ValueError`` saying why,
    so that a typo is refused where it is written rather than in a rollback that fails."""
    if len(value) > NAMESPACE_MAX:
        raise ValueError(
            f"a Kubernetes namespace has at most {NAMESPACE_MAX} characters, not {len(value)}"
        )
    if not _NAMESPACE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Kubernetes namespace: lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (a DNS-1123 label)"
        )
    return value


class Change(Strict):
    """Something changed on purpose: a rollout, a config push, a scale, a flag, infra work.

    Changes come from CI/CD (``POST /v1/changes``), from kube-state-metrics series (a new
    ReplicaSet or image is a deploy), from a snapshot's ``changes.jsonl``, or from the simulator.
    """

    service: str = Field(min_length=1)
    namespace: str | None = Field(
        None,
        description="the Kubernetes namespace of the Deployment that changed, when known: "
        "the same service in two namespaces is two deployments",
    )
    kind: ChangeKind = ChangeKind.DEPLOY
    at: datetime
    from_version: str | None = None
    to_version: str | None = None
    author: str | None = None
    link: str | None = None
    source: str = Field("api", description="where it was learned: api, prometheus, snapshot, ...")
    id: str | None = Field(None, description="the reporter's id for it; repeated posts store one")

    @field_validator("at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return utc(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else namespace_label(value)


class ChangeVerdict(Strict):
    """What the analysis concluded about one change in or shortly before the window."""

    change: Change
    verdict: Literal["suspect", "cleared", "unknown"]
    reasons: list[str] = Field(default_factory=list)
    evidence_ids: list[str] = Field(default_factory=list)


class RunbookCitation(Strict):
    """A section of the team's runbooks that matches this incident, cited as ``R1``..."""

    id: str
    title: str
    section: str = ""
    path: str = Field("", description="the runbook file, relative to the runbooks folder")
    url: str | None = Field(None, description="the alert's runbook_url, or the file's own url")
    why: str = Field("", description="what matched: the alert, the service, the fault type")
    text: str = Field("", description="the section's text, redacted and clipped")


class SourceFailure(Strict):
    source: str
    error: str


class Analysis(Strict):
    """The result of one analysis; what the API serves and Slack renders."""

    id: str
    version: str
    created_at: datetime
    trigger: Trigger
    window: Window
    candidates: list[Candidate]
    root_cause: RootCause | None
    confidence: float = Field(
        ge=0.0, le=1.0, description="probability that the root cause is right (calibrated)"
    )
    confidence_basis: dict[str, float] = Field(
        default_factory=dict,
        description="what the engine's confidence was computed from: the ranking's margins, "
        "the evidence strength, the samples in the incident part",
    )
    insufficient_evidence: bool = False
    evidence: list[Evidence]
    timeline: list[TimelineEvent]
    next_steps: list[str]
    summary: str
    backend: str = "extractive"
    summarizer_fallback: str | None = Field(
        None, description="why the configured backend's output was replaced by extractive"
    )
    alternatives: list[str] = Field(default_factory=list)
    tokens: dict[str, int] = Field(default_factory=dict)
    cost_usd: float = Field(0.0, ge=0, description="summarizer cost from the price table")
    timings: dict[str, float] = Field(default_factory=dict)
    source_failures: list[SourceFailure] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    changes: list[ChangeVerdict] = Field(
        default_factory=list, description="changes in or shortly before the window, judged"
    )
    runbooks: list[RunbookCitation] = Field(
        default_factory=list, description="runbook sections that match, cited as R1, R2..."
    )

    def evidence_by_id(self, evidence_id: str) -> Evidence | None:
        return next((e for e in self.evidence if e.id == evidence_id), None)
