"""Elasticsearch as a log source: line counts from aggregations, bounded samples of lines.

For one window :meth:`ElasticsearchSource.fetch` opens a point in time, counts lines per
service x level x time bucket on the server (one composite aggregation, paged by buckets,
never by lines), plans from those exact counts which lines to download
(:mod:`connectors.logcounts`: per-service cap, error lines first, spread over the window) and
pages through them with ``search_after``. The counts become ``log_lines`` series the engine
scores like any metric, so 10 M lines cost a few requests and a capped download.

Every failure becomes :class:`~agent.errors.SourceError` naming Elasticsearch and the cause
in one line; partial shard failures are kept as notes. Kibana Discover links, when a Kibana
URL is configured, ride on ``Signal.link`` and on each record's ``fields["link"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from elasticsearch import Elasticsearch

from agent.errors import SourceError
from agent.models import LogRecord, Signal, utc
from connectors import esquery
from connectors.esclient import SOURCE, connect, hosts_of, one_line, translated
from connectors.eshits import HitPaths, Link, record_of
from connectors.logcounts import LineCounts, SampleRequest, count_signals, plan_samples
from connectors.logcounts import to_datetime as _dt
from connectors.settings import ElasticsearchSettings, LogFields

BULK_CHUNK = 2_000


@dataclass
class LogFetch:
    """What one window of logs yielded.

    ``records`` are capped samples for template mining; ``count_signals`` are the exact
    per-service, per-level line rates (``log_lines{level=...}``, error levels of kind
    ``errors``); ``notes`` say what was sampled or partial, for the analysis to report.
    """

    records: list[LogRecord] = field(default_factory=list)
    count_signals: list[Signal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class _Run:
    """One fetch over one index group: its point in time, its deadline, what it gathered.

    Elasticsearch may hand back a new point-in-time id with every search; the latest wins.
    """

    pit: str
    deadline: float
    result: LogFetch
    out_of_time: bool = False


class ElasticsearchSource:
    """Logs of services from Elasticsearch, for one analysis window at a time."""

    def __init__(
        self,
        url: str,
        settings: ElasticsearchSettings,
        *,
        client: Elasticsearch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.settings = settings
        self._where = ", ".join(hosts_of(url)) or url
        self._client = client if client is not None else connect(url, settings)
        self._clock = clock

    def close(self) -> None:
        self._client.close()

    def _translated(
        self, doing: str, timeout_s: float | None = None
    ) -> AbstractContextManager[None]:
        return translated(
            self._where, self.settings.index, timeout_s or self.settings.timeout_s, doing
        )

    # --- fetch ---------------------------------------------------------------------------

    def fetch(
        self,
        services: Sequence[str],
        start: datetime,
        end: datetime,
        deadline: float | None = None,
    ) -> LogFetch:
        """Counts and capped samples of ``services``' lines (all when empty) in the window.

        ``deadline`` (``time.monotonic()`` seconds, default ``budget_s`` from now) bounds the
        whole fetch: each request's timeout shrinks to the time left, and sampling stops
        with a note when it is spent.
        """
        start, end = utc(start), utc(end)
        if not start < end:
            raise SourceError(SOURCE, f"empty window {start.isoformat()} .. {end.isoformat()}")
        own = self._clock() + self.settings.budget_s
        limit = own if deadline is None else min(own, deadline)
        result = LogFetch()
        for index, fields in self._groups():
            self._fetch_index(index, fields, list(services), start, end, limit, result)
        return result

    def _groups(self) -> list[tuple[str, LogFields]]:
        """Index patterns that share field names are searched together."""
        groups: dict[str, tuple[list[str], LogFields]] = {}
        for pattern in self.settings.patterns():
            fields = self.settings.fields_for(pattern)
            groups.setdefault(fields.model_dump_json(), ([], fields))[0].append(pattern)
        return [(",".join(patterns), fields) for patterns, fields in groups.values()]

    def _timeout(self, deadline: float, doing: str) -> float:
        """The per-request timeout, cut to the time left before ``deadline``."""
        left = deadline - self._clock()
        if left <= 0:
            raise SourceError(
                SOURCE,
                f"out of time before {doing} (budget {self.settings.budget_s:g} s "
                "or the collection deadline)",
            )
        return min(self.settings.timeout_s, left)

    def _fetch_index(
        self,
        index: str,
        fields: LogFields,
        services: list[str],
        start: datetime,
        end: datetime,
        deadline: float,
        result: LogFetch,
    ) -> None:
        doing = f"opening a point in time on {index}"
        timeout = self._timeout(deadline, doing)
        try:
            with self._translated(doing, timeout):
                opened = self._client.options(request_timeout=timeout).open_point_in_time(
                    index=index, keep_alive=esquery.PIT_KEEP_ALIVE
                )
        except SourceError as err:
            if "index_not_found" not in err.message:
                raise
            result.note(f"elasticsearch: no index matches {index}")
            return
        run = _Run(str(opened["id"]), deadline, result)
        try:
            counts = self._count(run, index, fields, services, start, end)
            link = self._linker(fields, start, end)
            origin = f"elasticsearch {index}: lines by {fields.service}, {fields.level}"
            result.count_signals += count_signals(counts, origin, link)
            room = max(self.settings.max_records - len(result.records), 0)
            requests, notes = plan_samples(counts, self.settings.sample_cap, room)
            for text in notes:
                result.note(text)
            for request in requests:
                result.records += self._sample(run, fields, request, link)
                if run.out_of_time:
                    result.note(
                        f"elasticsearch: sampling stopped at the time budget "
                        f"(elasticsearch.budget_s {self.settings.budget_s:g} s or the "
                        f"collection deadline); kept {len(result.records):,} lines"
                    )
                    break
        finally:
            self._close_pit(run)

    def _close_pit(self, run: _Run) -> None:
        """Close the point in time; a failure here costs the cluster memory, not the answer.

        Closing gets its own short timeout even past the deadline: leaving contexts open
        on a struggling cluster is worse than a second's wait.
        """
        timeout = min(self.settings.timeout_s, 2.0)
        try:
            with self._translated("closing the point in time", timeout):
                self._client.options(request_timeout=timeout).close_point_in_time(id=run.pit)
        except SourceError as err:
            run.result.note(f"elasticsearch: could not close a point in time: {err.message}")

    def _search(self, run: _Run, body: dict[str, Any], doing: str) -> Any:
        timeout = self._timeout(run.deadline, doing)
        with self._translated(doing, timeout):
            response = self._client.options(request_timeout=timeout).search(
                pit={"id": run.pit, "keep_alive": esquery.PIT_KEEP_ALIVE}, **body
            )
        run.pit = str(response.get("pit_id") or run.pit)
        shards = response.get("_shards") or {}
        if shards.get("failed"):
            failures = shards.get("failures") or [{}]
            reason = (failures[0].get("reason") or {}).get("reason", "no reason given")
            run.result.note(
                f"elasticsearch: {shards['failed']} of {shards.get('total', '?')} shards failed "
                f"while {doing}; results are partial ({one_line(str(reason), 120)})"
            )
        if response.get("timed_out"):
            run.result.note(f"elasticsearch: the search timed out on the server while {doing}")
        return response

    def _count(
        self,
        run: _Run,
        index: str,
        fields: LogFields,
        services: list[str],
        start: datetime,
        end: datetime,
    ) -> LineCounts:
        span_s = (end - start).total_seconds()
        step_s = esquery.histogram_step_s(span_s, self.settings.count_points)
        start_ms, end_ms = round(start.timestamp() * 1000), round(end.timestamp() * 1000)
        counts = LineCounts(start_ms, end_ms, step_s * 1000)
        after: dict[str, Any] | None = None
        while True:
            body = esquery.count_body(fields, start, end, services, step_s, after)
            lines = self._search(run, body, f"counting lines in {index}")["aggregations"]["lines"]
            for bucket in lines["buckets"]:
                key = bucket["key"]
                level = key["level"]
                counts.add(
                    str(key["service"]),
                    None if level is None else str(level),
                    int(key["time"]),
                    int(bucket["doc_count"]),
                )
            after = lines.get("after_key")
            if not lines["buckets"] or after is None:
                return counts

    def _sample(
        self, run: _Run, fields: LogFields, request: SampleRequest, link: Link
    ) -> list[LogRecord]:
        query = esquery.window_query(
            fields,
            _dt(request.start_ms),
            _dt(request.end_ms),
            request.services,
            request.levels,
            request.exclude_levels,
        )
        records: list[LogRecord] = []
        after: list[Any] | None = None
        paths = HitPaths.of(fields)
        while len(records) < request.limit:
            if self._clock() >= run.deadline:
                run.out_of_time = True
                break
            size = min(self.settings.page_size, request.limit - len(records))
            body = esquery.sample_body(fields, query, size, after)
            hits = self._search(run, body, "sampling log lines")["hits"]["hits"]
            records += [record_of(hit, paths, request.services[0], link) for hit in hits]
            if len(hits) < size:
                break
            after = hits[-1]["sort"]
        return records

    def _linker(self, fields: LogFields, start: datetime, end: datetime) -> Link:
        """Discover links per (service, level), built once and shared by every record."""
        kibana = self.settings.kibana_url
        cache: dict[tuple[str, str | None], str] = {}

        def link(service: str, level: str | None) -> str | None:
            if kibana is None:
                return None
            key = (service, level)
            if key not in cache:
                cache[key] = esquery.discover_link(
                    kibana, fields, service, start, end, level, self.settings.kibana_data_view
                )
            return cache[key]

        return link

    # --- check and load ---------------------------------------------------------------------

    def check(self) -> str:
        """One line saying what the cluster holds for the configured index patterns."""
        with self._translated("reading cluster info"):
            version = self._client.info()["version"]["number"]
        parts = []
        for index, fields in self._groups():
            with self._translated(f"searching {index}"):
                response = self._client.search(index=index, **esquery.overview_body(fields))
            total = response["hits"]["total"]
            aggs = response["aggregations"]
            services = aggs["services"]
            n = f"{len(services['buckets'])}{'+' if services.get('sum_other_doc_count') else ''}"
            if not total["value"]:
                parts.append(f"{index}: no log lines (check elasticsearch.index)")
                continue
            newest = aggs["latest"].get("value_as_string") or esquery.iso(
                _dt(aggs["latest"]["value"])
            )
            more = "+" if total.get("relation") == "gte" else ""
            parts.append(
                f"{index}: {total['value']:,}{more} log lines from {n} services, newest {newest}"
            )
        return f"Elasticsearch {version} at {self._where}; " + "; ".join(parts)

    def bulk_load(self, docs: Iterable[dict[str, Any]], index: str) -> int:
        """Load ECS documents into ``index`` after installing its index template.

        The template maps the log fields as ``date``/``keyword`` so counting and filtering
        work; it only applies when ``index`` is created by this load. Returns how many
        documents were loaded; any rejected document raises with the first reason.
        """
        fields = self.settings.fields_for(index)
        name = "rca-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in index)
        with self._translated(f"installing index template {name}"):
            self._client.indices.put_index_template(
                name=name, **esquery.index_template(fields, index)
            )
        loaded = 0
        chunk: list[dict[str, Any]] = []
        for doc in docs:
            chunk += [{"create": {"_index": index}}, doc]
            if len(chunk) >= 2 * BULK_CHUNK:
                loaded += self._bulk(chunk, index)
                chunk = []
        if chunk:
            loaded += self._bulk(chunk, index)
        with self._translated(f"refreshing {index}"):
            self._client.indices.refresh(index=index)
        return loaded

    def _bulk(self, operations: list[dict[str, Any]], index: str) -> int:
        with self._translated(f"bulk loading into {index}"):
            response = self._client.bulk(operations=operations)
        items = response["items"]
        failed = [item["create"] for item in items if item["create"].get("error")]
        if failed:
            error = failed[0]["error"]
            raise SourceError(
                SOURCE,
                f"bulk load into {index}: {len(failed)} of {len(items)} documents rejected, "
                f"first: {error.get('type')}: {one_line(str(error.get('reason')))}",
            )
        return len(items)


__all__ = ["ElasticsearchSource", "LogFetch", "connect"]
