"""Summarizer backends turn the engine's ranked evidence into the words of an Analysis.

``extractive`` (no LLM) is the default and the fallback of every other backend.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from agent.models import Analysis, RootCause, TimelineEvent


class Summary(BaseModel):
    """What every backend returns; the pipeline merges it into the Analysis."""

    root_cause: RootCause | None
    confidence: float = Field(ge=0, le=1)
    evidence_ids: list[str]
    timeline: list[TimelineEvent]
    next_steps: list[str]
    alternatives: list[str] = Field(default_factory=list)
    text: str
    backend: str | None = Field(None, description="who wrote it, when not the summarizer's name")
    fallback: str | None = Field(None, description="why a fallback backend wrote it")
    tokens: dict[str, int] = Field(default_factory=dict, description="prompt/completion")


class Summarizer(Protocol):
    name: str

    def summarize(self, draft: Analysis) -> Summary:
        """Summarize a draft analysis (candidates and evidence filled, words empty)."""
        ...
