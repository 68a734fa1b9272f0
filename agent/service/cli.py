"""``rca serve``: the HTTP API, the Alertmanager webhook and the analysis workers in one
process. Examples::

    rca serve                                   # 127.0.0.1:8080, SQLite under .rca/
    RCA_SNAPSHOT_DIR=incidents/ rca serve       # fully offline, on recorded incidents
    RCA_DATABASE_URL=postgresql+psycopg://rca@db/rca RCA_API_TOKENS=ops:read,bot:write \\
        RCA_WEBHOOK_TOKEN=... rca serve --host 0.0.0.0
"""

from __future__ import annotations

import ipaddress
import logging

import click

from agent.clikit import cli_state
from agent.config import Settings, otel_environment
from agent.errors import ConfigError, DatabaseUnavailable
from agent.service.settings_doc import help_text


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve an open API or webhook on a non-loopback address."""
    if _loopback(settings.service.host):
        return
    missing = [
        env
        for env, present in (
            ("RCA_API_TOKENS", bool(settings.api_tokens)),
            ("RCA_WEBHOOK_TOKEN", settings.webhook_token is not None),
        )
        if not present
    ]
    if missing:
        raise ConfigError(
            f"refusing to listen on {settings.service.host} without {' and '.join(missing)}; "
            "set them, or listen on 127.0.0.1"
        )


@click.command(
    short_help="Serve the HTTP API, the Alertmanager webhook and the workers.", epilog=help_text()
)
@click.option("--host", help="Address to listen on (default: service.host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: service.port).")
@click.option("--workers", type=click.IntRange(1, 64), help="Concurrent analyses.")
@click.pass_context
def serve(ctx: click.Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the API, the Alertmanager webhook and the analysis workers.

    Every setting below can come from the YAML file (--config) or the environment.
    See docs/configuration.md and docs/alertmanager.md.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from agent.service.app import create_app
    from agent.service.logs import configure as configure_logging
    from agent.service.server import run
    from agent.store.db import database_url, make_engine, migrate
    from agent.tracing import configure as configure_tracing

    base = cli_state(ctx).settings
    overrides = {
        k: v for k, v in (("host", host), ("port", port), ("workers", workers)) if v is not None
    }
    settings = base.model_copy(update={"service": base.service.model_copy(update=overrides)})
    check_exposure(settings)
    from agent.summarize.factory import build_summarizer

    build_summarizer(settings)  # an unknown backend or a missing model stops here, not per job
    url = database_url(settings.database_url, settings.data_dir)
    engine = make_engine(url)
    try:
        migrate(engine)
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(
            f"database {where} unavailable: {exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        engine.dispose()
    configure_logging(settings.log_level, settings.log_format)
    exporters = configure_tracing(otel_environment())
    if exporters:
        logging.getLogger("rca.tracing").info("exporting traces: %s", ", ".join(exporters))
    app = create_app(settings)
    run(app, settings)
