"""The FastAPI application factory: ``create_app(settings)``.

Startup migrates the schema, requeues orphaned jobs on SQLite (one process by design) and
starts the workers and, when a Slack bot token is set, the Slack publisher (and the bot at
``/slack/events``, see :mod:`agent.service.slack_app`); shutdown stops them and hands
unfinished work back; it also runs the background source checks (:mod:`agent.service.health`).
Pure ASGI middlewares run before any route, outermost first: the request id (logs and
``X-Request-ID``), the HTTP request metrics, the body limit (413 before anything is parsed,
408 for a body that does not arrive within ``service.read_timeout_s``) and the webhook
result counter.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent import __version__
from agent.config import Settings
from agent.memory.embed import build_embedder
from agent.memory.runbooks import RunbookLibrary, load_runbooks
from agent.service import api, changes_api, health, pages, problems, webhook
from agent.service.health import SourceHealth, source_probes
from agent.service.jobs import WorkerPool, utcnow
from agent.service.lane import Lane
from agent.service.logs import RequestContext
from agent.service.metrics import HttpMetrics, ServiceMetrics, StatusWatch
from agent.service.runner import preload
from agent.service.slack_app import install_slack
from agent.service.state import ServiceState
from agent.store import outbox, queue
from agent.store.db import database_url, make_engine, migrate
from agent.store.memory import Memory

log = logging.getLogger("rca.service")
WEBHOOK_PATH = "/v1/alertmanager"
_STATUS_RESULT = {
    401: "unauthorized",
    403: "forbidden",
    408: "timeout",
    413: "too_large",
    422: "invalid",
}


class BodyLimit:
    """Answer 413 for bodies over ``limit`` bytes, whether announced or streamed, and 408
    when the whole body has not arrived ``timeout_s`` after the request's head: a client
    that sends headers and stalls would otherwise hold its connection for ever."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = anyio.current_time() + self.timeout_s
        while more:
            message: Message | None = None
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                message = await receive()
            if message is None:
                await self._too_slow(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.error_response(
            413, "too_large", f"request body over the limit of {self.limit} bytes"
        )
        await response(scope, receive, send)

    async def _too_slow(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problems.error_response(
            408,
            "timeout",
            f"request body not received within {self.timeout_s:g} s",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class WebhookCounter(StatusWatch):
    """Count every webhook request by result, including the ones rejected before the route."""

    def watches(self, scope: Scope) -> bool:
        return scope["type"] == "http" and scope["path"] == WEBHOOK_PATH

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        state: dict[str, Any] = scope.get("state", {})
        result = state.get("webhook_result") if status == 202 else None
        if result is None:
            result = _STATUS_RESULT.get(status, "unavailable" if status == 503 else "error")
        self.metrics.webhook.labels(result).inc()


OPENAPI_TAGS = [
    {
        "name": "alertmanager",
        "description": "Alertmanager's webhook: each firing group queues an analysis.",
    },
    {
        "name": "analyses",
        "description": "Ad-hoc analyses, their results, reports, charts and ratings.",
    },
    {"name": "changes", "description": "Deploys and other changes reported by CI/CD."},
    {"name": "operations", "description": "Liveness, readiness and Prometheus metrics."},
]
"""Every tag a route carries, described; operationIds are set on each route and kept stable
(tests/test_openapi.py), so generated clients keep their method names."""


def runbooks_at_start(settings: Settings) -> RunbookLibrary | None:
    """The runbooks folder, read once at start-up: each bad file is logged with its file and
    line and skipped; the service starts regardless."""
    folder = settings.memory.runbooks_dir
    if folder is None:
        return None
    library = load_runbooks(folder)
    for problem in library.problems:
        log.warning("runbook skipped: %s", problem)
    log.info("runbooks: %d loaded from %s", len(library.runbooks), folder)
    return library


def create_app(settings: Settings, clock: Callable[[], datetime] = utcnow) -> FastAPI:
    """The service over ``settings``; nothing connects until the app starts."""
    engine = make_engine(
        database_url(settings.database_url, settings.data_dir),
        pool_size=max(10, settings.service.workers + 5),
    )
    sessions = sessionmaker(engine, expire_on_commit=False)
    metrics = ServiceMetrics(settings.backend, sorted(source_probes(settings)))
    intake = Lane()
    workers = WorkerPool(settings, sessions, metrics, yield_to=intake.wait_idle)
    sources = SourceHealth(settings)
    memory = (
        Memory(
            sessions,
            settings.memory.retention_days,
            clock,
            settings.memory.min_similarity,
            build_embedder(settings.memory),
            settings.memory.embeddings_weight,
        )
        if settings.memory.enabled
        else None
    )
    workers.memory = memory
    state = ServiceState(
        settings,
        engine,
        sessions,
        metrics,
        workers,
        clock,
        sources=sources,
        intake=intake,
        memory=memory,
    )

    def read_queue() -> queue.QueueStats:
        with sessions.begin() as session:
            return queue.queue_stats(session, clock())

    metrics.watch_queue(read_queue)

    def read_outbox() -> int:
        with sessions.begin() as session:
            return outbox.pending_count(session)

    metrics.watch_outbox(read_outbox)
    metrics.watch_sources(sources.up)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        migrate(engine)
        state.runbooks = workers.runbooks = runbooks_at_start(settings)
        preload()
        anyio.current_time()  # imports anyio's backend, which BodyLimit's deadline uses
        await intake.run(webhook.warm_up, state)
        if engine.dialect.name == "sqlite":
            with sessions.begin() as session:
                requeued = queue.requeue_orphans(session, clock())
            if requeued:
                log.info("requeued %d job(s) left running by a previous process", requeued)
        workers.start()
        sources.start()
        if slack is not None:
            slack.start(state)
        try:
            yield
        finally:
            await sources.stop()
            workers.stop()
            if slack is not None:
                slack.stop()
            engine.dispose()

    app = FastAPI(
        title="rca-agent",
        version=__version__,
        summary="Root-cause analysis for on-call teams: Alertmanager webhook and analyses API.",
        openapi_tags=OPENAPI_TAGS,
        lifespan=lifespan,
    )
    app.state.rca = state
    problems.install(app)
    app.include_router(webhook.router)
    app.include_router(api.router)
    app.include_router(changes_api.router)
    pages.install(app, state)  # the HTML report pages, drawn as analyses are stored
    app.include_router(health.router)
    slack = install_slack(app, state)
    app.add_middleware(WebhookCounter, metrics=metrics)
    app.add_middleware(
        BodyLimit,
        limit=settings.service.max_body_bytes,
        timeout_s=settings.service.read_timeout_s,
    )
    app.add_middleware(HttpMetrics, metrics=metrics)
    app.add_middleware(RequestContext)
    return app
