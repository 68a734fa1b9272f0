"""What the bot needs from the rest of rca-agent: one small protocol the service implements.

The bot never touches the database or the job queue itself; it asks a :class:`SlackBackend`.
The service passes its own implementation, tests pass a scripted fake. Feedback goes
through ``store_feedback``, which the service backs with the same code path as
``POST /v1/analyses/{id}/feedback``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from agent.models import Analysis, FaultType

Verdict = Literal["correct", "wrong", "partially"]


@dataclass(frozen=True)
class AnalysisAsk:
    """An ad-hoc analysis: maps onto the API's ``AnalysisRequest`` (start/end/question)."""

    services: tuple[str, ...]
    start: datetime
    end: datetime
    question: str | None = None


@dataclass(frozen=True)
class ReplyTo:
    """Where the answer goes and who asked, so the backend can record it.

    ``message_ts`` is the incident message a re-run updates in place; ``thread_ts`` the
    thread the request came from.
    """

    channel: str
    user: str
    private: bool = False
    thread_ts: str | None = None
    message_ts: str | None = None


class SlackBackend(Protocol):
    def known_services(self) -> list[str]:
        """Services ``/rca`` accepts (empty: any name is passed through)."""
        ...

    def submit_analysis(self, ask: AnalysisAsk, reply_to: ReplyTo) -> str:
        """Queue an analysis; returns its id at once."""
        ...

    def get_analysis(self, analysis_id: str) -> Analysis | None:
        """The finished analysis; None while it runs. Raises an ``RcaError`` when it failed
        or does not exist; its message is shown to the user."""
        ...

    def get_chart(self, analysis_id: str) -> bytes | None:
        """The evidence chart PNG of a finished analysis, when there is one."""
        ...

    def find_incident(self, channel: str, thread_ts: str) -> str | None:
        """The latest analysis id behind the incident message at ``(channel, thread_ts)``."""
        ...

    def remember_post(self, analysis_id: str, channel: str, ts: str) -> None:
        """The bot showed ``analysis_id`` in the message at ``(channel, ts)`` (a ``/rca``
        answer, a re-run): ``find_incident`` on that message finds it from now on."""
        ...

    def store_feedback(
        self,
        analysis_id: str,
        verdict: Verdict,
        service: str | None,
        fault_type: FaultType | None,
        note: str,
        user: str,
        resolution: str | None = None,
        resolution_url: str | None = None,
    ) -> None:
        """Store a rating by ``user`` (``slack:<team>/<user id>``), with what fixed it when
        they said; raises ``RcaError`` when the analysis is unknown or the text is invalid."""
        ...
