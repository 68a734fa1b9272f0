"""The service's side of the Slack bot: :class:`agent.slack.backend.SlackBackend` over the
store and the job queue.

``/rca`` and re-runs queue the same job as ``POST /v1/analyses`` (trigger kind ``slack``);
ratings go through the same function as ``POST /v1/analyses/{id}/feedback``, attributed to
the Slack user; a mention in a thread finds its analysis by the stored (channel, ts).
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from agent.errors import DatabaseUnavailable, RcaError, UsageError
from agent.models import Analysis, FaultType
from agent.service.api import queue_request, store_feedback
from agent.service.charts import evidence_chart
from agent.service.schemas import AnalysisRequest, FeedbackRequest
from agent.service.state import ServiceState
from agent.slack.backend import AnalysisAsk, ReplyTo, Verdict
from agent.store import outbox, queries
from agent.store.tables import AnalysisService

MAX_KNOWN_SERVICES = 500


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


class ServiceSlackBackend:
    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def known_services(self) -> list[str]:
        """Every service an analysis was asked about so far; empty on a fresh install, and
        then ``/rca`` passes any name through."""
        with self.state.sessions.begin() as session:
            names = session.scalars(
                select(AnalysisService.service)
                .distinct()
                .order_by(AnalysisService.service)
                .limit(MAX_KNOWN_SERVICES)
            ).all()
        return list(names)

    def submit_analysis(self, ask: AnalysisAsk, reply_to: ReplyTo) -> str:
        try:
            body = AnalysisRequest(
                services=list(ask.services), start=ask.start, end=ask.end, question=ask.question
            )
        except ValidationError as exc:
            raise UsageError(f"cannot analyse that: {_first_error(exc)}") from None
        try:
            return queue_request(self.state, body, "slack")
        except SQLAlchemyError:
            raise DatabaseUnavailable(
                "the analysis was not queued: the database is unavailable; try again shortly"
            ) from None

    def get_analysis(self, analysis_id: str) -> Analysis | None:
        with self.state.sessions.begin() as session:
            record = queries.get_analysis(session, analysis_id)
        if record is None:
            raise RcaError(f"no analysis {analysis_id!r}")
        if record.status == "failed":
            raise RcaError(f"analysis {analysis_id} failed: {record.error or 'unknown error'}")
        if record.status != "done" or record.result is None:
            return None
        return Analysis.model_validate_json(record.result)

    def get_chart(self, analysis_id: str) -> bytes | None:
        return evidence_chart(self.state.sessions, analysis_id)

    def find_incident(self, channel: str, thread_ts: str) -> str | None:
        with self.state.sessions.begin() as session:
            return outbox.message_analysis(session, channel, thread_ts)

    def remember_post(self, analysis_id: str, channel: str, ts: str) -> None:
        with self.state.sessions.begin() as session:
            outbox.remember_message(session, analysis_id, channel, ts)

    def store_feedback(
        self,
        analysis_id: str,
        verdict: Verdict,
        service: str | None,
        fault_type: FaultType | None,
        note: str,
        user: str,
        resolution: str | None = None,
        resolution_url: str | None = None,
    ) -> None:
        try:
            body = FeedbackRequest(
                verdict=verdict,
                actual_service=service,
                actual_fault_type=fault_type,
                note=note,
                author=user,
                resolution=resolution,
                resolution_url=resolution_url,
            )
        except ValidationError as exc:
            raise UsageError(f"feedback not valid: {_first_error(exc)}") from None
        if store_feedback(self.state, analysis_id, body) is None:
            raise RcaError(f"no analysis {analysis_id!r}")
