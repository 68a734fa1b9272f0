"""Shared by the summarizer tests: a valid answer for the conftest analysis and a scripted
LLM backend (the guard's seam, without any model or network)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent.summarize.llm import Completion
from agent.summarize.prompt import Message, estimate_tokens
from agent.summarize.spec import AnswerSpec


def answer(**overrides: Any) -> dict[str, Any]:
    """A valid answer for the conftest analysis (payments leaks memory: M1, L1)."""
    data: dict[str, Any] = {
        "root_cause": {
            "service": "payments",
            "fault_type": "memory_leak",
            "summary": "payments leaks memory from 10:42 [M1] and logs OutOfMemoryError [L1].",
        },
        "confidence": 0.8,
        "evidence_ids": ["M1", "L1"],
        "timeline": [
            {"evidence_id": "M2", "text": "checkout p99 latency rises"},
            {"evidence_id": "M1", "text": "payments memory starts climbing"},
        ],
        "next_steps": ["Check heap usage of payments [M1]"],
        "alternatives": ["checkout (network_latency)"],
    }
    data.update(overrides)
    return data


class ScriptedBackend:
    """Answers from a list, in order; records the messages and the spec of every call."""

    name = "scripted"

    def __init__(self, *answers: str | Exception, remote: bool = True) -> None:
        self.answers = list(answers)
        self.calls: list[list[Message]] = []
        self.specs: list[AnswerSpec | None] = []
        self.remote = remote

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return estimate_tokens(messages)

    def complete(self, messages: Sequence[Message], spec: AnswerSpec | None = None) -> Completion:
        self.calls.append(list(messages))
        self.specs.append(spec)
        reply = self.answers.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return Completion(reply, prompt_tokens=100, completion_tokens=20, cost_usd=0.001)
