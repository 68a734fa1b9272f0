"""Request and response bodies of the HTTP API; the served OpenAPI schema is built from these.

Requests are strict (unknown fields are 422) except the webhook payload, which follows
Alertmanager's own model and keeps fields future releases may add.

Text a store cannot hold is a 422 naming the field, on SQLite as on PostgreSQL, rather than a
500 while storing:

- a lone UTF-16 surrogate (a valid JSON escape such as ``"\ud800"``, but not Unicode, so it
  cannot be encoded as UTF-8) anywhere in a body, fields Alertmanager may add included;
- NUL in a declared text field (labels, group key, service names, notes...), which the
  store keeps as text and PostgreSQL refuses. The OpenAPI schema says so (``pattern``,
  ``propertyNames``); fields the webhook does not declare are kept as JSON, escaped, so
  NUL is fine there.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agent.memory.recall import PastIncident
from agent.models import (
    NAMESPACE_MAX,
    NAMESPACE_PATTERN,
    Analysis,
    Change,
    ChangeKind,
    FaultType,
    Trigger,
    namespace_label,
)
from connectors.alertmanager import Alert, AlertmanagerWebhook

# Times outside this range are typos or fuzz, and break window arithmetic downstream. The
# schema allows the years 1970-2199 as written; the check allows a day either side for offsets.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_YEARS = r"^(19[7-9][0-9]|2[01][0-9][0-9])-"
MAX_RANGE = timedelta(days=7)
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SURROGATE = re.compile("[\ud800-\udfff]")
# An http(s) link with no space or control character in it. Spelled out as code-point ranges,
# not ``\s``: Python's ``\s`` also takes \x1c-\x1f, a JSON Schema validator's does not, so a
# link the schema called valid was refused.
_LINK = re.compile(r"https?://[^\x00-\x20\x7f-\xa0]+")
LINK_PATTERN = r"^https?://[^\u0000-\u0020\u007f-\u00a0]+$"
NO_NUL = "^[^\\u0000]*$"  # what the schema says of every declared text field
UNSTORABLE_TEXT = "unstorable_text"  # the error type; its ``ctx["at"]`` is the path inside


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("nul_text", "text contains NUL; send text without NUL")
    return value


Text = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": NO_NUL})]
TextMap = Annotated[
    dict[Annotated[str, AfterValidator(_no_nul)], Annotated[str, AfterValidator(_no_nul)]],
    Field(
        json_schema_extra={
            "propertyNames": {"pattern": NO_NUL},
            "additionalProperties": {"type": "string", "pattern": NO_NUL},
        }
    ),
]
ServiceName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_no_nul),
    Field(json_schema_extra={"pattern": NO_NUL}),
]
VersionText = ServiceName  # versions, authors, ids: 1-200 characters, no NUL
Namespace = Annotated[
    str,
    AfterValidator(namespace_label),
    Field(json_schema_extra={"pattern": NAMESPACE_PATTERN, "maxLength": NAMESPACE_MAX}),
]
JobStatus = Literal["pending", "running", "done", "failed"]


def _surrogate(value: Any, at: tuple[str | int, ...]) -> tuple[tuple[str | int, ...], str] | None:
    """The path and the character of the first lone surrogate in a JSON value."""
    if isinstance(value, str):
        char = _SURROGATE.search(value)
        return (at, char.group()) if char else None
    items: Any = ()
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, str) and (bad := _SURROGATE.search(key)):
                return ((*at, key), bad.group())
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        if (found := _surrogate(item, (*at, key))) is not None:
            return found
    return None


class StorableText(BaseModel):
    """A request body with no lone surrogate anywhere: see the module docstring."""

    @model_validator(mode="before")
    @classmethod
    def _no_lone_surrogate(cls, data: Any) -> Any:
        found = _surrogate(data, ())
        if found is None:
            return data
        at, char = found
        raise PydanticCustomError(
            UNSTORABLE_TEXT,
            "text contains a lone UTF-16 surrogate (U+{code}); send valid Unicode",
            {"code": f"{ord(char):04X}", "at": list(at)},
        )


def _rfc3339(value: object) -> object:
    """A reported time is RFC 3339 text: pydantic would also read ``1715681700`` (or ``0.2``)
    as seconds since 1970, which a CI script means as often as not in milliseconds."""
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("expected an RFC 3339 timestamp, e.g. 2024-05-14T10:00:00Z")
    return value


class WebhookAlert(Alert):
    """One alert of the payload: text without NUL, ``startsAt`` a plausible time, both times
    RFC 3339 text as Alertmanager writes them."""

    labels: TextMap
    annotations: TextMap = Field(default_factory=dict)
    startsAt: Annotated[
        datetime, BeforeValidator(_rfc3339), Field(json_schema_extra={"pattern": _YEARS})
    ]
    endsAt: Annotated[datetime | None, BeforeValidator(_rfc3339)] = None
    generatorURL: Text = ""
    fingerprint: Text = ""

    @field_validator("startsAt")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        if not EARLIEST - timedelta(days=1) <= value < LATEST + timedelta(days=1):
            raise ValueError("must lie between 1970 and 2200")
        return value


class WebhookPayload(StorableText, AlertmanagerWebhook):
    """Alertmanager's payload (version 4) as :mod:`connectors.alertmanager` models it."""

    groupKey: Text
    receiver: Text
    groupLabels: TextMap = Field(default_factory=dict)
    commonLabels: TextMap = Field(default_factory=dict)
    commonAnnotations: TextMap = Field(default_factory=dict)
    externalURL: Text = ""
    alerts: list[WebhookAlert] = Field(min_length=1)  # type: ignore[assignment]


class ErrorDetail(BaseModel):
    path: str = Field(description="where in the request, e.g. body.alerts.0.startsAt")
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="machine-readable: unauthorized, forbidden, invalid, ...")
    message: str
    fields: list[ErrorDetail] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """Every error response: JSON, never a stack trace."""

    error: ErrorInfo


class WebhookAccepted(BaseModel):
    outcome: Literal["new", "duplicate", "late", "resolved", "resolved_unseen"] = Field(
        description="new: queued an analysis; duplicate/late: already seen; resolved: "
        "marked the episode resolved; resolved_unseen: resolved before it was seen firing"
    )
    incident_id: str
    analysis_id: str | None = Field(None, description="the analysis of this firing episode")


class AnalysisRequest(StorableText):
    """An ad-hoc analysis: services and a time range (``start``/``end``, or ``last``)."""

    model_config = ConfigDict(extra="forbid")

    services: list[ServiceName] = Field(min_length=1, max_length=100)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    last: str | None = Field(
        None, pattern=r"^\d{1,6}[smhd]$", description='a range ending now, e.g. "30m" (default)'
    )
    question: Text | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _one_range(self) -> AnalysisRequest:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end, or neither")
        if self.start is not None and self.last is not None:
            raise ValueError("give start/end or last, not both")
        if self.start is not None and self.end is not None:
            if not EARLIEST <= self.start < self.end <= LATEST:
                raise ValueError("need 1970 <= start < end <= 2200")
            if self.end - self.start > MAX_RANGE:
                raise ValueError("the range may span at most 7 days")
        if self.last is not None and self.last_span() > MAX_RANGE:
            raise ValueError("last may span at most 7 days")
        return self

    def last_span(self) -> timedelta:
        match = _DURATION.match(self.last or "30m")
        assert match is not None  # guaranteed by the field pattern
        return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])

    def range(self, now: datetime) -> tuple[datetime, datetime]:
        """(incident start, end) of the request."""
        if self.start is not None and self.end is not None:
            return self.start.astimezone(UTC), self.end.astimezone(UTC)
        return now - self.last_span(), now


class AnalysisCreated(BaseModel):
    id: str
    status: JobStatus
    url: str


class IncidentState(BaseModel):
    status: Literal["firing", "resolved"]
    resolved_at: datetime | None


class AnalysisStatus(BaseModel):
    """A job's state; ``analysis`` is set once ``status`` is ``done``."""

    id: str
    status: JobStatus
    trigger: Trigger
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    error: str | None
    incident: IncidentState | None
    report_url: str | None
    chart_url: str | None
    analysis: Analysis | None


class AnalysisSummary(BaseModel):
    id: str
    status: JobStatus
    trigger: Trigger
    created_at: datetime
    finished_at: datetime | None
    root_service: str | None
    confidence: float | None
    error: str | None


class AnalysisPage(BaseModel):
    items: list[AnalysisSummary]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


RESOLUTION_MAX = 5000  # characters of "what fixed it"
LINK_MAX = 2000


class FeedbackRequest(StorableText):
    """A rating. Text is stored as given (markup included) and shown escaped; over a limit
    is a 422 naming the field and the limit."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["correct", "wrong", "partially"]
    actual_service: ServiceName | None = Field(
        None, description="the real root-cause service when the verdict is wrong"
    )
    actual_fault_type: FaultType | None = None
    note: Text = Field("", max_length=5000)
    author: Text = Field("", max_length=200)
    resolution: Text | None = Field(
        None,
        max_length=RESOLUTION_MAX,
        description="what fixed it (free text); shown with this analysis when a similar "
        "incident comes back",
    )
    resolution_url: str | None = Field(
        None,
        max_length=LINK_MAX,
        description="the postmortem or pull request (http or https)",
        json_schema_extra={"pattern": LINK_PATTERN},
    )

    @field_validator("resolution_url")
    @classmethod
    def _resolution_link(cls, value: str | None) -> str | None:
        return _http_link(value)


class FeedbackStored(BaseModel):
    id: int
    analysis_id: str
    verdict: str
    actual_service: str | None
    actual_fault_type: str | None
    note: str
    author: str
    created_at: datetime
    resolution: str | None = None
    resolution_url: str | None = None


class SimilarPage(BaseModel):
    """The past analyses most like one analysis, best first."""

    analysis_id: str
    items: list[PastIncident]


def _http_link(value: str | None) -> str | None:
    """Links are shown in reports and Slack: only http(s), never ``javascript:``."""
    if value is not None and not _LINK.fullmatch(value):
        raise ValueError("must be an http:// or https:// URL")
    return value


class ChangeRequest(StorableText):
    """A change CI/CD reports (``POST /v1/changes``): a deploy, a config push, a scale."""

    model_config = ConfigDict(extra="forbid")

    service: ServiceName = Field(description="the service that changed, as telemetry names it")
    namespace: Namespace | None = Field(
        None,
        description="the Kubernetes namespace of its Deployment (a DNS-1123 label); the same "
        "service in two namespaces is two deployments, and the rollback names it",
    )
    kind: ChangeKind = Field(ChangeKind.DEPLOY, description="deploy, config, scale, ...")
    at: Annotated[AwareDatetime, BeforeValidator(_rfc3339)] = Field(
        description="when it was made (RFC 3339 with an offset)"
    )
    from_version: VersionText | None = Field(None, description="the version before")
    to_version: VersionText | None = Field(None, description="the version after")
    author: VersionText | None = Field(None, description="who made it: a person, argocd, ...")
    link: str | None = Field(
        None,
        max_length=2000,
        description="the CI run, the Argo CD app",
        json_schema_extra={"pattern": LINK_PATTERN},
    )
    id: VersionText | None = Field(
        None,
        description="your id for it (a CI run id); repeated posts with the same service, "
        "namespace and id store one change; without it, the same service, namespace, kind, "
        "to_version and at do",
    )

    @field_validator("link")
    @classmethod
    def _link(cls, value: str | None) -> str | None:
        return _http_link(value)

    def to_change(self) -> Change:
        return Change(**self.model_dump(), source="api")


class ChangeRecord(BaseModel):
    """A stored change, and whether an analysis has been about its service yet."""

    change: Change
    known_service: bool = Field(
        description="false: no analysis has named this service yet (a typo?); stored anyway"
    )
    received_at: datetime


class ChangeStored(ChangeRecord):
    outcome: Literal["new", "duplicate"] = Field(
        description="new: stored; duplicate: the same change was stored before (kept as it was)"
    )
    warnings: list[str] = Field(default_factory=list)


class ChangePage(BaseModel):
    items: list[ChangeRecord]
    truncated: bool = Field(
        description="more changes match: ask again with since= the last item's change.at"
    )


class Health(BaseModel):
    status: Literal["ok"]


class SourceCheck(BaseModel):
    """The last background check of one source."""

    up: bool = Field(description="the source answered (any non-5xx HTTP answer counts)")
    checked_at: datetime
    latency_s: float = Field(description="time the check took, up to its timeout")
    error: str | None = Field(None, description="why the source counts as down")


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    database: bool
    sources: dict[str, bool | None] = Field(
        description="each configured source: answered its last background check (null: not "
        "checked yet); reported, never required for readiness"
    )
    checks: dict[str, SourceCheck] | None = Field(
        None, description="with ?verbose: the last check of each source in detail"
    )
