"""The data side of the Elasticsearch test double: columnar indices, queries, aggregations.

Documents are flattened to dotted paths and kept column by column (dates as int64
milliseconds, everything else dictionary-encoded), so a million lines fit in a few hundred
megabytes and every filter or aggregation is a numpy pass, evaluated honestly over all rows.

Mapping follows Elasticsearch: explicit types from a matching index template; otherwise
dynamic mapping, where an ISO date string becomes ``date`` and any other string becomes
``text`` with a ``.keyword`` sub-field. Term queries and aggregations work on ``keyword``
and ``date`` fields; aggregating a ``text`` field is refused the way Elasticsearch refuses it;
an unmapped field matches nothing. Anything else raises :class:`Unsupported`, which the HTTP
layer turns into a loud 400.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

MISSING_DATE = np.iinfo(np.int64).min
_ISO_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$"
)
Rows = NDArray[np.bool_]


class Unsupported(Exception):
    """A request shape the double does not model: answered with a loud 400."""


class EsError(Exception):
    """An error Elasticsearch itself would return, with its status and error type."""

    def __init__(self, status: int, type_: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.type, self.reason = status, type_, reason


def parse_date(value: Any) -> int:
    """Epoch milliseconds from an ISO string or epoch-millis number, as ES's default format."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int | float):
        return int(value)
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError(value)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def iso_ms(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def template_types(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted path -> type from an index template's ``mappings.properties``."""
    types: dict[str, str] = {}
    for name, spec in properties.items():
        if "properties" in spec:
            types.update(template_types(spec["properties"], f"{prefix}{name}."))
        else:
            types[f"{prefix}{name}"] = spec.get("type", "object")
    return types


@dataclass
class Column:
    """One field: ``date`` values in ms, or codes into ``vocab`` for everything else."""

    type: str
    values: list[int] = field(default_factory=list)
    vocab: list[Any] = field(default_factory=list)
    lookup: dict[Any, int] = field(default_factory=dict)
    _array: NDArray[np.int64] | None = None

    def append(self, value: Any, rows_before: int) -> None:
        missing = MISSING_DATE if self.type == "date" else -1
        if len(self.values) < rows_before:
            self.values += [missing] * (rows_before - len(self.values))
        if self.type == "date":
            self.values.append(parse_date(value))
        else:
            if self.type in ("keyword", "text"):
                value = str(value)
            key = (type(value).__name__, value)
            code = self.lookup.get(key)
            if code is None:
                code = self.lookup[key] = len(self.vocab)
                self.vocab.append(value)
            self.values.append(code)
        self._array = None

    def code(self, value: Any) -> int:
        """The code of a keyword value, -1 when no row holds it."""
        return self.lookup.get(("str", str(value)), -1)

    def array(self, rows: int) -> NDArray[np.int64]:
        if self._array is None or len(self._array) != rows:
            missing = MISSING_DATE if self.type == "date" else -1
            padded = self.values + [missing] * (rows - len(self.values))
            self._array = np.asarray(padded, dtype=np.int64)
        return self._array


@dataclass(eq=False)
class Index:
    name: str
    ordinal: int
    types: dict[str, str]  # mapped type per dotted path
    columns: dict[str, Column] = field(default_factory=dict)
    dynamic_text: set[str] = field(default_factory=set)
    rows: int = 0

    def add(self, doc: dict[str, Any]) -> None:
        """Index one document, mapping new fields dynamically; raises EsError on bad values."""
        flat = flatten(doc)
        for path, value in flat.items():
            if isinstance(value, list):
                raise Unsupported(f"array value in field [{path}] is not modelled")
            if value is None:
                continue
            kind = self.types.get(path)
            if kind is None:
                kind = self.types[path] = self._dynamic_type(value)
                if kind == "text":
                    self.dynamic_text.add(path)
            if kind == "date":
                try:
                    parse_date(value)
                except ValueError:
                    raise EsError(
                        400,
                        "document_parsing_exception",
                        f"[1:1] failed to parse field [{path}] of type [date] in document",
                    ) from None
        for path, value in flat.items():
            if value is not None:
                column = self.columns.get(path)
                if column is None:
                    column = self.columns[path] = Column(self.types[path])
                column.append(value, self.rows)
        self.rows += 1

    @staticmethod
    def _dynamic_type(value: Any) -> str:
        if isinstance(value, bool):
            return "boolean"
        if isinstance(value, int):
            return "long"
        if isinstance(value, float):
            return "float"
        try:
            parse_date(value)
        except ValueError:
            return "text"
        return "date"

    def field_type(self, name: str) -> tuple[str, Column | None]:
        """The type and column behind a field name; ``x.keyword`` of a dynamic text field."""
        kind = self.types.get(name)
        if kind is not None:
            return kind, self.columns.get(name)
        base = name.removesuffix(".keyword")
        if base != name and base in self.dynamic_text:
            return "keyword", self.columns.get(base)
        return "unmapped", None

    def source(self, row: int, includes: list[str] | None) -> dict[str, Any]:
        """``_source`` of one row, nested, cut to ``includes`` (paths or their prefixes)."""
        doc: dict[str, Any] = {}
        for path, column in self.columns.items():
            if includes is not None and not any(
                path == inc or path.startswith(inc + ".") for inc in includes
            ):
                continue
            arr = column.array(self.rows)
            value = arr[row]
            if column.type == "date":
                if value == MISSING_DATE:
                    continue
                shown: Any = iso_ms(int(value))
            else:
                if value < 0:
                    continue
                shown = column.vocab[int(value)]
            node = doc
            *parents, leaf = path.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = shown
        return doc


def resolve(
    indices: dict[str, Index], expression: str | None, concrete_must_exist: bool = True
) -> list[Index]:
    """Index names for a comma-separated expression with wildcards, as ES resolves them."""
    if expression in (None, "", "_all", "*"):
        return list(indices.values())
    found: dict[str, Index] = {}
    for part in expression.split(","):
        part = part.strip()
        if part.startswith("-"):
            raise Unsupported(f"index exclusion [{part}] is not modelled")
        if any(c in part for c in "*?"):
            found.update({n: i for n, i in indices.items() if fnmatch.fnmatchcase(n, part)})
        elif part in indices:
            found[part] = indices[part]
        elif concrete_must_exist:
            raise EsError(404, "index_not_found_exception", f"no such index [{part}]")
    return sorted(found.values(), key=lambda i: i.ordinal)
