"""The service's own metrics, on a registry per app (tests run several apps in one process).

Queue depth and the oldest pending job's age are read from the database at scrape time, so
every replica reports the shared queue, and a scrape never sees a stale in-memory counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.models import Analysis

STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)


class QueueCollector(Collector):
    """``rca_queue_depth`` and ``rca_oldest_pending_job_age_seconds`` from the database."""

    def __init__(self, read: Callable[[], tuple[int, float]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        try:
            depth, age = self._read()
        except Exception:  # noqa: BLE001 - a down database must not break /metrics
            return
        yield GaugeMetricFamily("rca_queue_depth", "analysis jobs pending or running", depth)
        yield GaugeMetricFamily(
            "rca_oldest_pending_job_age_seconds", "age of the oldest pending analysis job", age
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


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.analyses = Counter(
            "rca_analyses",
            "analyses finished, by trigger and outcome",
            ["trigger", "status"],
            registry=self.registry,
        )
        self.stage_duration = Histogram(
            "rca_analysis_duration_seconds",
            "time spent per analysis stage (collect, detect_*, rank, summarize, total)",
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

    def watch_queue(self, read: Callable[[], tuple[int, float]]) -> None:
        self.registry.register(QueueCollector(read))

    def watch_outbox(self, read: Callable[[], int]) -> None:
        self.registry.register(OutboxCollector(read))

    def record_analysis(self, analysis: Analysis, collect_s: float, total_s: float) -> None:
        """Everything one finished analysis tells about stages, sources and tokens."""
        self.analyses.labels(analysis.trigger.kind, "done").inc()
        self.stage_duration.labels("collect").observe(collect_s)
        self.stage_duration.labels("total").observe(total_s)
        for stage, seconds in analysis.timings.items():
            self.stage_duration.labels(stage).observe(seconds)
        for failure in analysis.source_failures:
            self.source_errors.labels(failure.source).inc()
        for kind, count in analysis.tokens.items():
            self.tokens.labels(analysis.backend, kind).inc(count)
        if analysis.summarizer_fallback is not None:
            self.summarizer_fallbacks.labels(analysis.backend).inc()
