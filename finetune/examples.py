"""One training example from one analysed incident: the prompt the backends send, and the
answer a model should give, citing the evidence of the true root cause.

The prompt comes from :func:`agent.summarize.prompt.build_prompt` with the serving token
counter, budget and redaction, so a fine-tuned model sees at training time byte for byte what
the ``hf`` backend shows it later. The target is a :class:`~agent.summarize.answer.ModelAnswer`
for the *true* service and fault type (ground truth, or a human correction), citing only
evidence that is in the prompt; it is run through the guard's own
:func:`~agent.summarize.guard.check_answer`, so the model is never taught an answer that serving
would reject. Incidents the model is never asked about (insufficient evidence) and truths that
are not among the candidates (the guard would reject them) yield no example, with a reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from agent.models import Analysis, Candidate, Evidence, FaultType
from agent.summarize.answer import ModelAnswer, RootCauseAnswer, TimelineAnswer
from agent.summarize.extractive import NEXT_STEPS
from agent.summarize.guard import AnswerRejected, check_answer
from agent.summarize.prompt import Message, Prompt

MAX_CITED = 4
MAX_TIMELINE = 3
MAX_ALTERNATIVES = 2
_WHAT_CHARS = 60
_UNQUOTED = str.maketrans({'"': "'", "\\": "/"})

PromptBuilder = Callable[[Analysis], Prompt]


@dataclass(frozen=True)
class Truth:
    """What really happened, from ground truth or from a person's correction."""

    service: str
    fault_type: FaultType


@dataclass(frozen=True)
class Example:
    """One row of the dataset (see :func:`finetune.dataset.build_dataset` for the columns)."""

    id: str
    incident: str
    source: str
    service: str
    fault_type: str
    messages: list[Message]
    prompt_tokens: int
    resolution: str | None = None  # what fixed it, from a rating (feedback rows only)

    @property
    def prompt_hash(self) -> str:
        """Identity of the prompt alone: two rows with the same prompt are duplicates."""
        text = json.dumps(self.messages[:-1], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def row(self) -> dict[str, object]:
        return {
            "id": self.id,
            "incident": self.incident,
            "source": self.source,
            "service": self.service,
            "fault_type": self.fault_type,
            "messages": self.messages,
            "prompt_tokens": self.prompt_tokens,
            "resolution": self.resolution,
        }


class NoExample(ValueError):
    """This incident yields no training example; the message says why (for the card)."""


def _what(e: Evidence) -> str:
    """A short name for the evidence, in the characters constrained decoding lets a model
    write (no quotes or backslashes: they would need JSON escapes, which it never emits)."""
    what = " ".join((e.signal or e.template or "logs").split())
    what = what.translate(_UNQUOTED)
    if len(what) > _WHAT_CHARS:
        what = what[: _WHAT_CHARS - 1] + "…"
    return f"{what} {e.pattern}"


def _candidate(draft: Analysis, service: str) -> Candidate:
    for candidate in draft.candidates:
        if candidate.service == service:
            return candidate
    raise NoExample("true root cause is not among the candidates")


def target_answer(draft: Analysis, truth: Truth, kept: list[str]) -> ModelAnswer:
    """The answer for ``truth`` citing its own evidence among the ``kept`` (prompted) ids.

    Short on purpose: a small model on a short context learns the shape and the grounding,
    and the extractive engine's wording (next steps per fault type) stays the reference.
    """
    by_id = {e.id: e for e in draft.evidence if e.id in kept}
    own = [by_id[i] for i in _candidate(draft, truth.service).evidence_ids if i in by_id]
    if not own:
        raise NoExample("no evidence of the true root cause fits in the prompt")
    cited = own[:MAX_CITED]
    fault = truth.fault_type.value.replace("_", " ")
    because = "; ".join(f"[{e.id}] {_what(e)}" for e in cited)
    first = sorted(by_id.values(), key=lambda e: (e.onset or e.start, -e.score))
    seen: set[str] = set()
    timeline: list[TimelineAnswer] = []
    for e in first:
        if e.service not in seen and len(timeline) < MAX_TIMELINE:
            seen.add(e.service)
            timeline.append(TimelineAnswer(evidence_id=e.id, text=f"{e.service}: {_what(e)}"))
    others = [c for c in draft.candidates if c.service != truth.service][:MAX_ALTERNATIVES]
    top = draft.candidates[0].service == truth.service
    return ModelAnswer(
        root_cause=RootCauseAnswer(
            service=truth.service,
            fault_type=truth.fault_type,
            summary=f"{truth.service} is the most likely root cause ({fault}): {because}.",
        ),
        # A correction away from the engine's top pick is less certain than the engine.
        confidence=round(draft.confidence if top else min(draft.confidence, 0.5), 2),
        evidence_ids=[e.id for e in cited],
        timeline=timeline,
        next_steps=[s.format(service=truth.service) for s in NEXT_STEPS[truth.fault_type]],
        alternatives=[f"{c.service} ({c.fault_type.value})" for c in others],
    )


def build_example(
    draft: Analysis, truth: Truth, *, prompt: PromptBuilder, source: str, incident: str
) -> Example:
    """Prompt + verified target for one analysed incident; :class:`NoExample` when none."""
    if draft.insufficient_evidence or not draft.candidates:
        raise NoExample("insufficient evidence: the model is not asked")
    built = prompt(draft)
    answer = target_answer(draft, truth, built.evidence_ids)
    text = json.dumps(answer.model_dump(mode="json"), ensure_ascii=False)
    try:
        check_answer(text, draft)
    except AnswerRejected as exc:  # a bug in target_answer, not in the data: say so
        raise NoExample(f"target rejected by the guard: {exc}") from None
    return Example(
        id=f"{source}:{incident}:{draft.id}",
        incident=incident,
        source=source,
        service=truth.service,
        fault_type=truth.fault_type.value,
        messages=[*built.messages, {"role": "assistant", "content": text}],
        prompt_tokens=built.tokens,
    )
