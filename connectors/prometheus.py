"""Prometheus (or Thanos, Mimir, VictoriaMetrics: anything serving ``/api/v1``) as a metrics
source, on the ``prometheus-api-client`` library.

:class:`PrometheusSource` runs the signal catalog (``connectors/catalog.py``) as range
queries over one incident's window: a few in flight at once, each bounded by its own timeout
and retried with backoff when the server could not be reached or answered 429/5xx, all
bounded by one deadline. A query that fails is recorded in :attr:`MetricFetch.failures` and
the others still count; only a source that cannot be used at all (unreachable, wrong
credentials) raises :class:`~agent.errors.SourceError`, whose message names the source and
says what to fix.
"""

from __future__ import annotations

import contextvars
import itertools
import re
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from statistics import median
from typing import Any, TypeVar

import requests
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect
from urllib3.util.retry import Retry

from agent import tracing
from agent.errors import SourceError
from agent.models import Edge, Signal
from connectors.catalog import Catalog, CatalogSignal, TopologyQuery, load_catalog
from connectors.promplan import QueryPlan, scope_filter, to_edges, to_signals, until_data_ends
from connectors.promql import duration
from connectors.settings import PrometheusSettings

SOURCE = "prometheus"
FALLBACK_INTERVAL_S = 30.0
PROBE_RANGE_S = 600
DEFAULT_BUDGET_S = 60.0  # when a caller gives no deadline
_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)", re.DOTALL)
_T = TypeVar("_T")


class SourceUnusable(SourceError):
    """The server cannot be used at all (unreachable, credentials rejected): no point in
    running the remaining queries. Callers that only know SourceError still catch it."""


@dataclass
class MetricFetch:
    """What one fetch returned: signals, call edges, and the queries that failed."""

    signals: list[Signal] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CheckResult:
    """One catalog query run once by ``rca check-sources``."""

    name: str
    series: int = 0
    services: tuple[str, ...] = ()
    error: str | None = None


def connect(url: str, settings: PrometheusSettings) -> PrometheusConnect:
    """A client with the configured auth, TLS and headers; retries are ours, not urllib3's."""
    session = requests.Session()
    session.verify = str(settings.ca_bundle) if settings.ca_bundle else settings.verify_tls
    headers = dict(settings.headers)
    if settings.bearer_token is not None:
        headers["Authorization"] = f"Bearer {settings.bearer_token.get_secret_value()}"
    auth = None
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        auth = (settings.username, password)
    return PrometheusConnect(
        url=url.rstrip("/"),
        headers=headers,
        retry=Retry(total=0, read=False, raise_on_status=False),  # requests' own default
        auth=auth,
        session=session,
        timeout=settings.timeout_s,
    )


class PrometheusSource:
    """The catalog's signals for one window, from one Prometheus-compatible server."""

    name = SOURCE

    def __init__(
        self,
        url: str,
        settings: PrometheusSettings,
        catalog: Catalog | None = None,
        client: PrometheusConnect | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self.catalog = catalog or load_catalog(settings.catalog)
        self.client = client or connect(url, settings)

    # --- one request, with timeout, retries and error messages ------------------------------

    def _call(self, what: str, request: Callable[[float], _T], deadline: float) -> _T:
        attempt = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SourceError(SOURCE, f"{what}: time budget spent before it could run")
            timeout = min(self.settings.timeout_s, remaining)
            try:
                return request(timeout)
            except requests.Timeout:
                raise SourceError(SOURCE, f"{what}: no answer within {timeout:.1f} s") from None
            except requests.ConnectionError as exc:
                error: SourceError = SourceUnusable(
                    SOURCE, f"cannot connect to {self.url}: {_reason(exc)}"
                )
                retryable = True
            except requests.RequestException as exc:
                raise SourceError(SOURCE, f"{what}: request failed: {exc}") from None
            except PrometheusApiClientException as exc:
                status, detail = _status(exc)
                if status in (401, 403):
                    raise SourceUnusable(
                        SOURCE,
                        f"{self.url} rejected the credentials (HTTP {status}): check "
                        "prometheus.bearer_token or prometheus.username/password",
                    ) from None
                error = SourceError(SOURCE, f"{what}: HTTP {status}: {detail}")
                retryable = status == 429 or status >= 500
            except (ValueError, KeyError, TypeError):
                raise SourceError(
                    SOURCE, f"{what}: {self.url} did not answer with the Prometheus API's JSON"
                ) from None
            delay = self.settings.backoff_s * 2**attempt
            if not retryable or attempt >= self.settings.retries:
                raise error
            if time.monotonic() + delay >= deadline:
                raise error
            time.sleep(delay)
            attempt += 1

    def _range(self, query: str, plan: QueryPlan, what: str, deadline: float) -> list[Any]:
        def request(timeout: float) -> list[Any]:
            return self.client.custom_query_range(
                query, plan.start, plan.end, str(plan.step_s), timeout=timeout
            )

        with tracing.span("prometheus query_range", self._span(what, query), kind="client") as s:
            result = self._call(what, request, deadline)
            s.set_attribute("rca.series", len(result))
            return result

    def range_query(self, query: str, plan: QueryPlan, what: str, deadline: float) -> list[Any]:
        """One range query over the plan's window, with this source's timeout, retries and
        error messages (``what`` names it in them); the ``matrix`` result."""
        return self._range(query, plan, what, deadline)

    def _instant(self, query: str, at: datetime, what: str, deadline: float) -> list[Any]:
        def request(timeout: float) -> list[Any]:
            params = {"time": f"{at.timestamp():.3f}"}
            return self.client.custom_query(query, params=params, timeout=timeout)

        with tracing.span("prometheus query", self._span(what, query), kind="client") as s:
            result = self._call(what, request, deadline)
            s.set_attribute("rca.series", len(result))
            return result

    def _span(self, what: str, query: str) -> dict[str, tracing.Attribute | None]:
        """A query's span attributes (OpenTelemetry's database conventions)."""
        return {
            "db.system.name": SOURCE,
            "db.query.text": query,
            "server.address": self.url,
            "rca.query.name": what,
        }

    # --- fetching a window -------------------------------------------------------------------

    def scrape_interval(
        self, matchers: str, moments: Sequence[datetime], deadline: float
    ) -> tuple[float, str]:
        """The scrape interval: configured, or the median gap between the probe's samples in
        the ten minutes before the first of ``moments`` that has any.

        Always queries the probe: it is the cheap request that tells an unreachable server
        or rejected credentials apart before the catalog's queries run.
        """
        query = f"{self.catalog.probe}{{{matchers}}}[{duration(PROBE_RANGE_S)}]"
        gaps: list[float] = []
        for moment in moments:
            result = self._instant(query, moment, f"probe {self.catalog.probe}", deadline)
            if self.settings.scrape_interval_s is not None:
                return self.settings.scrape_interval_s, "configured"
            gaps = [
                float(b[0]) - float(a[0])
                for series in result
                for a, b in itertools.pairwise(series.get("values", []))
            ]
            if gaps:
                return max(1.0, median(gaps)), f"measured from {self.catalog.probe}"
        return FALLBACK_INTERVAL_S, f"no {self.catalog.probe} samples, assumed"

    def plan(
        self,
        start: datetime,
        end: datetime,
        services: Sequence[str],
        alert_labels: Mapping[str, str],
        deadline: float,
    ) -> tuple[QueryPlan, str]:
        matchers = scope_filter(self.settings.selector, self.settings.scope_labels, alert_labels)
        # The window's end may lie past the data (a replayed alert): try its middle too.
        middle = start + (end - start) / 2
        interval, how = self.scrape_interval(matchers, (end, middle), deadline)
        plan = QueryPlan.build(
            start,
            end,
            interval,
            self.settings.max_points,
            self.settings.service_label,
            matchers,
            services,
        )
        note = f"prometheus: scrape interval {interval:g} s ({how}), step {plan.step_s} s"
        return plan, note

    def fetch(
        self,
        start: datetime,
        end: datetime,
        services: Sequence[str] = (),
        alert_labels: Mapping[str, str] | None = None,
        deadline: float | None = None,
    ) -> MetricFetch:
        """Every catalog signal (and the call graph) over ``[start, end]``; see module doc."""
        until = deadline if deadline is not None else time.monotonic() + DEFAULT_BUDGET_S
        plan, note = self.plan(start, end, services, alert_labels or {}, until)
        fetch = MetricFetch(notes=[note])
        pool = ThreadPoolExecutor(self.settings.parallelism, thread_name_prefix="prometheus")
        jobs: dict[Future[list[Any]], CatalogSignal | TopologyQuery] = {}
        for signal in self.catalog.signals:
            run = contextvars.copy_context().run  # each query's span under the caller's
            jobs[pool.submit(run, self._range, plan.query(signal), plan, signal.name, until)] = (
                signal
            )
        for edges in self.catalog.topology:
            query = plan.topology_query(edges)
            run = contextvars.copy_context().run
            jobs[pool.submit(run, self._instant, query, plan.end, edges.name, until)] = edges
        _, pending = wait(jobs, timeout=max(0.0, until - time.monotonic()))
        pool.shutdown(wait=False, cancel_futures=True)
        for future, job in jobs.items():
            if future in pending:
                fetch.failures.append(f"{job.name}: no answer within the time budget")
                continue
            try:
                result = future.result()
            except SourceUnusable:
                raise
            except SourceError as exc:
                fetch.failures.append(exc.message)
                continue
            if isinstance(job, CatalogSignal):
                fetch.signals += to_signals(job, result, plan, self.settings.graph_url or self.url)
            else:
                fetch.edges += to_edges(job, result)
        if fetch.failures and len(fetch.failures) == len(jobs):
            raise SourceError(SOURCE, f"every query failed, e.g. {fetch.failures[0]}")
        fetch.signals = until_data_ends(fetch.signals)
        return fetch

    # --- checking the setup --------------------------------------------------------------------

    def check(self, at: datetime | None = None, deadline: float | None = None) -> list[CheckResult]:
        """Run each catalog query once at ``at`` (default: now) and report what it found.

        Raises :class:`SourceError` when the server is unreachable or rejects the credentials;
        a query the server rejects is reported in its row.
        """
        moment = at or datetime.now(UTC)
        until = deadline if deadline is not None else time.monotonic() + DEFAULT_BUDGET_S
        plan, _ = self.plan(moment, moment, (), {}, until)
        rows: list[CheckResult] = []
        for entry in self.catalog.signals:
            try:
                result = self._instant(plan.query(entry), moment, entry.name, until)
            except SourceUnusable:
                raise
            except SourceError as exc:
                rows.append(CheckResult(entry.name, error=exc.message))
                continue
            labels = plan.labels_of(entry)
            found = {
                next((s["metric"][n] for n in labels if s["metric"].get(n)), "") for s in result
            }
            rows.append(CheckResult(entry.name, len(result), tuple(sorted(found - {""}))))
        return rows


def _status(exc: PrometheusApiClientException) -> tuple[int, str]:
    """Status code and a short reason from the client library's exception text."""
    match = _STATUS.search(str(exc))
    if match is None:
        return 0, str(exc)
    body = match.group(2)
    error = re.search(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"', body)
    text = error.group(1) if error else body.strip("b'\"").replace("\\n", " ").strip()
    return int(match.group(1)), text[:300]


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    if "SSL" in text or "certificate" in text:
        return "TLS handshake failed (set prometheus.ca_bundle or prometheus.verify_tls)"
    return text[:200]
