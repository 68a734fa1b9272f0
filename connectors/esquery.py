"""The request bodies the Elasticsearch log connector sends, and Kibana Discover links.

Pure functions, kept apart from the client so every shape the connector sends can be read in
one place; ``tests/es_double.py`` answers exactly these shapes and rejects anything else.
Bodies use the Python client's keyword names (``source`` for ``_source``) so they can be
passed as ``client.search(**body)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from connectors.settings import LogFields

PIT_KEEP_ALIVE = "2m"
COMPOSITE_PAGE = 10_000
_NICE_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)
_KEYWORD_SUFFIX = ".keyword"


def iso(moment: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``, the form ``strict_date_optional_time`` reads."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def source_path(field: str) -> str:
    """Where a mapped field's value sits in ``_source``: ``x.keyword`` is a view of ``x``."""
    return field.removesuffix(_KEYWORD_SUFFIX)


def histogram_step_s(span_s: float, max_points: int) -> int:
    """The smallest round step (1 s, 5 s, ..., 1 d) that keeps a series under ``max_points``."""
    for step in _NICE_STEPS_S:
        if span_s / step <= max_points:
            return step
    return _NICE_STEPS_S[-1]


def window_query(
    fields: LogFields,
    start: datetime,
    end: datetime,
    services: Sequence[str] = (),
    levels: Sequence[str] | None = None,
    exclude_levels: Sequence[str] = (),
) -> dict[str, Any]:
    """Lines in ``[start, end)``, of ``services`` (all when empty) and of ``levels``."""
    clauses: list[dict[str, Any]] = [
        {
            "range": {
                fields.timestamp: {
                    "gte": iso(start),
                    "lt": iso(end),
                    "format": "strict_date_optional_time",
                }
            }
        }
    ]
    if len(services) == 1:
        clauses.append({"term": {fields.service: services[0]}})
    elif services:
        clauses.append({"terms": {fields.service: list(services)}})
    if levels is not None:
        clauses.append({"terms": {fields.level: list(levels)}})
    query: dict[str, Any] = {"filter": clauses}
    if exclude_levels:
        query["must_not"] = [{"terms": {fields.level: list(exclude_levels)}}]
    return {"bool": query}


def count_body(
    fields: LogFields,
    start: datetime,
    end: datetime,
    services: Sequence[str],
    step_s: int,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One page of line counts per service x level x time bucket.

    A composite aggregation rather than nested ``terms``: its pages bound every response
    whatever the number of services and buckets, and the cost is one request per 10,000
    buckets, never per line. Lines without a level are counted under a ``null`` level.
    """
    composite: dict[str, Any] = {
        "size": COMPOSITE_PAGE,
        "sources": [
            {"service": {"terms": {"field": fields.service}}},
            {"level": {"terms": {"field": fields.level, "missing_bucket": True}}},
            {
                "time": {
                    "date_histogram": {"field": fields.timestamp, "fixed_interval": f"{step_s}s"}
                }
            },
        ],
    }
    if after is not None:
        composite["after"] = after
    return {
        "size": 0,
        "track_total_hits": False,
        "query": window_query(fields, start, end, services),
        "aggs": {"lines": {"composite": composite}},
    }


def sample_body(
    fields: LogFields,
    query: dict[str, Any],
    size: int,
    search_after: list[Any] | None,
) -> dict[str, Any]:
    """One ``search_after`` page of lines in time order (the caller adds the point in time).

    ``_shard_doc`` breaks ties between lines of the same millisecond, so no line is skipped
    or repeated across pages; ``numeric_type: date`` gives milliseconds from ``date_nanos``
    indices too; ``_source`` is cut to the mapped fields.
    """
    body: dict[str, Any] = {
        "size": size,
        "query": query,
        "sort": [
            {fields.timestamp: {"order": "asc", "numeric_type": "date"}},
            {"_shard_doc": "asc"},
        ],
        "source": sorted(
            {
                source_path(f)
                for f in (fields.service, fields.level, fields.message, fields.trace_id, fields.pod)
            }
        ),
        "track_total_hits": False,
    }
    if search_after is not None:
        body["search_after"] = search_after
    return body


def overview_body(fields: LogFields) -> dict[str, Any]:
    """What ``check`` asks: how many lines, which services, the newest line."""
    return {
        "size": 0,
        "track_total_hits": True,
        "aggs": {
            "services": {"terms": {"field": fields.service, "size": 1000}},
            "latest": {"max": {"field": fields.timestamp}},
        },
    }


def index_template(fields: LogFields, index: str) -> dict[str, Any]:
    """An index template mapping the log fields as Elasticsearch would want them searched."""
    keyword = {"type": "keyword", "ignore_above": 1024}
    properties: dict[str, Any] = {}
    for field, mapping in (
        (fields.timestamp, {"type": "date"}),
        (fields.service, keyword),
        (fields.level, keyword),
        (fields.trace_id, keyword),
        (fields.pod, keyword),
        (fields.message, {"type": "text"}),
    ):
        _put_property(properties, source_path(field), mapping)
    return {
        "index_patterns": [index],
        "priority": 500,
        "template": {"mappings": {"properties": properties}},
    }


def _put_property(properties: dict[str, Any], path: str, mapping: dict[str, Any]) -> None:
    """Nest ``a.b.c`` as ``a: {properties: {b: {properties: {c: mapping}}}}``."""
    head, _, rest = path.partition(".")
    if not rest:
        properties[head] = mapping
        return
    node = properties.setdefault(head, {"properties": {}})
    _put_property(node.setdefault("properties", {}), rest, mapping)


# --- Kibana Discover links ------------------------------------------------------------------

_URL_SAFE = "(),:'!*-._~@"


def _rison(text: str) -> str:
    """A Rison string literal: always quoted, ``!`` and ``'`` escaped with ``!``."""
    return "'" + text.replace("!", "!!").replace("'", "!'") + "'"


def _kql(value: str) -> str:
    """A KQL quoted value: backslash and double quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def discover_link(
    kibana_url: str,
    fields: LogFields,
    service: str,
    start: datetime,
    end: datetime,
    level: str | None = None,
    data_view: str | None = None,
) -> str:
    """A Kibana Discover URL showing ``service``'s lines (of ``level``) over the window."""
    kql = f"{fields.service}:{_kql(service)}"
    if level is not None:
        kql += f" and {fields.level}:{_kql(level)}"
    g = f"(time:(from:{_rison(iso(start))},to:{_rison(iso(end))}))"
    view = f"index:{_rison(data_view)}," if data_view else ""
    a = f"({view}query:(language:kuery,query:{_rison(kql)}))"
    base = kibana_url.rstrip("/")
    return f"{base}/app/discover#/?_g={quote(g, safe=_URL_SAFE)}&_a={quote(a, safe=_URL_SAFE)}"
