"""``/healthz`` (the process answers), ``/readyz`` (the database answers) and ``/metrics``
(Prometheus exposition), with the background checks of the sources.

Readiness depends on the store only: an analysis with a failing source still tells the
on-call engineer so, and a slow Prometheus must not take every replica out of its Service.
So the sources are checked off the request path, by :class:`SourceHealth`: an asyncio task
of the app checks each configured source every ``service.source_check_interval_s``, each
check bounded by ``service.source_check_timeout_s``, and keeps the last result for
``/readyz`` (``sources``; with ``?verbose`` in detail) and ``rca_source_up{source}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from agent.config import Settings
from agent.service.problems import known_query_only
from agent.service.schemas import ErrorBody, Health, Readiness, SourceCheck
from agent.service.state import ServiceState, service_state

log = logging.getLogger("rca.service")
router = APIRouter(tags=["operations"], dependencies=[Depends(known_query_only)])
State = Annotated[ServiceState, Depends(service_state)]


@dataclass(frozen=True)
class Probe:
    """How to ask one source whether it answers: a URL (and headers), or a local directory."""

    url: str | None = None
    headers: Mapping[str, str] | None = None
    directory: Path | None = None


def source_probes(settings: Settings) -> dict[str, Probe]:
    """The configured sources and how each is checked."""
    probes: dict[str, Probe] = {}
    if settings.prometheus_url:
        headers = dict(settings.prometheus.headers)  # a tenant header, where one is needed
        probes["prometheus"] = Probe(settings.prometheus_url.rstrip("/") + "/-/ready", headers)
    if settings.elasticsearch_url:
        probes["elasticsearch"] = Probe(settings.elasticsearch_url.split(",")[0].strip())
    if settings.snapshot_dir is not None:
        probes["snapshot_dir"] = Probe(directory=settings.snapshot_dir)
    return probes


class SourceHealth:
    """The last check of each configured source, refreshed by :meth:`run` in the background.

    ``transport`` lets tests swap the network; ``clock`` stamps the results.
    """

    def __init__(
        self,
        settings: Settings,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.probes = source_probes(settings)
        self.timeout_s = settings.service.source_check_timeout_s
        self.interval_s = settings.service.source_check_interval_s
        self.transport = transport
        self.clock = clock
        self.last: dict[str, SourceCheck] = {}
        self._task: asyncio.Task[None] | None = None

    def up(self) -> dict[str, bool | None]:
        """Each configured source: answered its last check; None before the first."""
        return {name: (c.up if (c := self.last.get(name)) else None) for name in self.probes}

    async def check_once(self) -> None:
        """Check every source at once; none takes longer than the timeout."""
        if not self.probes:
            return
        async with httpx.AsyncClient(timeout=self.timeout_s, transport=self.transport) as client:
            names = list(self.probes)
            results = await asyncio.gather(*(self._check(client, self.probes[n]) for n in names))
        for name, result in zip(names, results, strict=True):
            previous = self.last.get(name)
            if previous is not None and previous.up and not result.up:
                log.warning("source %s stopped answering: %s", name, result.error)
            elif previous is not None and not previous.up and result.up:
                log.info("source %s answers again", name)
            self.last[name] = result

    async def _check(self, client: httpx.AsyncClient, probe: Probe) -> SourceCheck:
        began = time.perf_counter()
        if probe.directory is not None:
            found = probe.directory.is_dir()
            error = None if found else f"{probe.directory} is not a directory"
        else:
            error = await self._ask(client, probe.url or "", probe.headers or {})
        latency = round(time.perf_counter() - began, 4)
        return SourceCheck(
            up=error is None, checked_at=self.clock(), latency_s=latency, error=error
        )

    async def _ask(
        self, client: httpx.AsyncClient, url: str, headers: Mapping[str, str]
    ) -> str | None:
        """None if ``url`` answers anything but a 5xx within the timeout (401 counts: the
        server is there), else why not."""
        try:
            request = client.get(url, headers=dict(headers))
            response = await asyncio.wait_for(request, self.timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return f"no answer within {self.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return f"HTTP {response.status_code}" if response.status_code >= 500 else None

    async def run(self) -> None:
        """Check now, then every interval, until cancelled."""
        while True:
            try:
                await self.check_once()
            except Exception:  # a bug here must not end the checks for good
                log.exception("source checks failed")
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        """Start :meth:`run` on the running event loop (the app's lifespan)."""
        if self._task is None and self.probes:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="rca-sources")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


@router.get("/healthz", operation_id="getHealth", response_model=Health)
def healthz() -> Health:
    """Liveness: the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    operation_id="getReadiness",
    response_model=Readiness,
    response_model_exclude_none=True,
    responses={
        503: {"model": Readiness, "description": "the database does not answer"},
        422: {"model": ErrorBody, "description": "an unknown query parameter"},
    },
)
def readyz(
    state: State,
    verbose: Annotated[
        str | None,
        Query(description="present (?verbose): add each source's last check in detail"),
    ] = None,
) -> JSONResponse:
    """Readiness: the database answers. Sources are reported from the background checks,
    never asked here and never required: an analysis with a failing source still tells the
    on-call engineer so."""
    try:
        with state.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database = True
    except SQLAlchemyError:
        database = False
    body = Readiness(
        status="ready" if database else "unavailable",
        database=database,
        sources=state.sources.up() if state.sources else {},
        checks=dict(state.sources.last) if state.sources and _present(verbose) else None,
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True), status_code=200 if database else 503
    )


def _present(flag: str | None) -> bool:
    """``?verbose`` and ``?verbose=1`` mean yes; absent, ``0`` or ``false`` mean no."""
    return flag is not None and flag.strip().lower() not in ("0", "false", "no")


@router.get(
    "/metrics",
    operation_id="getMetrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus exposition"}},
)
def metrics(state: State) -> Response:
    """The service's own metrics in the Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
