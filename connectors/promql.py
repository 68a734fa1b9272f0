"""PromQL text built from untrusted values: string-literal escaping and catalog templates.

Label values reach PromQL from alert labels, API requests and Slack commands, so they are
data, never syntax. Every value goes through :func:`quote` (a PromQL string literal with
backslash escapes, the same rules as Go's ``strconv.Quote``), and values used inside a regex
matcher are regex-escaped first (:func:`any_of`), so ``"}`` or ``=~".*"`` in a service name
matches only that literal name.

Catalog templates use ``$name`` placeholders (``string.Template``) because PromQL itself is
full of braces:

- ``$selector``: every label matcher for the query (user selector, scope, services);
- ``$filter``: the same without the service matcher (for queries grouped by other labels);
- ``$by``: the grouping labels, e.g. ``container, service, pod``;
- ``$rate_window``: the range for ``rate()``, e.g. ``2m``, from the step and scrape interval.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from string import Template

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_RE_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def quote(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal that means exactly ``value``.

    Control characters other than the named ones become ``\\xHH``; other Unicode passes
    through unchanged (PromQL strings are UTF-8).
    """
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def label_name(name: str) -> str:
    """``name`` if it is a valid label name; label names cannot be quoted, so reject others."""
    if not _LABEL_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    return name


def regex_literal(value: str) -> str:
    """A RE2 pattern matching ``value`` literally (Prometheus anchors regex matchers)."""
    return _RE_SPECIAL.sub(r"\\\1", value)


def equals(label: str, value: str) -> str:
    """The matcher ``label="value"`` with ``value`` escaped."""
    return f"{label_name(label)}={quote(value)}"


def any_of(label: str, values: Iterable[str]) -> str:
    """The matcher ``label=~"a|b"`` that matches exactly the given values, nothing more."""
    unique = sorted(set(values))
    if not unique:
        raise ValueError("any_of needs at least one value")
    if len(unique) == 1:
        return equals(label, unique[0])
    pattern = "|".join(regex_literal(v) for v in unique)
    return f"{label_name(label)}=~{quote(pattern)}"


def join_matchers(*parts: str) -> str:
    """Comma-join non-empty matcher lists (the inside of ``{...}``)."""
    return ",".join(p.strip().strip(",") for p in parts if p and p.strip().strip(","))


def duration(seconds: float) -> str:
    """A PromQL duration for ``seconds``, rounded up to whole seconds (``90s``, ``2m``)."""
    whole = max(1, int(-(-seconds // 1)))
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill a catalog template; an unknown ``$placeholder`` is an error, not left in place."""
    try:
        return Template(template).substitute(values)
    except KeyError as exc:
        known = ", ".join(f"${k}" for k in sorted(values))
        raise ValueError(f"unknown placeholder ${exc.args[0]} (known: {known})") from None
    except ValueError as exc:  # a lone "$": write "$$" for a literal dollar
        raise ValueError(f"bad placeholder: {exc}") from None
