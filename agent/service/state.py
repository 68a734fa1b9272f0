"""What the routes share: settings, the store's sessions, the workers, the metrics, a clock,
the Slack publisher, the source checks, the webhook's intake lane and incident memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from agent.config import Settings
from agent.memory.runbooks import RunbookLibrary
from agent.service.jobs import WorkerPool
from agent.service.lane import Lane
from agent.service.metrics import ServiceMetrics
from agent.service.slack_outbox import SlackOutbox

if TYPE_CHECKING:
    from agent.service.health import SourceHealth  # health imports this module
    from agent.store.memory import Memory


@dataclass
class ServiceState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    metrics: ServiceMetrics
    workers: WorkerPool
    clock: Callable[[], datetime]
    slack: SlackOutbox | None = None  # the Slack publisher, when a bot token is set
    sources: SourceHealth | None = None  # the background source checks
    intake: Lane = field(default_factory=Lane)  # the webhook's writes: see agent.service.lane
    memory: Memory | None = None  # incident memory (agent.store.memory), unless turned off
    runbooks: RunbookLibrary | None = None  # loaded at start-up from memory.runbooks_dir

    def wake_slack(self) -> None:
        """Outbox rows were written in this process: deliver now, not at the next poll."""
        if self.slack is not None:
            self.slack.wake()


async def service_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.rca
    return state
