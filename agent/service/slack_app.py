"""Slack inside ``rca serve``: the outbox publisher, the bot at ``/slack/events``, and the
optional Socket Mode connection, built from the settings and started with the app.

- ``RCA_SLACK_BOT_TOKEN`` set: incident analyses are posted (the outbox publisher runs);
- ``RCA_SLACK_SIGNING_SECRET`` set too: the bot answers at ``POST /slack/events``;
- ``slack.app_token`` set too: the bot also connects over Socket Mode (no ingress needed).

A signing secret or app token without a bot token is a configuration error, not a silently
dead bot.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI

from agent.errors import ConfigError
from agent.service.slack_backend import ServiceSlackBackend
from agent.service.slack_outbox import SlackOutbox
from agent.service.state import ServiceState
from agent.store import outbox

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger("rca.slack")
SOCKET_RETRY_S = 30.0


@dataclass
class SlackParts:
    """What runs next to the API when Slack is configured."""

    outbox: SlackOutbox
    socket: SocketModeHandler | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    def start(self, state: ServiceState) -> None:
        if state.engine.dialect.name == "sqlite":  # one process: claimed posts are orphans
            with state.sessions.begin() as session:
                if requeued := outbox.requeue_orphans(session, state.clock()):
                    log.info("requeued %d Slack post(s) left by a previous process", requeued)
        self.outbox.start()
        if self.socket is not None:
            threading.Thread(target=self._connect, name="rca-slack-socket", daemon=True).start()

    def _connect(self) -> None:
        """Socket Mode: keep trying until Slack answers; the service serves meanwhile."""
        assert self.socket is not None
        while not self._stopping.is_set():
            try:
                self.socket.connect()
                log.info("slack: connected over Socket Mode")
                return
            except Exception as exc:  # noqa: BLE001 - Slack unreachable: try again later
                log.warning("slack: Socket Mode connection failed (%s); retrying", exc)
                self._stopping.wait(SOCKET_RETRY_S)

    def stop(self) -> None:
        self._stopping.set()
        if self.socket is not None:
            self.socket.close()
        self.outbox.stop()


def install_slack(app: FastAPI, state: ServiceState) -> SlackParts | None:
    """Wire Slack into ``app`` as configured; None when no bot token is set."""
    settings = state.settings
    token, secret = settings.slack_bot_token, settings.slack_signing_secret
    app_token = settings.slack.app_token
    if token is None:
        if secret is not None or app_token is not None:
            raise ConfigError(
                "the Slack bot needs a bot token: set RCA_SLACK_BOT_TOKEN "
                "(or unset RCA_SLACK_SIGNING_SECRET and slack.app_token)"
            )
        return None
    from agent.service.share import report_links
    from agent.slack.bot import build_bot
    from agent.slack.transport import slack_router, socket_mode
    from connectors.slack import SlackPublisher, build_client

    publisher = SlackPublisher(
        build_client(settings.slack_api_url, token, settings.slack),
        settings.slack,
        report_link=report_links(settings, state.clock),
    )
    parts = SlackParts(
        SlackOutbox(
            settings,
            state.sessions,
            state.metrics,
            publisher,
            state.workers.identity,
            state.clock,
            yield_to=state.intake.wait_idle,
            memory=state.memory,
        )
    )
    state.slack = parts.outbox
    state.workers.on_done.append(parts.outbox.wake)
    if secret is None and app_token is None:
        return parts
    bot = build_bot(ServiceSlackBackend(state), publisher, secret, socket_mode=secret is None)
    if secret is not None:
        app.include_router(slack_router(bot, secret))
    if app_token is not None:
        parts.socket = socket_mode(bot, app_token)
    return parts
