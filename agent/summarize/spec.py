"""What one answer may say, per request: the values the guard accepts for this draft.

:func:`answer_spec` turns the draft analysis and the prompt the model was shown into an
:class:`AnswerSpec`: the candidate services (only those with citable evidence of their own, so
the guard's "evidence of the root-cause service" rule can always be met), the fault types, the
evidence ids the model may cite (the ids in the prompt: the model cannot know the others) and
which of them each service owns, plus length limits that keep an answer inside the token cap.

Backends use it to make a rejected answer impossible rather than unlikely: the ``hf`` backend
decodes against :class:`~agent.summarize.grammar.AnswerGrammar`, the ``openai`` backend sends
the enums in its strict JSON schema. Pure data, no model imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from agent.models import Analysis, FaultType
from agent.summarize.prompt import Prompt

# The guard recognises a citation in text only in this shape (guard._CITATION).
_CITABLE_ID = re.compile(r"[A-Z]\d+")
# Characters json.dumps would escape: an enum value must appear in the answer verbatim.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


@dataclass(frozen=True)
class AnswerSpec:
    """The allowed values and limits of one answer (see the module docstring).

    ``services`` keep the engine's rank order; ``owned`` maps each of them to its citable
    evidence ids (never empty). Text limits are in characters, list limits in items; the
    schema's own maxima (timeline 12, next steps 6, alternatives 4) are the ceilings.
    """

    services: tuple[str, ...]
    fault_types: tuple[str, ...]
    evidence_ids: tuple[str, ...]
    owned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    summary_chars: int = 400
    text_chars: int = 160
    max_evidence_ids: int = 8
    max_timeline: int = 12
    max_next_steps: int = 6
    max_alternatives: int = 4

    def __post_init__(self) -> None:
        if not self.services or not self.fault_types or not self.evidence_ids:
            raise ValueError("an answer spec needs services, fault types and evidence ids")
        known = set(self.evidence_ids)
        for service in self.services:
            own = self.owned.get(service, ())
            if not own or not set(own) <= known:
                raise ValueError(f"service {service!r} needs citable evidence of its own")
        bad = [i for i in self.evidence_ids if not _CITABLE_ID.fullmatch(i)]
        if bad:
            raise ValueError(f"evidence ids must look like M1 or L2, not {', '.join(bad)}")
        if min(self.summary_chars, self.text_chars, self.max_evidence_ids) < 1:
            raise ValueError("text and evidence limits must be at least 1")
        if not (0 <= self.max_timeline <= 12 and 0 <= self.max_next_steps <= 6):
            raise ValueError("max_timeline is 0-12 and max_next_steps 0-6 (the schema's limits)")
        if not 0 <= self.max_alternatives <= 4:
            raise ValueError("max_alternatives is 0-4 (the schema's limit)")


def answer_spec(draft: Analysis, prompt: Prompt | None = None) -> AnswerSpec | None:
    """The spec of the answer to ``draft``; None when no answer could pass the guard.

    Citable ids are those shown in ``prompt`` (all the draft's when the prompt showed none or
    is not given). A candidate without citable evidence of its own cannot be the root cause
    of a valid answer, so it is left out; when none is left there is no spec.
    """
    ids = [e.id for e in draft.evidence if _CITABLE_ID.fullmatch(e.id)]
    shown = set(prompt.evidence_ids) if prompt is not None else set()
    citable = [i for i in ids if i in shown] or ids
    allowed = set(citable)
    owned: dict[str, tuple[str, ...]] = {}
    for candidate in draft.candidates:
        service = candidate.service
        own = tuple(e.id for e in draft.evidence if e.service == service and e.id in allowed)
        if own and service and service not in owned and not _NEEDS_ESCAPE.search(service):
            owned[service] = own
    if not owned:
        return None
    return AnswerSpec(
        services=tuple(owned),
        fault_types=tuple(f.value for f in FaultType),
        evidence_ids=tuple(dict.fromkeys(citable)),
        owned=owned,
    )
