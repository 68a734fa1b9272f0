"""Aggregations of the Elasticsearch test double, counted over every matching row.

Supported, with Elasticsearch's response shapes: ``composite`` (``terms`` and
``date_histogram`` sources, ``missing_bucket``, ``after``), ``terms`` and
``date_histogram`` (with sub-aggregations), ``max`` and ``min`` on dates. Aggregating a
``text`` field is refused as Elasticsearch refuses it; anything else raises
:class:`~es_store.Unsupported`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from es_eval import View, date_values, keyword_values, one, only
from es_store import MISSING_DATE, EsError, Unsupported, iso_ms
from numpy.typing import NDArray

_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

Selection = list[tuple[View, NDArray[np.int64]]]


def interval_ms(text: str) -> int:
    match = _INTERVAL.match(str(text))
    if not match:
        raise Unsupported(f"fixed_interval [{text}] is not modelled")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def aggregate(selection: Selection, aggs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in aggs.items():
        subs = spec.get("aggs") or spec.get("aggregations")
        kinds = [k for k in spec if k not in ("aggs", "aggregations")]
        if len(kinds) != 1:
            raise Unsupported(f"aggregation [{name}] must have exactly one type, got {kinds}")
        kind, body = kinds[0], spec[kinds[0]]
        if kind == "composite":
            if subs:
                raise Unsupported("sub-aggregations of composite are not modelled")
            out[name] = composite(selection, body)
        elif kind == "terms":
            out[name] = _terms(selection, body, subs)
        elif kind == "date_histogram":
            out[name] = _date_histogram(selection, body, subs)
        elif kind in ("max", "min"):
            if subs:
                raise Unsupported(f"sub-aggregations of {kind} are not modelled")
            out[name] = _extreme(selection, body, kind)
        else:
            raise Unsupported(f"aggregation type [{kind}] is not modelled")
    return out


def _no_text(view: View, name: str) -> None:
    kind, _ = view.index.field_type(name)
    if kind == "text":
        raise EsError(
            400,
            "illegal_argument_exception",
            "Text fields are not optimised for operations that require per-document field "
            f"data like aggregations and sorting, so these operations are disabled by default. "
            f"Please use a keyword field instead. Alternatively, set fielddata=true on [{name}] "
            "in order to load field data by uninverting the inverted index.",
        )


def _terms(selection: Selection, body: dict[str, Any], subs: Any) -> dict[str, Any]:
    only(body, {"field", "size"}, "terms aggregation")
    name, size = body["field"], int(body.get("size", 10))
    counts: dict[str, int] = {}
    members: dict[str, Selection] = {}
    for view, rows in selection:
        _no_text(view, name)
        codes = keyword_values(view, name, "terms aggregation")
        if codes is None:
            continue
        column = view.index.field_type(name)[1]
        assert column is not None
        picked = codes[rows]
        values, n = np.unique(picked[picked >= 0], return_counts=True)
        for code, count in zip(values.tolist(), n.tolist(), strict=True):
            key = column.vocab[code]
            counts[key] = counts.get(key, 0) + count
            if subs:
                members.setdefault(key, []).append((view, rows[picked == code]))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    top = ranked[:size]
    buckets = []
    for key, count in top:
        bucket: dict[str, Any] = {"key": key, "doc_count": count}
        if subs:
            bucket.update(aggregate(members[key], subs))
        buckets.append(bucket)
    return {
        "doc_count_error_upper_bound": 0,
        "sum_other_doc_count": sum(c for _, c in ranked[size:]),
        "buckets": buckets,
    }


def _date_histogram(selection: Selection, body: dict[str, Any], subs: Any) -> dict[str, Any]:
    only(body, {"field", "fixed_interval", "min_doc_count"}, "date_histogram")
    step = interval_ms(body["fixed_interval"])
    keyed: dict[int, Selection] = {}
    for view, rows in selection:
        dates = date_values(view, body["field"], "date_histogram")
        if dates is None:
            continue
        picked = dates[rows]
        present = picked != MISSING_DATE
        keys = picked[present] // step * step
        for key in np.unique(keys).tolist():
            keyed.setdefault(key, []).append((view, rows[present][keys == key]))
    if not keyed:
        return {"buckets": []}
    fill = int(body.get("min_doc_count", 0)) == 0
    order = range(min(keyed), max(keyed) + step, step) if fill else sorted(keyed)
    buckets = []
    for key in order:
        members = keyed.get(key, [])
        bucket: dict[str, Any] = {
            "key_as_string": iso_ms(key),
            "key": key,
            "doc_count": sum(len(r) for _, r in members),
        }
        if subs:
            bucket.update(aggregate(members, subs))
        buckets.append(bucket)
    return {"buckets": buckets}


def _extreme(selection: Selection, body: dict[str, Any], kind: str) -> dict[str, Any]:
    only(body, {"field"}, kind)
    found: list[int] = []
    for view, rows in selection:
        dates = date_values(view, body["field"], kind)
        if dates is not None:
            picked = dates[rows]
            picked = picked[picked != MISSING_DATE]
            if len(picked):
                found.append(int(picked.max() if kind == "max" else picked.min()))
    if not found:
        return {"value": None}
    value = max(found) if kind == "max" else min(found)
    return {"value": float(value), "value_as_string": iso_ms(value)}


def _source_values(
    view: View, rows: NDArray[np.int64], source: dict[str, Any]
) -> tuple[NDArray[np.int64], list[Any] | None, int | None]:
    """Per-row ids of one composite source: codes into a vocab, or date bucket starts."""
    kind, body = one(source, "composite source")
    if kind == "terms":
        only(body, {"field", "missing_bucket", "order"}, "composite terms source")
        _no_text(view, body["field"])
        codes = keyword_values(view, body["field"], "composite terms source")
        if codes is None:
            return np.full(len(rows), -1, dtype=np.int64), [], None
        column = view.index.field_type(body["field"])[1]
        assert column is not None
        return codes[rows], column.vocab, None
    if kind == "date_histogram":
        only(body, {"field", "fixed_interval", "missing_bucket", "order"}, "composite date source")
        step = interval_ms(body["fixed_interval"])
        dates = date_values(view, body["field"], "composite date_histogram source")
        if dates is None:
            return np.full(len(rows), MISSING_DATE, dtype=np.int64), None, step
        picked = dates[rows]
        return np.where(picked == MISSING_DATE, MISSING_DATE, picked // step * step), None, step
    raise Unsupported(f"composite source type [{kind}] is not modelled")


def composite(selection: Selection, body: dict[str, Any]) -> dict[str, Any]:
    only(body, {"size", "sources", "after"}, "composite aggregation")
    sources = [one(s, "composite source") for s in body["sources"]]
    for _, src in sources:
        order = next(iter(src.values())).get("order", "asc")
        if order != "asc":
            raise Unsupported("composite order desc is not modelled")
    counts: dict[tuple[Any, ...], int] = {}
    for view, rows in selection:
        columns, decoders, keep = [], [], np.ones(len(rows), dtype=bool)
        for _, src in sources:
            ids, vocab, step = _source_values(view, rows, src)
            missing = ids == (MISSING_DATE if step is not None else -1)
            if not next(iter(src.values())).get("missing_bucket", False):
                keep &= ~missing
            columns.append(ids)
            decoders.append((vocab, step))
        if not keep.any():
            continue
        stacked = np.stack([c[keep] for c in columns], axis=1)
        unique, n = np.unique(stacked, axis=0, return_counts=True)
        for row, count in zip(unique.tolist(), n.tolist(), strict=True):
            key = tuple(
                _decode(v, vocab, step) for v, (vocab, step) in zip(row, decoders, strict=True)
            )
            counts[key] = counts.get(key, 0) + count
    names = [name for name, _ in sources]
    ordered = sorted(counts, key=_null_first)
    if "after" in body:
        after = tuple(body["after"].get(n) for n in names)
        ordered = [k for k in ordered if _null_first(k) > _null_first(after)]
    page = ordered[: int(body.get("size", 10))]
    buckets = [{"key": dict(zip(names, k, strict=True)), "doc_count": counts[k]} for k in page]
    result: dict[str, Any] = {"buckets": buckets}
    if buckets:
        result["after_key"] = buckets[-1]["key"]
    return result


def _decode(value: int, vocab: list[Any] | None, step: int | None) -> Any:
    if step is not None:
        return None if value == MISSING_DATE else int(value)
    if value < 0 or vocab is None:
        return None
    return vocab[value]


def _null_first(key: tuple[Any, ...]) -> tuple[tuple[bool, Any], ...]:
    return tuple((v is not None, "" if v is None else v) for v in key)
