"""Query and sort evaluation of the Elasticsearch test double, over all rows.

Supported, with Elasticsearch's semantics: ``bool`` (filter, must, must_not), ``range`` on
dates, ``term``, ``terms``, ``exists``, ``match_all``; sorting on date fields and
``_shard_doc`` with ``search_after``. Aggregations live in :mod:`es_aggs`. Everything else
raises :class:`~es_store.Unsupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from es_store import MISSING_DATE, EsError, Index, Rows, Unsupported, parse_date
from numpy.typing import NDArray

_MAX_LONG = np.iinfo(np.int64).max


@dataclass
class View:
    """The rows of one index a search sees: a point in time's rows, minus failed shards."""

    index: Index
    rows: int
    visible: Rows

    def matching(self, query: dict[str, Any] | None) -> NDArray[np.int64]:
        mask = self.visible.copy()
        if query is not None:
            mask &= query_mask(self, query)
        return np.flatnonzero(mask)


def only(spec: dict[str, Any], allowed: set[str], what: str) -> None:
    extra = set(spec) - allowed
    if extra:
        raise Unsupported(f"{what}: parameters {sorted(extra)} are not modelled")


def one(entry: Any, what: str) -> tuple[str, Any]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise Unsupported(f"{what} must be an object with one key, got {entry!r}")
    return next(iter(entry.items()))


def keyword_values(view: View, name: str, what: str) -> NDArray[np.int64] | None:
    """Codes of a keyword field; ``None`` for an unmapped field (which matches nothing)."""
    kind, column = view.index.field_type(name)
    if kind == "unmapped" or (kind == "keyword" and column is None):
        return None
    if kind != "keyword":
        raise Unsupported(f"{what} on [{name}] of type [{kind}] is not modelled")
    assert column is not None
    return column.array(view.rows)


def date_values(view: View, name: str, what: str) -> NDArray[np.int64] | None:
    kind, column = view.index.field_type(name)
    if kind == "unmapped" or column is None:
        return None
    if kind != "date":
        raise Unsupported(f"{what} on [{name}] of type [{kind}] is not modelled")
    return column.array(view.rows)


def includes_of(source: Any) -> list[str] | bool:
    """``_source`` filtering: ``False``, every field (``[]``), or the listed paths."""
    if source is True or source is False:
        return source if source is False else []
    if isinstance(source, str):
        return [source]
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return source
    raise Unsupported(f"_source filter {source!r} is not modelled")


def _clauses(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def query_mask(view: View, query: dict[str, Any]) -> Rows:
    kind, spec = one(query, "query")
    none = np.zeros(view.rows, dtype=bool)
    if kind == "match_all":
        only(spec, set(), "match_all")
        return ~none
    if kind == "bool":
        only(spec, {"filter", "must", "must_not"}, "bool")
        mask = ~none
        for clause in _clauses(spec.get("filter", [])) + _clauses(spec.get("must", [])):
            mask &= query_mask(view, clause)
        for clause in _clauses(spec.get("must_not", [])):
            mask &= ~query_mask(view, clause)
        return mask
    if kind in ("term", "terms"):
        name, wanted = one(spec, kind)
        if kind == "term":
            if isinstance(wanted, dict):
                only(wanted, {"value"}, "term")
                wanted = wanted["value"]
            wanted = [wanted]
        elif not isinstance(wanted, list):
            raise Unsupported(f"terms on [{name}] needs a list, got {wanted!r}")
        codes = keyword_values(view, name, kind)
        if codes is None:
            return none
        column = view.index.field_type(name)[1]
        assert column is not None
        return np.isin(codes, [column.code(v) for v in wanted if column.code(v) >= 0])
    if kind == "range":
        return _range(view, spec, none)
    if kind == "exists":
        only(spec, {"field"}, "exists")
        column = view.index.field_type(spec["field"])[1]
        if column is None:
            return none
        values = column.array(view.rows)
        return values != (MISSING_DATE if column.type == "date" else -1)
    raise Unsupported(f"query type [{kind}] is not modelled")


def _range(view: View, spec: dict[str, Any], none: Rows) -> Rows:
    name, bounds = one(spec, "range")
    only(bounds, {"gte", "gt", "lte", "lt", "format"}, "range")
    fmt = bounds.get("format")
    if fmt not in (None, "strict_date_optional_time", "epoch_millis"):
        raise Unsupported(f"range format [{fmt}] is not modelled")
    values = date_values(view, name, "range")
    if values is None:
        return none
    mask = values != MISSING_DATE
    tests = {"gte": np.greater_equal, "gt": np.greater, "lte": np.less_equal, "lt": np.less}
    for op, test in tests.items():
        if op in bounds:
            try:
                limit = parse_date(bounds[op])
            except ValueError:
                raise EsError(
                    400, "parse_exception", f"failed to parse date field [{bounds[op]}]"
                ) from None
            mask &= test(values, limit)
    return mask


# --- sorting ------------------------------------------------------------------------------


@dataclass
class SortKey:
    name: str
    descending: bool

    def values(self, view: View, rows: NDArray[np.int64]) -> NDArray[np.int64]:
        if self.name == "_shard_doc":
            return (np.int64(view.index.ordinal) << 32) | rows
        dates = date_values(view, self.name, "sort")
        picked = np.full(len(rows), MISSING_DATE, np.int64) if dates is None else dates[rows]
        missing_last = _MAX_LONG if not self.descending else MISSING_DATE
        return np.where(picked == MISSING_DATE, missing_last, picked)


def parse_sort(sort: Any, with_pit: bool) -> list[SortKey]:
    keys: list[SortKey] = []
    for entry in _clauses(sort or []):
        if isinstance(entry, str):
            name, order = entry, "asc"
        else:
            name, spec = one(entry, "sort")
            if isinstance(spec, str):
                order = spec
            else:
                only(spec, {"order", "numeric_type"}, f"sort on [{name}]")
                if spec.get("numeric_type", "date") != "date":
                    raise Unsupported(f"numeric_type {spec['numeric_type']!r} is not modelled")
                order = spec.get("order", "asc")
        if order not in ("asc", "desc") or name in ("_doc", "_score"):
            raise Unsupported(f"sort [{name}: {order}] is not modelled")
        keys.append(SortKey(name, order == "desc"))
    if with_pit and keys and not any(k.name == "_shard_doc" for k in keys):
        keys.append(SortKey("_shard_doc", False))  # Elasticsearch's implicit tiebreaker
    return keys


def after_mask(columns: list[NDArray[np.int64]], keys: list[SortKey], after: list[Any]) -> Rows:
    """Rows strictly after ``after`` in the sort order."""
    if len(after) != len(keys):
        raise EsError(
            400,
            "illegal_argument_exception",
            f"search_after has {len(after)} value(s) but sort has {len(keys)}.",
        )
    n = len(columns[0]) if columns else 0
    greater, equal = np.zeros(n, dtype=bool), np.ones(n, dtype=bool)
    for values, key, bound in zip(columns, keys, after, strict=True):
        try:
            limit = np.int64(int(bound))
        except (TypeError, ValueError):
            raise Unsupported(f"search_after value {bound!r} is not modelled") from None
        ahead = values < limit if key.descending else values > limit
        greater |= equal & ahead
        equal &= values == limit
    return greater
