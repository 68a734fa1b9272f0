"""Bearer-token auth. The webhook has its own token (what Alertmanager's
``http_config.authorization`` sends); API tokens carry a read or write scope.

Missing or unknown token: 401 with ``WWW-Authenticate: Bearer``. A known token without the
needed scope (or the webhook token used on the API): 403. With no tokens configured the
corresponding endpoints are open, which ``rca serve`` only allows on a loopback address.
Tokens are compared in constant time.

The read routes of one analysis (:func:`read_one`) also admit a share link instead of a
token: ``?share=<expiry>.<signature>`` signed for that analysis (:mod:`agent.service.share`).
When present it decides alone; an altered, expired or other analysis's link is a 401 that
names the problem. No other route declares the parameter, so a share link never admits a
write or a list (those routes answer 422 to an unknown query parameter).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.config import Settings
from agent.service.problems import ApiError
from agent.service.settings import TokenScope
from agent.service.share import SHARE_PARAM, ShareLinkRefused, signer_for

bearer = HTTPBearer(auto_error=False, description="API token (read or write scope)")
webhook_bearer = HTTPBearer(
    auto_error=False, scheme_name="WebhookBearer", description="the webhook token"
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
ApiCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
WebhookCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(webhook_bearer)]
ShareToken = Annotated[
    str | None,
    Query(
        alias=SHARE_PARAM,
        max_length=200,
        description="a share link's token (instead of an API token): read-only, this "
        "analysis only, until it expires",
    ),
]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.rca.settings
    return settings


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, _CHALLENGE)


def require(scope: TokenScope) -> Callable[..., None]:
    """A dependency that admits API tokens with ``scope``."""

    def check(request: Request, credentials: ApiCredentials) -> None:
        settings = _settings(request)
        if not settings.api_tokens:
            return
        if credentials is None:
            raise _unauthorized("send an API token as Authorization: Bearer <token>")
        given = credentials.credentials
        for token in settings.api_tokens:
            if _same(given, token.token.get_secret_value()):
                if token.allows(scope):
                    return
                raise ApiError(
                    403, "forbidden", f"this token may not {scope}; it has {token.scope}"
                )
        webhook = settings.webhook_token
        if webhook is not None and _same(given, webhook.get_secret_value()):
            raise ApiError(403, "forbidden", "the webhook token is not valid for the API")
        raise _unauthorized("unknown API token")

    return check


def read_one(
    request: Request, analysis_id: str, credentials: ApiCredentials, share: ShareToken = None
) -> str | None:
    """A dependency admitting read access to the analysis in the path: an API token with
    read scope, or a share link signed for it. Returns the share token that admitted the
    request (None: a token, or an open API), so links in the answer can carry it on."""
    settings = _settings(request)
    signer = signer_for(settings)
    if share is None or not settings.api_tokens or signer is None:
        require("read")(request, credentials)
        return None
    try:
        signer.verify(analysis_id, share, now=request.app.state.rca.clock())
    except ShareLinkRefused as exc:
        code = "share_link_expired" if exc.problem == "expired" else "share_link_invalid"
        raise ApiError(401, code, str(exc), _CHALLENGE) from None
    return share


async def require_webhook(request: Request, credentials: WebhookCredentials) -> None:
    expected = _settings(request).webhook_token
    if expected is None:
        return
    if credentials is None:
        raise _unauthorized("send the webhook token as Authorization: Bearer <token>")
    if not _same(credentials.credentials, expected.get_secret_value()):
        raise _unauthorized("unknown webhook token")
