"""Redaction of secrets and personal data from telemetry text before it reaches a model.

Log lines and labels carry whatever the applications printed: tokens in headers, passwords in
connection strings, customer emails. Nothing is sent to an LLM endpoint before every default
pattern below and every operator pattern (``summarizer.redact_patterns``) has been replaced by
a ``[REDACTED:<kind>]`` marker. The marker keeps the shape of the line (the model still sees
*that* an auth header was logged) without its value.

Patterns run in order: whole blocks first (private keys), then structures that contain other
matches (URLs with credentials, auth headers, JWTs, ``key=value``), then bare tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# A key naming a secret, e.g. password, db_password, api-key, client_secret, X-Auth-Token,
# but not tokens_used or passwordless_login: after the secret word only an id/key suffix.
_SECRET_KEY = (
    r"[\w.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?|session[_-]?id|cookie)(?:[_.-]?(?:id|key|value))?"
)


@dataclass(frozen=True)
class Pattern:
    kind: str
    regex: re.Pattern[str]
    replacement: str


def _p(kind: str, regex: str, replacement: str | None = None, flags: int = 0) -> Pattern:
    return Pattern(kind, re.compile(regex, flags), replacement or f"[REDACTED:{kind}]")


DEFAULT_PATTERNS: tuple[Pattern, ...] = (
    _p(
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----"
        # an unterminated block (a clipped log line) runs to the end of the base64
        r"(?:[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|[A-Za-z0-9+/=\s\\]*)",
    ),
    # scheme://user:password@host -> scheme://[REDACTED:url_credentials]@host
    _p(
        "url_credentials",
        r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/:@]+:[^\s/@]+@",
        r"\1[REDACTED:url_credentials]@",
    ),
    _p(
        "auth_header",
        r"(?i)\b(bearer|basic|digest|token|apikey)(\s+)[A-Za-z0-9._~+/=-]{6,}",
        r"\1\2[REDACTED:auth_header]",
    ),
    _p("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    # password=..., "api_key": "...", X-Api-Key: ..., secret: '...'
    _p(
        "secret_value",
        rf"(?i)(\"?\b{_SECRET_KEY}\b\"?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s\"',;&}}\]]+)",
        r"\1[REDACTED:secret_value]",
    ),
    _p(
        "aws_access_key",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)[A-Z0-9]{16}\b",
    ),
    _p(
        "api_key",
        r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
        r"|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{30,}"
        r"|glpat-[A-Za-z0-9_-]{20,}|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,})",
    ),
    # Mixed-case letters and digits, 32+ long: keys and secrets, not hex trace ids or hashes.
    _p(
        "api_key",
        r"(?<![A-Za-z0-9_+/-])(?=[A-Za-z0-9_+/-]*\d)(?=[A-Za-z0-9_+/-]*[a-z])"
        r"(?=[A-Za-z0-9_+/-]*[A-Z])[A-Za-z0-9_+/-]{32,}={0,2}",
    ),
    _p("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
)


class Redactor:
    """Replaces the default patterns and the operator's own (``extra``) in any text."""

    def __init__(self, extra: Iterable[str] = (), *, defaults: bool = True) -> None:
        operator = tuple(_p("custom", pattern) for pattern in extra)
        self.patterns: tuple[Pattern, ...] = (DEFAULT_PATTERNS if defaults else ()) + operator

    def __call__(self, text: str) -> str:
        for pattern in self.patterns:
            text = pattern.regex.sub(pattern.replacement, text)
        return text
