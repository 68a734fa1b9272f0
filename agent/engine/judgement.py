"""A change's judgement: what its new pods were compared with, and the verdict.

:mod:`agent.engine.canary` makes the comparisons, :mod:`agent.engine.neighbours` and
:mod:`agent.engine.losses` add its neighbours', and :mod:`agent.engine.trouble` reconsiders
the verdict with the call graph in view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from agent.models import Change, Signal, SignalKind, Stats

BEFORE_AFTER_WEIGHT = 0.75  # of the change's own before/after comparison
Verdict = Literal["suspect", "cleared", "unknown"]


@dataclass(frozen=True)
class Comparison:
    """One series name compared between the new version's pods and the reference."""

    signal: Signal  # a series of one of the new pods: what the evidence points at
    kind: SignalKind
    new: Stats
    reference: Stats
    versus: str  # what the new pods were compared with, in words
    p_value: float
    worse: bool
    same_minutes: bool = True  # new vs old over the same minutes; else before vs after
    own: bool = True  # the changed service's own series; else a neighbour's
    label: str = ""  # what it measures, in words, where its kind does not say it
    onset: float | None = None  # a neighbour's: when its rise (or loss) began

    @property
    def what(self) -> str:
        return self.label or self.kind.value

    @property
    def weight(self) -> float:
        """Before/after comparisons also see whatever else happened in those minutes (the
        incident itself, if its cause is elsewhere), so they weigh less; a neighbour's,
        which also depends on the call graph being right, weighs half."""
        return 1.0 if self.same_minutes else BEFORE_AFTER_WEIGHT if self.own else 0.5

    @property
    def z(self) -> float:
        """The p-value as a z-like score, for the ranking's common scale."""
        return min(50.0, math.sqrt(max(-2.0 * math.log(max(self.p_value, 1e-300)), 0.0)))


@dataclass(frozen=True)
class Judgement:
    change: Change
    verdict: Verdict
    comparisons: list[Comparison] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    served: float | None = None  # when its new pods first served requests, where seen
    new_pods: frozenset[str] = frozenset()

    @property
    def worst(self) -> Comparison | None:
        worse = [c for c in self.comparisons if c.worse]
        return min(worse, key=lambda c: c.p_value) if worse else None
