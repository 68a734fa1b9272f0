"""What a past analysis brings back: how alike it is, why, and what the team said of it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import Field

from agent.memory.fingerprint import Fingerprint
from agent.models import Strict


class PastIncident(Strict):
    """One similar past analysis, as the API, the CLI, Slack and the report page show it."""

    analysis_id: str
    created_at: datetime
    similarity: float = Field(ge=0, le=1)
    reasons: list[str] = Field(default_factory=list)
    root_service: str | None = None
    fault_type: str | None = None
    verdict: str | None = Field(None, description="the latest rating: correct, wrong, partially")
    confirmed_service: str | None = Field(
        None, description="the root cause a person confirmed (rated correct) or corrected"
    )
    confirmed_fault_type: str | None = None
    resolution: str | None = Field(None, description="what fixed it, as the team wrote it")
    resolution_url: str | None = Field(None, description="the postmortem or pull request")

    @property
    def confirmed(self) -> bool:
        return self.confirmed_service is not None


# The store's side: (fingerprint, k, the analysis to leave out) -> the k most similar.
Recall = Callable[[Fingerprint, int, str | None], list[PastIncident]]


def confirmed_cause(
    root_service: str | None,
    fault_type: str | None,
    verdict: str | None,
    actual_service: str | None,
    actual_fault_type: str | None,
) -> tuple[str | None, str | None]:
    """The root cause a person stood behind: the analysis's own when rated correct, the one
    they named when they said it was wrong or partly right; none without a rating."""
    if verdict == "correct":
        return root_service, fault_type
    if verdict in ("wrong", "partially") and actual_service:
        return actual_service, actual_fault_type or None
    return None, None
