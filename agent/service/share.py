"""Signed, expiring, read-only share links to one analysis.

Whoever reads an incident post in Slack has no API token, so the post's "full report" link
carries its own proof: ``?share=<expiry>.<signature>``, the signature an HMAC-SHA256 over the
analysis id and the expiry (Unix seconds). The API accepts it on the read routes of that one
analysis only (:func:`agent.service.auth.read_one`) and on its report page, whose rating
form it also admits (:mod:`agent.service.pages`); it admits no other write and no other
analysis, and it stops working at its expiry.

The key is ``service.share_secret``; unset, it is derived from the first API token, so
rotating that token voids the links already posted. With no API token at all the API is
open and no link needs a signature. :class:`ShareSigner` only signs and checks an id and an
expiry, so any page of one analysis can reuse it::

    signer = ShareSigner(b"a secret of 16+ bytes")
    token = signer.sign("an-1f2e", expires=datetime(2024, 5, 21, tzinfo=UTC))
    signer.verify("an-1f2e", token, now=datetime.now(UTC))  # raises ShareLinkRefused
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from agent.config import Settings

SHARE_PARAM = "share"
_CONTEXT = b"rca-agent share links v1"


class ShareLinkRefused(ValueError):
    """A share token that does not admit this analysis now; ``problem`` says why
    (``malformed``, ``expired`` or ``bad_signature``)."""

    def __init__(self, problem: str, message: str) -> None:
        super().__init__(message)
        self.problem = problem


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class ShareSigner:
    """Signs and checks ``(analysis id, expiry)`` pairs with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a share-link key needs at least 16 bytes")
        self._key = key

    def _signature(self, analysis_id: str, expires: int) -> str:
        message = b"\n".join([_CONTEXT, analysis_id.encode(), str(expires).encode()])
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def sign(self, analysis_id: str, expires: datetime) -> str:
        """The token for ``analysis_id`` valid until ``expires`` (to the second)."""
        seconds = int(expires.timestamp())
        return f"{seconds}.{self._signature(analysis_id, seconds)}"

    def verify(self, analysis_id: str, token: str, now: datetime) -> datetime:
        """The token's expiry when it admits ``analysis_id`` at ``now``; else
        :class:`ShareLinkRefused` naming the problem."""
        seconds_text, dot, signature = token.partition(".")
        if not dot or not seconds_text.isdigit() or not signature:
            raise ShareLinkRefused(
                "malformed", "share link malformed: expected share=<expiry>.<signature>"
            )
        seconds = int(seconds_text)
        expected = self._signature(analysis_id, seconds)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise ShareLinkRefused(
                "bad_signature",
                f"share link not valid for analysis {analysis_id!r} (altered, signed with "
                "another key, or made for another analysis)",
            )
        try:
            expires = datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise ShareLinkRefused("malformed", "share link expiry out of range") from None
        if now >= expires:
            raise ShareLinkRefused(
                "expired",
                f"share link expired at {expires:%Y-%m-%d %H:%M} UTC; ask for a fresh one "
                "(re-run the analysis in Slack) or use an API token",
            )
        return expires


def share_key(settings: Settings) -> bytes | None:
    """``service.share_secret``, else a key derived from the first API token; None when
    neither is set (then the API is open and links need no signature)."""
    secret = settings.service.share_secret
    if secret is not None:
        return secret.get_secret_value().encode()
    if settings.api_tokens:
        token = settings.api_tokens[0].token.get_secret_value().encode()
        return hmac.new(token, _CONTEXT, hashlib.sha256).digest()
    return None


def signer_for(settings: Settings) -> ShareSigner | None:
    key = share_key(settings)
    return ShareSigner(key) if key is not None else None


def report_path(analysis_id: str) -> str:
    """Where the full report of one analysis is served: its HTML page
    (:mod:`agent.service.pages`; the Markdown stays at ``/v1/analyses/{id}/report.md``)."""
    return f"/analyses/{quote(analysis_id, safe='')}"


def with_share(url: str, token: str | None) -> str:
    """``url`` with the share token as its query (``url`` has no query of its own)."""
    return f"{url}?{SHARE_PARAM}={token}" if token else url


def share_url(
    settings: Settings, analysis_id: str, now: datetime, path: str | None = None
) -> str | None:
    """The public link to ``path`` (default: the report) of one analysis, signed when the
    API needs tokens; None without ``slack.public_url``."""
    base = settings.slack.public_url
    if not base:
        return None
    url = base.rstrip("/") + (path or report_path(analysis_id))
    if not settings.api_tokens:
        return url
    signer = signer_for(settings)
    if signer is None:  # pragma: no cover - tokens always give a key
        return url
    expires = now + timedelta(hours=settings.service.share_ttl_hours)
    return with_share(url, signer.sign(analysis_id, expires))


def report_links(settings: Settings, clock: Callable[[], datetime]) -> Callable[[str], str | None]:
    """What the Slack publisher calls for each post: analysis id -> its report link now."""

    def link(analysis_id: str) -> str | None:
        return share_url(settings, analysis_id, clock())

    return link
