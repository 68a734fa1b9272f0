"""The tables. One row in ``analyses`` is both the durable job and, once done, its result.

Why one table: the job's state and its result must change together (a result is stored in
the same UPDATE that ends the lease), and the API's ``GET /v1/analyses/{id}`` reads one row.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite hands back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


SERVICE_NAME_MAX = 200  # the longest service name the ``analysis_services`` index holds


class Base(DeclarativeBase):
    pass


class Incident(Base):
    """One firing episode of one Alertmanager alert group."""

    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    episode_key: Mapped[str] = mapped_column(String(64), unique=True)
    group_key: Mapped[str] = mapped_column(Text, index=True)
    status: Mapped[str] = mapped_column(String(16))  # firing | resolved
    alert_name: Mapped[str] = mapped_column(Text, default="")
    alerts: Mapped[str] = mapped_column(Text)  # JSON list of [fingerprint, startsAt]
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    notifications: Mapped[int] = mapped_column(Integer, default=1)
    payload: Mapped[str] = mapped_column(Text)  # the first notification, as received
    # The incident's one Slack message, once posted: later analyses and the resolution
    # update it in place (see SlackPost).
    slack_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slack_ts: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_incidents_slack_message", "slack_channel", "slack_ts"),)


class AnalysisRow(Base):
    """An analysis job (pending, running) and then its result (done, failed)."""

    __tablename__ = "analyses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    incident_id: Mapped[str | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), nullable=True, index=True
    )
    trigger: Mapped[str] = mapped_column(Text)  # agent.models.Trigger as JSON
    trigger_kind: Mapped[str] = mapped_column(String(16))
    incident_start: Mapped[datetime] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16))  # pending | running | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # Analysis as JSON
    root_service: Mapped[str | None] = mapped_column(Text, nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The series and logs the evidence chart draws (a Snapshot as JSON), stored with the
    # result; the PNG is rendered from it on first request and cached in ``chart``.
    chart_data: Mapped[str | None] = mapped_column(Text, nullable=True, deferred=True)
    chart: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)
    # The publishing hook (Slack): set once, by compare-and-set, by whoever posts.
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The Slack message that shows this analysis (an incident post, a /rca answer, a
    # re-run that updated a post): a mention in its thread finds the analysis from here.
    slack_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slack_ts: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_analyses_status_created", "status", "created_at"),
        Index("ix_analyses_created", "created_at", "id"),
        Index("ix_analyses_slack_message", "slack_channel", "slack_ts"),
    )


class AnalysisService(Base):
    """The services an analysis was asked about: the index behind ``?service=``."""

    __tablename__ = "analysis_services"

    analysis_id: Mapped[str] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(String(SERVICE_NAME_MAX), primary_key=True, index=True)


class Feedback(Base):
    """A person's verdict on an analysis: the fine-tuning dataset reads these."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    analysis_id: Mapped[str] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), index=True
    )
    verdict: Mapped[str] = mapped_column(String(16))  # correct | wrong | partially
    actual_service: Mapped[str | None] = mapped_column(Text, nullable=True)
    actual_fault_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # What fixed it (incident memory shows it next to similar analyses later).
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    resolution_url: Mapped[str | None] = mapped_column(Text, nullable=True)


class FingerprintRow(Base):
    """The fingerprint of a finished analysis (agent.memory.fingerprint), as JSON.

    Deleted with its analysis (``DELETE /v1/analyses/{id}``), and on its own once older than
    ``memory.retention_days``. ``stored_at`` lets each process's index load only new rows.
    ``confirmed`` is the cause its latest rating stood behind (``service|fault``), beside the
    JSON rather than in it: a replica of an earlier release, which refuses fields it does not
    know, still reads every fingerprint during a rolling upgrade. ``embedding`` is the optional
    text embedding (little-endian float32 bytes, agent.memory.embed) of the model named in
    ``embedding_model``: a vector is only compared with vectors of the same model.
    """

    __tablename__ = "fingerprints"

    analysis_id: Mapped[str] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    stored_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    confirmed: Mapped[str | None] = mapped_column(Text, nullable=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    embedding_model: Mapped[str | None] = mapped_column(Text, nullable=True)


class SlackPost(Base):
    """The outbox of an incident's Slack message: what it should show, and delivery state.

    One row per incident, so one lease serialises everything done to its message. ``state``
    is ``pending`` (work to do at ``next_attempt_at``), ``posting`` (claimed, under lease),
    ``done``, ``skipped`` (no channel routes the alert) or ``failed`` (Slack refused for
    good). New work while ``posting`` only bumps ``revision``; the claimer sees the change
    when it settles and leaves the row pending again.
    """

    __tablename__ = "slack_posts"

    incident_id: Mapped[str] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True
    )
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"))
    shown_analysis_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_slack_posts_state_next", "state", "next_attempt_at"),)


class ChangeRow(Base):
    """A change reported by CI/CD (``POST /v1/changes``): a deploy, a config push, a scale.

    ``key`` makes repeated reports of one change one row: the reporter's id with the service,
    else the service, kind, new version and time, and the namespace when there is one
    (:func:`agent.store.changes.change_key`).
    """

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    service: Mapped[str] = mapped_column(String(200))
    namespace: Mapped[str | None] = mapped_column(String(63), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    from_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    to_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    link: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    known_service: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_changes_at", "at"),
        Index("ix_changes_service_at", "service", "at"),
    )
