"""``/v1/analyses``: ad-hoc requests, status and results, reports, charts and feedback.

The three read routes of one analysis (its JSON, report and chart) also take a share link
(``?share=...``, :mod:`agent.service.share`) instead of a token; the links in their answers
then carry the same share token, so a report opened from Slack can show its chart.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BeforeValidator

from agent.memory.fingerprint import fingerprint_of
from agent.memory.recall import PastIncident
from agent.models import Analysis, Trigger
from agent.service.auth import read_one, require
from agent.service.charts import evidence_chart
from agent.service.listing import PageCursor, PageLimit, ServiceFilter, page_of_analyses
from agent.service.problems import ApiError, known_query_only
from agent.service.schemas import (
    AnalysisCreated,
    AnalysisPage,
    AnalysisRequest,
    AnalysisStatus,
    AnalysisSummary,
    ErrorBody,
    FeedbackRequest,
    FeedbackStored,
    IncidentState,
    JobStatus,
    SimilarPage,
)
from agent.service.share import with_share
from agent.service.state import ServiceState, service_state
from agent.store import queries
from agent.store.intake import NewJob, enqueue
from agent.store.memory import Memory
from agent.summarize.redact import Redactor

router = APIRouter(
    prefix="/v1/analyses", tags=["analyses"], dependencies=[Depends(known_query_only)]
)
State = Annotated[ServiceState, Depends(service_state)]
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or unknown token"},
    403: {"model": ErrorBody, "description": "the token lacks the scope"},
    503: {"model": ErrorBody, "description": "database unavailable"},
}
_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such analysis"}
}
_READ_ONE: dict[int | str, dict[str, Any]] = {
    **_AUTH,
    401: {
        "model": ErrorBody,
        "description": "missing or unknown token, or a share link that is altered, expired or "
        "for another analysis",
    },
}
_QUERY: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "an unknown query parameter"}
}
_READ = [Depends(require("read"))]
Shared = Annotated[str | None, Depends(read_one)]
_WRITE = [Depends(require("write"))]


def _not_found(analysis_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no analysis {analysis_id!r}")


def _record(state: ServiceState, analysis_id: str) -> queries.AnalysisRecord:
    with state.sessions.begin() as session:
        record = queries.get_analysis(session, analysis_id)
    if record is None:
        raise _not_found(analysis_id)
    return record


@router.post(
    "",
    operation_id="requestAnalysis",
    status_code=202,
    response_model=AnalysisCreated,
    responses={**_AUTH, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    dependencies=_WRITE,
)
def request_analysis(body: AnalysisRequest, state: State) -> AnalysisCreated:
    """Queue an ad-hoc analysis of some services over a time range; 202 with its id."""
    analysis_id = queue_request(state, body, "api")
    return AnalysisCreated(id=analysis_id, status="pending", url=f"/v1/analyses/{analysis_id}")


def queue_request(state: ServiceState, body: AnalysisRequest, kind: Literal["api", "slack"]) -> str:
    """Queue an ad-hoc analysis (the API's, or Slack's ``/rca``); returns its id."""
    now = state.clock()
    start, end = body.range(now)
    # A stated start says since when it hurts (Slack's default "last 30m" arrives as one too,
    # so only the API's counts).
    since = start if body.start is not None and kind == "api" else None
    trigger = Trigger(kind=kind, services=body.services, question=body.question, since=since)
    job = NewJob(
        id="an-" + secrets.token_hex(10),
        trigger=trigger,
        incident_start=start,
        window_end=end,
        services=body.services,
    )
    with state.sessions.begin() as session:
        enqueue(session, job, now)
    state.workers.wake()
    return job.id


def _timestamp_text(value: Any) -> Any:
    """Only RFC 3339 text is a timestamp here; pydantic would also read ``0.2`` as seconds
    since 1970, which the schema (``format: date-time``) does not promise."""
    if not isinstance(value, str):
        return value
    try:
        float(value)  # 1715680800, 0.2, 5.56e-125, nan: numbers, not RFC 3339
    except ValueError:
        return value
    raise ValueError("expected an RFC 3339 timestamp, e.g. 2024-05-14T10:00:00Z")


@router.get(
    "",
    operation_id="listAnalyses",
    response_model=AnalysisPage,
    responses={**_AUTH, 422: {"model": ErrorBody}},
    dependencies=_READ,
)
def list_analyses(
    state: State,
    service: ServiceFilter = None,
    status: JobStatus | None = None,
    since: Annotated[AwareDatetime | None, BeforeValidator(_timestamp_text)] = None,
    limit: PageLimit = None,
    cursor: PageCursor = None,
) -> AnalysisPage:
    """Analyses, newest first, filtered by service, status and creation time."""
    listing = page_of_analyses(
        state, service=service, status=status, since=since, limit=limit, cursor=cursor
    )
    items = [
        AnalysisSummary(
            id=r.id,
            status=r.status,
            trigger=r.trigger,
            created_at=r.created_at,
            finished_at=r.finished_at,
            root_service=r.root_service,
            confidence=r.confidence,
            error=r.error,
        )
        for r in listing.records
    ]
    return AnalysisPage(items=items, next_cursor=listing.next_cursor)


@router.get(
    "/{analysis_id}",
    operation_id="getAnalysis",
    response_model=AnalysisStatus,
    responses={**_READ_ONE, **_FOUND, **_QUERY},
)
def get_analysis(analysis_id: str, state: State, share: Shared) -> AnalysisStatus:
    """The job's state; once done, the full Analysis. A token or a share link."""
    record = _record(state, analysis_id)
    done = record.status == "done"
    incident = (
        IncidentState(status=record.incident_status, resolved_at=record.resolved_at)
        if record.incident_status
        else None
    )
    return AnalysisStatus(
        id=record.id,
        status=record.status,
        trigger=record.trigger,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        attempts=record.attempts,
        error=record.error,
        incident=incident,
        report_url=with_share(f"/v1/analyses/{record.id}/report.md", share) if done else None,
        chart_url=(
            with_share(f"/v1/analyses/{record.id}/chart.png", share) if record.has_chart else None
        ),
        analysis=Analysis.model_validate_json(record.result) if done and record.result else None,
    )


@router.get(
    "/{analysis_id}/report.md",
    operation_id="getAnalysisReport",
    response_class=Response,
    responses={
        200: {"content": {"text/markdown": {}}, "description": "the Markdown report"},
        409: {"model": ErrorBody, "description": "the analysis is not done"},
        **_READ_ONE,
        **_FOUND,
        **_QUERY,
    },
)
def get_report(analysis_id: str, state: State, share: Shared) -> Response:
    """The Markdown report of a finished analysis. A token or a share link."""
    from agent.report import markdown_report

    record = _record(state, analysis_id)
    if record.status != "done" or record.result is None:
        raise ApiError(409, "not_done", f"analysis {analysis_id!r} is {record.status}")
    analysis = Analysis.model_validate_json(record.result)
    chart = with_share(f"/v1/analyses/{analysis_id}/chart.png", share) if record.has_chart else None
    text = markdown_report(analysis, chart=chart)
    return Response(text, media_type="text/markdown; charset=utf-8")


@router.get(
    "/{analysis_id}/chart.png",
    operation_id="getAnalysisChart",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the evidence chart"},
        **_READ_ONE,
        **_FOUND,
        **_QUERY,
    },
)
def get_chart(analysis_id: str, state: State, share: Shared) -> Response:
    """The evidence chart (PNG), rendered on first request and then cached; 404 when the
    analysis is not done or has nothing to draw. A token or a share link."""
    png = evidence_chart(state.sessions, analysis_id)
    if png is None:
        _record(state, analysis_id)  # 404 "no analysis" when it does not exist at all
        raise ApiError(404, "not_found", f"no chart for analysis {analysis_id!r}")
    return Response(png, media_type="image/png")


@router.post(
    "/{analysis_id}/feedback",
    operation_id="rateAnalysis",
    status_code=201,
    response_model=FeedbackStored,
    responses={**_AUTH, **_FOUND, 413: {"model": ErrorBody}, 422: {"model": ErrorBody}},
    dependencies=_WRITE,
)
def post_feedback(analysis_id: str, body: FeedbackRequest, state: State) -> FeedbackStored:
    """Rate an analysis: the verdict, the actual root cause, a note, what fixed it."""
    stored = store_feedback(state, analysis_id, body)
    if stored is None:
        raise _not_found(analysis_id)
    return FeedbackStored(**stored.__dict__)


def store_feedback(
    state: ServiceState, analysis_id: str, body: FeedbackRequest
) -> queries.FeedbackRecord | None:
    """The one way feedback is stored (the API, Slack's buttons); None: no such analysis."""
    now: datetime = state.clock()
    with state.sessions.begin() as session:
        return queries.add_feedback(
            session,
            analysis_id,
            verdict=body.verdict,
            actual_service=body.actual_service,
            actual_fault_type=body.actual_fault_type.value if body.actual_fault_type else None,
            note=body.note,
            author=body.author,
            now=now,
            resolution=_redacted(state, body.resolution),
            resolution_url=body.resolution_url,
        )


def _redacted(state: ServiceState, text: str | None) -> str | None:
    """What fixed it is shown with later incidents and quoted in prompts: stored redacted
    like prompts are (a password pasted into a resolution does not outlive the rating)."""
    return Redactor(state.settings.summarizer.redact_patterns)(text) if text else text


@router.get(
    "/{analysis_id}/similar",
    operation_id="similarAnalyses",
    response_model=SimilarPage,
    responses={
        **_AUTH,
        **_FOUND,
        409: {"model": ErrorBody, "description": "the analysis is not done, or memory is off"},
        **_QUERY,
    },
    dependencies=_READ,
)
def get_similar(
    analysis_id: str, state: State, k: Annotated[int, Query(ge=1, le=50)] = 5
) -> SimilarPage:
    """The k most similar past analyses (incident memory), best first: similarity, the
    reasons, their verdict and what fixed them."""
    memory = state.memory
    if memory is None:
        raise ApiError(409, "memory_off", "incident memory is off (memory.enabled)")
    record = _record(state, analysis_id)
    if record.status != "done" or record.result is None:
        raise ApiError(409, "not_done", f"analysis {analysis_id!r} is {record.status}")
    items = similar_to(memory, analysis_id, Analysis.model_validate_json(record.result), k)
    return SimilarPage(analysis_id=analysis_id, items=items)


def similar_to(memory: Memory, analysis_id: str, analysis: Analysis, k: int) -> list[PastIncident]:
    """Past analyses like a stored one, by its stored fingerprint (or, for an analysis from
    before memory or past retention, one taken from its result now)."""
    fp = memory.fingerprint_of(analysis_id) or fingerprint_of(analysis)
    return memory.similar(fp, k, exclude=analysis_id, embedding=memory.embedding_of(analysis_id))


@router.delete(
    "/{analysis_id}",
    operation_id="deleteAnalysis",
    status_code=204,
    response_class=Response,
    responses={**_AUTH, **_FOUND, **_QUERY},
    dependencies=_WRITE,
)
def delete_analysis(analysis_id: str, state: State) -> Response:
    """Delete an analysis and everything stored about it, incident memory included: it is
    never shown as similar again, and its prior no longer counts."""
    with state.sessions.begin() as session:
        deleted = queries.delete_analysis(session, analysis_id)
    if not deleted:
        raise _not_found(analysis_id)
    if state.memory is not None:
        state.memory.forget(analysis_id)
    return Response(status_code=204)
