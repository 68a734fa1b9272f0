"""Summarizer backends turn the engine's ranked evidence into the words of an Analysis.

``extractive`` (no LLM) is the default and the fallback of every other backend. The LLM
backends (``openai``, ``hf``) only complete chat messages; :mod:`agent.summarize.guard` builds
their prompt, redacts it, validates the answer against the evidence, asks for one repair and
falls back to ``extractive`` with the reason. :func:`agent.summarize.factory.build_summarizer`
picks the backend from settings or ``--backend``.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from agent.models import Analysis, RootCause, TimelineEvent


class AnswerCheck(BaseModel):
    """The guard's verdict on one model answer (the first, and the repair if there was one)."""

    valid: bool
    error: str | None = None
    cited: int = Field(0, description="evidence ids the answer cites")
    cited_valid: int = Field(0, description="of those, ids that exist in the analysis")


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
    cost_usd: float = Field(0.0, ge=0, description="from the configured price table")
    checks: list[AnswerCheck] = Field(
        default_factory=list, description="one per model answer; empty when no model ran"
    )


class Summarizer(Protocol):
    name: str

    def summarize(self, draft: Analysis) -> Summary:
        """Summarize a draft analysis (candidates and evidence filled, words empty)."""
        ...
