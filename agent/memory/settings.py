"""Settings of incident memory and runbooks (``memory:`` / ``RCA_MEMORY__*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class MemorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="fingerprint every analysis and show similar past ones")
    similar: int = Field(
        3, ge=0, le=20, description="similar past analyses shown in Slack and the report"
    )
    min_similarity: float = Field(
        0.3, ge=0, le=1, description="past analyses less similar than this are not shown"
    )
    prior: bool = Field(
        True,
        description="let a confirmed past root cause with a close fingerprint break a close "
        "call (evidence P1, capped at a fifth of the leader's score)",
    )
    retention_days: float | None = Field(
        365.0,
        gt=0,
        description="fingerprints older than this are forgotten (deleted from memory; the "
        "analyses stay); none: kept for ever",
    )
    runbooks_dir: Path | None = Field(
        None,
        description="folder of Markdown runbooks with front matter (alerts, services, "
        "fault_types); the matching section is cited as R1 (docs/memory.md)",
    )
