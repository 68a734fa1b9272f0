"""The service's own metrics, on a registry per app (tests run several apps in one process).

The registry carries the client library's process, platform and GC collectors, so
``process_*`` and ``python_*`` are there as in any Python exporter. Queue depth and the
oldest pending job's age are read from the database at scrape time, so every replica reports
the shared queue, and a scrape never sees a stale in-memory counter. Counters start at zero
for every label value the service knows in advance, so a ratio such as failed / all analyses
(the chart's PrometheusRule) has data before the first failure. Names and labels are
documented in docs/service.md (Metrics); ``promtool check metrics`` passes on a live scrape.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent import __version__
from agent.models import Analysis
from agent.store.intake import Outcome
from agent.store.queue import QueueStats

STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SERVICE_TRIGGERS = ("alert", "api", "slack")  # the trigger kinds the service queues
ANALYSIS_RESULTS = ("done", "failed")
WEBHOOK_REJECTIONS = ("unauthorized", "forbidden", "too_large", "invalid", "unavailable", "error")
SLACK_RESULTS = ("posted", "updated", "retry", "failed", "no_channel")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"  # a path no route serves: one label value, not one per path


class QueueCollector(Collector):
    """``rca_queue_depth{state}`` and ``rca_oldest_pending_job_age_seconds`` from the database."""

    def __init__(self, read: Callable[[], QueueStats]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        try:
            stats = self._read()
        except Exception:  # noqa: BLE001 - a down database must not break /metrics
            return
        depth = GaugeMetricFamily(
            "rca_queue_depth", "analysis jobs in the shared queue, by state", labels=["state"]
        )
        depth.add_metric(["pending"], stats.pending)
        depth.add_metric(["running"], stats.running)
        yield depth
        yield GaugeMetricFamily(
            "rca_oldest_pending_job_age_seconds",
            "age of the oldest pending analysis job",
            stats.oldest_pending_age_s,
        )


class OutboxCollector(Collector):
    """``rca_slack_pending_posts`` from the database: every replica reports the shared outbox."""

    def __init__(self, read: Callable[[], int]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        try:
            pending = self._read()
        except Exception:  # noqa: BLE001 - a down database must not break /metrics
            return
        yield GaugeMetricFamily(
            "rca_slack_pending_posts",
            "incident posts waiting for Slack (pending or posting)",
            pending,
        )


class SourceUpCollector(Collector):
    """``rca_source_up{source}``: the last background check of each configured source."""

    def __init__(self, read: Callable[[], Mapping[str, bool | None]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "rca_source_up",
            "1 if the source answered its last background check, 0 if not (absent: not "
            "checked yet)",
            labels=["source"],
        )
        for source, answered in sorted(self._read().items()):
            if answered is not None:
                up.add_metric([source], 1.0 if answered else 0.0)
        yield up


class ServiceMetrics:
    """Every metric of one app. ``backend`` and ``sources`` (the configured summarizer and
    sources) name the label values whose counters start at zero."""

    def __init__(self, backend: str = "extractive", sources: Sequence[str] = ()) -> None:
        self.registry = CollectorRegistry()
        # The client library's defaults, on this registry: process_*, python_info, python_gc_*.
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        Info("rca_build", "version of the running rca-agent", registry=self.registry).info(
            {"version": __version__}
        )
        self.http_requests = Counter(
            "rca_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "rca_http_request_duration_seconds",
            "time to answer an HTTP request, by method, route template and status",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )
        self.analyses = Counter(
            "rca_analyses",
            "analyses finished, by trigger and outcome",
            ["trigger", "status"],
            registry=self.registry,
        )
        self.analysis_duration = Histogram(
            "rca_analysis_duration_seconds",
            "time of one analysis from start to result (collection included)",
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.stage_duration = Histogram(
            "rca_analysis_stage_duration_seconds",
            "time spent per analysis stage (collect, detect_metrics, detect_logs, rank, summarize)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.source_duration = Histogram(
            "rca_source_query_duration_seconds",
            "time spent collecting from each source (one observation per source and analysis)",
            ["source"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.source_errors = Counter(
            "rca_source_errors",
            "source failures recorded in analyses",
            ["source"],
            registry=self.registry,
        )
        self.tokens = Counter(
            "rca_summarizer_tokens",
            "tokens used by the summarizer",
            ["backend", "kind"],
            registry=self.registry,
        )
        self.summarizer_fallbacks = Counter(
            "rca_summarizer_fallbacks",
            "analyses whose LLM summary was replaced by the extractive one, by backend",
            ["backend"],
            registry=self.registry,
        )
        self.webhook = Counter(
            "rca_webhook_requests",
            "Alertmanager notifications by result",
            ["result"],
            registry=self.registry,
        )
        self.slack_posts = Counter(
            "rca_slack_posts",
            "deliveries of incident messages to Slack, by result",
            ["result"],
            registry=self.registry,
        )
        self._start_at_zero(backend, sources)

    def _start_at_zero(self, backend: str, sources: Sequence[str]) -> None:
        for trigger in SERVICE_TRIGGERS:
            for result in ANALYSIS_RESULTS:
                self.analyses.labels(trigger, result)
        for outcome in [*(o.value for o in Outcome), *WEBHOOK_REJECTIONS]:
            self.webhook.labels(outcome)
        for result in SLACK_RESULTS:
            self.slack_posts.labels(result)
        for source in sources:
            self.source_errors.labels(source)
        self.summarizer_fallbacks.labels(backend)

    def watch_queue(self, read: Callable[[], QueueStats]) -> None:
        self.registry.register(QueueCollector(read))

    def watch_outbox(self, read: Callable[[], int]) -> None:
        self.registry.register(OutboxCollector(read))

    def watch_sources(self, read: Callable[[], Mapping[str, bool | None]]) -> None:
        self.registry.register(SourceUpCollector(read))

    def record_request(self, method: str, route: str, status: int, seconds: float) -> None:
        verb = method if method in HTTP_METHODS else "other"
        self.http_requests.labels(verb, route, str(status)).inc()
        self.http_duration.labels(verb, route, str(status)).observe(seconds)

    def record_analysis(self, analysis: Analysis, collect_s: float, total_s: float) -> None:
        """Everything one finished analysis tells about stages, sources and tokens."""
        self.analyses.labels(analysis.trigger.kind, "done").inc()
        self.analysis_duration.observe(total_s)
        self.stage_duration.labels("collect").observe(collect_s)
        for stage, seconds in analysis.timings.items():
            self.stage_duration.labels(stage).observe(seconds)
        for failure in analysis.source_failures:
            self.source_errors.labels(failure.source).inc()
        for kind, count in analysis.tokens.items():
            self.tokens.labels(analysis.backend, kind).inc(count)
        if analysis.summarizer_fallback is not None:
            self.summarizer_fallbacks.labels(analysis.backend).inc()


def route_template(scope: Scope, fallback: Sequence[tuple[re.Pattern[str], str]] = ()) -> str:
    """The template of the route that served the request, e.g. ``/v1/analyses/{analysis_id}``:
    one label value per route, whatever the ids. A request answered before routing (413,
    408) has none; ``fallback`` (pattern, template) pairs name the route it was meant for."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    for pattern, template in fallback:
        if pattern.fullmatch(scope["path"]):
            return template
    return UNMATCHED_ROUTE


def api_templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    """The JSON API's route templates from its OpenAPI paths (the public description of the
    routes, whatever the framework's internal route objects look like)."""
    paths = app.openapi().get("paths", {}) if hasattr(app, "openapi") else {}
    return [(compile_path(template)[0], template) for template in paths]


class StatusWatch:
    """Pure ASGI middleware that passes each HTTP request on and, once the app has answered
    or raised, calls :meth:`finished` with the response status (500 when no response
    started) and the seconds it took. Subclasses say which requests they watch and what a
    finished one records."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    def watches(self, scope: Scope) -> bool:
        return scope["type"] == "http"

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.watches(scope):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self.finished(scope, status, time.perf_counter() - began)


class HttpMetrics(StatusWatch):
    """Counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        super().__init__(app, metrics)
        self._fallback: list[tuple[re.Pattern[str], str]] | None = None

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        self.metrics.record_request(scope["method"], self._route(scope), status, seconds)

    def _route(self, scope: Scope) -> str:
        if "route" not in scope and self._fallback is None:
            self._fallback = api_templates(scope.get("app"))  # once, on the first such request
        return route_template(scope, self._fallback or ())
