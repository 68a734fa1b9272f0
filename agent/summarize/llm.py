"""The seam between the guard and a language model: complete chat messages, count tokens.

An :class:`LlmBackend` knows nothing about incidents; prompts, redaction, validation, repair
and fallback live in :mod:`agent.summarize.guard`, so every backend gets them the same way.
The guard does pass each call the :class:`~agent.summarize.spec.AnswerSpec` of the answer it
will accept, so a backend that can constrain its output (hf: decoding, openai: the JSON
schema) makes a rejected answer impossible instead of unlikely; one that cannot ignores it.
Tests script a backend in a few lines (see ``tests/test_guard.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.errors import ConfigError, RcaError
from agent.summarize.prompt import Message
from agent.summarize.spec import AnswerSpec


class LlmCallError(RcaError):
    """A model call failed (endpoint down, timed out after retries, generation crashed).

    The guard turns it into an extractive fallback; it reaches the user only as the
    ``summarizer_fallback`` reason of the analysis.
    """


class ModelNotAvailableError(ConfigError):
    """A local model is not on disk; the message names the command that fetches it."""


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float = 0.0


class LlmBackend(Protocol):
    name: str
    remote: bool
    """True when prompts leave the process: redaction is then always on."""

    def count_tokens(self, messages: Sequence[Message]) -> int:
        """Prompt tokens of ``messages`` as this backend's model will see them."""
        ...

    def complete(self, messages: Sequence[Message], spec: AnswerSpec | None = None) -> Completion:
        """One chat completion, held to ``spec`` where the backend can; raises
        :class:`LlmCallError` when no answer can be had."""
        ...
