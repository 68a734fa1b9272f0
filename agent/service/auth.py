"""Bearer-token auth. The webhook has its own token (what Alertmanager's
``http_config.authorization`` sends); API tokens carry a read or write scope.

Missing or unknown token: 401 with ``WWW-Authenticate: Bearer``. A known token without the
needed scope (or the webhook token used on the API): 403. With no tokens configured the
corresponding endpoints are open, which ``rca serve`` only allows on a loopback address.
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent.config import Settings
from agent.service.problems import ApiError
from agent.service.settings import TokenScope

bearer = HTTPBearer(auto_error=False, description="API token (read or write scope)")
webhook_bearer = HTTPBearer(
    auto_error=False, scheme_name="WebhookBearer", description="the webhook token"
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}
ApiCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
WebhookCredentials = Annotated[HTTPAuthorizationCredentials | None, Depends(webhook_bearer)]


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


def require_webhook(request: Request, credentials: WebhookCredentials) -> None:
    expected = _settings(request).webhook_token
    if expected is None:
        return
    if credentials is None:
        raise _unauthorized("send the webhook token as Authorization: Bearer <token>")
    if not _same(credentials.credentials, expected.get_secret_value()):
        raise _unauthorized("unknown webhook token")
