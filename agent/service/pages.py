"""The report pages, HTML next to the JSON API: ``GET /analyses`` (newest first, filtered by
service, status and rating) and ``GET /analyses/{id}`` (one analysis: root cause,
candidates, every evidence item with its chart, timeline, notes, source failures, rating
buttons), with ``GET /analyses/{id}/analysis.json`` (the download) and
``POST /analyses/{id}/feedback`` (the rating form).

Access is the API's: an API token (``Authorization: Bearer``) with read scope, or a share
link (``?share=``, :mod:`agent.service.share`) for that one analysis; with no token
configured the pages are open, as the API is. The list takes no share link.

Rating from a page: the form writes the same ``feedback`` row as the API and Slack's buttons
(:func:`agent.service.api.store_feedback`). It is admitted by a write-scope token, by an
open service, or by a share link **for that analysis only**: whoever can read the Slack
post can press its 👍 too, so the link's holder may rate the analysis it was made for, and
nothing else (no other analysis, no other write). Such a rating is marked ``share:<name>``
(the name is whatever the person typed: self-asserted), one from a token ``web:<name>``;
a share link adds at most :data:`MAX_SHARED_RATINGS` ratings per analysis. A form posted
from another site (``Origin``/``Sec-Fetch-Site``) is refused.

Errors are pages too: :class:`PageRoute` renders the API's errors as HTML with the same
status. :mod:`agent.page` (Jinja2, numpy) is imported by the first page drawn, not at start:
an idle service stays as small as it was.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, ValidationError
from sqlalchemy.exc import SQLAlchemyError

from agent.memory.recall import PastIncident
from agent.models import Analysis
from agent.service.api import Shared, store_feedback
from agent.service.auth import ApiCredentials, require
from agent.service.listing import PageCursor, PageLimit, ServiceFilter, page_of_analyses
from agent.service.problems import ApiError, known_query_only
from agent.service.schemas import FeedbackRequest, JobStatus
from agent.service.share import SHARE_PARAM, ShareLinkRefused, signer_for, with_share
from agent.service.state import ServiceState, service_state
from agent.snapshot import Snapshot
from agent.store import queries, ratings

if TYPE_CHECKING:
    from agent.page import JobView
    from agent.page.render import EvidenceView

log = logging.getLogger("rca.service")
MAX_SHARED_RATINGS = 20
LIST_PATH = "/analyses"
_FORM_FIELDS = (
    "verdict",
    "actual_service",
    "actual_fault_type",
    "note",
    "author",
    "share",
    "resolution",
    "resolution_url",
)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
Verdict = Literal["correct", "wrong", "partially"]
Rating = Literal["correct", "partially", "wrong", "unrated"]
State = Annotated[ServiceState, Depends(service_state)]


def _blank_is_none(value: Any) -> Any:
    """The filter form sends every field; an empty one means "any"."""
    return None if value == "" else value


class PageRoute(APIRoute):
    """A route whose errors (auth, not found, bad query) are answered as an HTML page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            from agent.page import error_page

            try:
                return await handler(request)
            except ApiError as exc:
                return page(error_page(exc.status, exc.code, exc.message), exc.status, exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()))
                message = f"{where}: {first.get('msg', 'invalid')}"
                return page(error_page(422, "invalid", message), 422)

        return page_handler


router = APIRouter(
    prefix=LIST_PATH,
    route_class=PageRoute,
    include_in_schema=False,
    dependencies=[Depends(known_query_only)],
)


def page(html: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """An HTML answer with the page's policy: no script, no referrer to other sites (a share
    token in the address must not leak to Prometheus or Kibana; the page's own form still
    sends its origin), not cached (it may hold a share token)."""
    from agent.page.render import csp, encode_page

    return Response(
        encode_page(html),
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": csp(standalone=False),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-store",
            **(headers or {}),
        },
    )


def page_path(analysis_id: str) -> str:
    return f"{LIST_PATH}/{quote(analysis_id, safe='')}"


def _record(state: ServiceState, analysis_id: str) -> queries.AnalysisRecord:
    with state.sessions.begin() as session:
        record = queries.get_analysis(session, analysis_id)
    if record is None:
        raise ApiError(404, "not_found", f"no analysis {analysis_id!r}")
    return record


@router.get("", dependencies=[Depends(require("read"))])
def analyses_page(
    state: State,
    service: Annotated[ServiceFilter, BeforeValidator(_blank_is_none)] = None,
    status: Annotated[JobStatus | None, BeforeValidator(_blank_is_none)] = None,
    rating: Annotated[Rating | None, BeforeValidator(_blank_is_none)] = None,
    cursor: PageCursor = None,
    limit: PageLimit = None,
) -> Response:
    """Analyses, newest first; filter by service, status and latest rating."""
    from agent.page import ListRow, list_page
    from agent.page.render import trigger_text

    listing = page_of_analyses(
        state,
        service=service,
        status=status,
        rating=rating,
        limit=limit,
        cursor=cursor,
        with_verdicts=True,
    )
    rows = [
        ListRow(
            id=r.id,
            href=page_path(r.id),
            status=r.status,
            trigger=trigger_text(r.trigger),
            created_at=r.created_at,
            root_service=r.root_service,
            confidence=r.confidence,
            rating=listing.verdicts.get(r.id),
            error=r.error,
        )
        for r in listing.records
    ]
    filters: dict[str, str | None] = {"service": service, "status": status, "rating": rating}
    kept = {k: v for k, v in filters.items() if v}
    if limit:
        kept["limit"] = str(limit)
    next_cursor = listing.next_cursor
    next_href = f"{LIST_PATH}?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None
    statuses = ("pending", "running", "done", "failed")
    return page(list_page(rows, filters, LIST_PATH, next_href, statuses, queries.RATINGS))


def _job(record: queries.AnalysisRecord) -> JobView:
    from agent.page import JobView

    return JobView(
        id=record.id,
        status=record.status,
        trigger=record.trigger,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        attempts=record.attempts,
        error=record.error,
        incident_status=record.incident_status,
        resolved_at=record.resolved_at,
    )


@dataclass(frozen=True)
class Finished:
    analysis: Analysis
    views: list[EvidenceView]


class FinishedPages:
    """The parsed result and the evidence views (charts, sample lines) of the last
    :data:`size` finished analyses stored or viewed. A finished analysis never changes, and
    during an incident everyone on the call opens the same page: reading the chart data,
    parsing it and drawing (about two thirds of a page's CPU) is done once, by the worker
    that stored the analysis (:meth:`predraw`), or else by the first view. Keyed by id and
    finish time, so a re-run under the same id is drawn afresh."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, datetime | None], Finished] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, state: ServiceState, record: queries.AnalysisRecord) -> Finished:
        from agent.page.render import evidence_views

        key = (record.id, record.finished_at)
        with self._lock:
            if (found := self._items.get(key)) is not None:
                self._items.move_to_end(key)
                return found
        assert record.result is not None
        with state.sessions.begin() as session:
            chart = queries.get_chart(session, record.id)
        material = Snapshot.model_validate_json(chart[1]) if chart and chart[1] else None
        analysis = Analysis.model_validate_json(record.result)
        made = Finished(analysis, evidence_views(analysis, material))
        with self._lock:
            self._items[key] = made
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return made

    def drawn(self) -> list[str]:
        """The ids held, least recently used first."""
        with self._lock:
            return [analysis_id for analysis_id, _ in self._items]

    def predraw(self, state: ServiceState, analysis_id: str) -> None:
        """Draw a just-stored analysis (a ``WorkerPool`` ``on_done`` callback: in the worker's
        thread, at its low priority), so the first reader from Slack finds it drawn. A failure
        is logged, never raised: the page then draws on its first view."""
        try:
            with state.sessions.begin() as session:
                record = queries.get_analysis(session, analysis_id)
            if record is not None and record.status == "done" and record.result is not None:
                self.get(state, record)
        except (SQLAlchemyError, ValueError) as exc:
            log.warning("report page of %s not drawn ahead: %s", analysis_id, exc)


def install(app: FastAPI, state: ServiceState) -> None:
    """Serve the pages, and draw each analysis's page as its worker stores it."""
    cache = FinishedPages()
    app.state.finished_pages = cache
    app.include_router(router)
    state.workers.on_done.append(lambda analysis_id: cache.predraw(state, analysis_id))


def finished_pages(request: Request) -> FinishedPages:
    found: FinishedPages = request.app.state.finished_pages
    return found


@router.get("/{analysis_id}")
def analysis_report(
    analysis_id: str,
    state: State,
    share: Shared,
    cache: Annotated[FinishedPages, Depends(finished_pages)],
    rated: Annotated[Verdict | None, BeforeValidator(_blank_is_none)] = None,
) -> Response:
    """The report page of one analysis; while it runs, a page that reloads itself."""
    from agent.page import PageLinks, analysis_page, pending_page

    record = _record(state, analysis_id)
    list_href = LIST_PATH if share is None else None
    if record.status != "done" or record.result is None:
        return page(pending_page(_job(record), list_href))
    finished = cache.get(state, record)
    with state.sessions.begin() as session:
        given = ratings.ratings_of(session, analysis_id)
    seen = _seen_before(state, analysis_id, finished.analysis)
    v1 = f"/v1/analyses/{quote(analysis_id, safe='')}"
    links = PageLinks(
        json_href=with_share(f"{page_path(analysis_id)}/analysis.json", share),
        markdown_href=with_share(f"{v1}/report.md", share),
        chart_src=with_share(f"{v1}/chart.png", share) if record.has_chart else None,
        list_href=list_href,
        feedback_action=f"{page_path(analysis_id)}/feedback",
        share=share,
    )
    job = _job(record)
    html = analysis_page(
        finished.analysis, None, links, job, given, rated, views=finished.views, seen=seen
    )
    return page(html)


def _seen_before(state: ServiceState, analysis_id: str, analysis: Analysis) -> list[PastIncident]:
    """The page's "Seen before" section (none when memory is off)."""
    if state.memory is None or state.settings.memory.similar <= 0:
        return []
    from agent.service.api import similar_to

    return similar_to(state.memory, analysis_id, analysis, state.settings.memory.similar)


@router.get("/{analysis_id}/analysis.json")
def analysis_download(analysis_id: str, state: State, share: Shared) -> Response:
    """The analysis as a JSON file (what ``GET /v1/analyses/{id}`` holds in ``analysis``)."""
    record = _record(state, analysis_id)
    if record.status != "done" or record.result is None:
        raise ApiError(409, "not_done", f"analysis {analysis_id!r} is {record.status}")
    name = _SAFE_NAME.sub("_", analysis_id)
    return Response(
        record.result.encode("utf-8", "replace"),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )


async def rating_form(request: Request) -> dict[str, str]:
    """The rating form's fields (``application/x-www-form-urlencoded``, first value each)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_media_type", "send the rating form as a web form")
    text = (await request.body()).decode("utf-8", "replace")
    try:
        fields = parse_qs(text, keep_blank_values=True, max_num_fields=len(_FORM_FIELDS) + 4)
    except ValueError:
        raise ApiError(422, "invalid", "body: too many form fields") from None
    return {k: v[0] for k, v in fields.items() if k in _FORM_FIELDS}


def _same_site(request: Request) -> None:
    """Refuse a form posted from another site (it could ride on an open service or on a
    share token it learnt): by ``Sec-Fetch-Site`` where the browser sends it, else by
    ``Origin``."""
    fetched_from = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if fetched_from is not None:
        foreign = fetched_from not in ("same-origin", "none")
    else:
        foreign = origin not in (None, "null") and urlsplit(origin).netloc != request.url.netloc
    if foreign:
        raise ApiError(403, "cross_site", "a rating must be sent from the report page itself")


def _door(request: Request, analysis_id: str, credentials: Any, share: str | None) -> str:
    """Who may rate (see the module docstring): ``share`` or ``web``; raises otherwise."""
    settings = request.app.state.rca.settings
    signer = signer_for(settings)
    if not settings.api_tokens or signer is None:
        return "web"
    if share:
        try:
            signer.verify(analysis_id, share, now=request.app.state.rca.clock())
        except ShareLinkRefused as exc:
            code = "share_link_expired" if exc.problem == "expired" else "share_link_invalid"
            raise ApiError(401, code, str(exc), {"WWW-Authenticate": "Bearer"}) from None
        return "share"
    require("write")(request, credentials)
    return "web"


@router.post("/{analysis_id}/feedback", status_code=303)
def rate(
    analysis_id: str,
    request: Request,
    state: State,
    credentials: ApiCredentials,
    form: Annotated[dict[str, str], Depends(rating_form)],
) -> Response:
    """Store a rating from the page's form, then show the page again (303)."""
    _same_site(request)
    door = _door(request, analysis_id, credentials, form.get(SHARE_PARAM) or None)
    share = form.get(SHARE_PARAM) if door == "share" else None  # verified: safe in Location
    record = _record(state, analysis_id)
    if door == "share":
        with state.sessions.begin() as session:
            given = ratings.count_by_author_prefix(session, analysis_id, "share:")
        if given >= MAX_SHARED_RATINGS:
            raise ApiError(
                429, "too_many_ratings", f"a share link may add {MAX_SHARED_RATINGS} ratings"
            )
    verdict = form.get("verdict", "")
    service = form.get("actual_service", "").strip() or None
    fault = form.get("actual_fault_type", "").strip() or None
    if verdict == "correct" and service is None and record.result is not None:
        cause = Analysis.model_validate_json(record.result).root_cause  # as Slack's 👍 does
        if cause is not None:
            service, fault = cause.service, fault or cause.fault_type.value
    name = form.get("author", "").strip()[:150] or "anonymous"
    try:
        body = FeedbackRequest.model_validate(
            {
                "verdict": verdict,
                "actual_service": service,
                "actual_fault_type": fault,
                "note": form.get("note", ""),
                "author": f"{door}:{name}",
                "resolution": form.get("resolution", "").strip() or None,
                "resolution_url": form.get("resolution_url", "").strip() or None,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, "invalid", f"form.{where}: {first['msg']}") from None
    if store_feedback(state, analysis_id, body) is None:
        raise ApiError(404, "not_found", f"no analysis {analysis_id!r}")
    target = with_share(page_path(analysis_id), share)
    target += ("&" if share else "?") + f"rated={body.verdict}#rate"
    return Response(status_code=303, headers={"Location": target})
