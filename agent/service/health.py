"""``/healthz`` (the process answers), ``/readyz`` (the database answers; which sources are
reachable) and ``/metrics`` (Prometheus exposition)."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from agent.config import Settings
from agent.service.problems import known_query_only
from agent.service.schemas import Health, Readiness
from agent.service.state import ServiceState, service_state

router = APIRouter(tags=["operations"], dependencies=[Depends(known_query_only)])
State = Annotated[ServiceState, Depends(service_state)]


def _reachable(url: str, timeout_s: float) -> bool:
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError:
        return False
    return response.status_code < 500


def source_reachability(settings: Settings) -> dict[str, bool]:
    """Each configured source: does it answer? (Any non-5xx answer counts, even 401.)"""
    timeout = settings.service.source_check_timeout_s
    found: dict[str, bool] = {}
    if settings.prometheus_url:
        found["prometheus"] = _reachable(settings.prometheus_url.rstrip("/") + "/-/ready", timeout)
    if settings.elasticsearch_url:
        first = settings.elasticsearch_url.split(",")[0].strip()
        found["elasticsearch"] = _reachable(first, timeout)
    if settings.snapshot_dir is not None:
        found["snapshot_dir"] = settings.snapshot_dir.is_dir()
    return found


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "the database does not answer"}},
)
def readyz(state: State) -> JSONResponse:
    """Readiness: the database answers. Sources are reported, not required: an analysis
    with a failing source still tells the on-call engineer so."""
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = True
    except SQLAlchemyError:
        database = False
    body = Readiness(
        status="ready" if database else "unavailable",
        database=database,
        sources=source_reachability(state.settings),
    )
    return JSONResponse(body.model_dump(), status_code=200 if database else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
def metrics(state: State) -> Response:
    """The service's own metrics in the Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
