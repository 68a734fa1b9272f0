"""The official Elasticsearch client, configured from settings, and its errors in one line.

Every client exception becomes a :class:`~agent.errors.SourceError` naming Elasticsearch,
the cause and, where the user can fix it, the setting to change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    ConnectionError,
    ConnectionTimeout,
    Elasticsearch,
    TransportError,
    UnsupportedProductError,
)

from agent import tracing
from agent.errors import SourceError
from connectors.settings import ElasticsearchSettings

SOURCE = "elasticsearch"


def hosts_of(url: str) -> list[str]:
    """The node URLs in ``url``, which may list several separated by commas."""
    return [u.strip() for u in url.split(",") if u.strip()]


def connect(url: str, settings: ElasticsearchSettings) -> Elasticsearch:
    """The official client for ``url`` with the settings' auth, TLS, timeout and retries."""
    hosts = hosts_of(url)
    if not hosts:
        raise SourceError(SOURCE, "no URL configured: set RCA_ELASTICSEARCH_URL")
    options: dict[str, Any] = {
        "request_timeout": settings.timeout_s,
        "max_retries": settings.retries,
        "retry_on_timeout": False,  # a slow cluster must not multiply the wait
    }
    if not settings.verify_tls:
        options["verify_certs"] = False
    if settings.ca_bundle is not None:
        options["ca_certs"] = str(settings.ca_bundle)
    if settings.api_key is not None:
        options["api_key"] = settings.api_key.get_secret_value()
    elif settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        options["basic_auth"] = (settings.username, password)
    try:
        return Elasticsearch(hosts, **options)
    except ValueError as exc:
        raise SourceError(SOURCE, f"invalid connection settings for {url}: {exc}") from None


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _api_reason(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        causes = error.get("root_cause") or [error]
        cause = causes[0] if isinstance(causes[0], dict) else error
        return f"{cause.get('type', 'error')}: {cause.get('reason', '')}".strip()
    return str(body or exc.message)


@contextmanager
def translated(where: str, index: str, timeout_s: float, doing: str) -> Iterator[None]:
    """Run the body, turning client exceptions into a one-line :class:`SourceError`.

    ``where`` names the nodes, ``index`` the configured patterns (for permission hints),
    ``timeout_s`` the limit that applied, ``doing`` what was being attempted.
    """
    attributes = {"db.system.name": SOURCE, "db.operation.name": doing, "server.address": where}
    try:
        with tracing.span("elasticsearch request", attributes, kind="client"):
            yield
    except ConnectionTimeout:
        raise SourceError(
            SOURCE,
            f"no answer from {where} within {timeout_s:g} s while {doing} "
            "(raise elasticsearch.timeout_s if the cluster is slow)",
        ) from None
    except ConnectionError as exc:
        raise SourceError(SOURCE, f"cannot connect to {where}: {one_line(exc.message)}") from None
    except AuthenticationException:
        raise SourceError(
            SOURCE,
            f"authentication failed (HTTP 401) at {where}: check "
            "RCA_ELASTICSEARCH__API_KEY or RCA_ELASTICSEARCH__USERNAME/PASSWORD",
        ) from None
    except AuthorizationException as exc:
        raise SourceError(
            SOURCE,
            f"permission denied (HTTP 403) while {doing}: {one_line(_api_reason(exc))}; "
            f"the user or API key needs 'read' and 'view_index_metadata' on {index}",
        ) from None
    except UnsupportedProductError:
        raise SourceError(
            SOURCE, f"{where} does not answer as Elasticsearch (no X-Elastic-Product header)"
        ) from None
    except ApiError as exc:
        raise SourceError(
            SOURCE, f"HTTP {exc.meta.status} while {doing}: {one_line(_api_reason(exc))}"
        ) from None
    except TransportError as exc:
        raise SourceError(SOURCE, f"{doing} failed: {one_line(str(exc))}") from None
