"""Where a suspect build's doing lands: on its dependencies, which show it, not cause it.

- a callee whose requests fell because a caller's new version stopped sending them is where
  the loss shows, not where it began;
- a dependency that got busier (CPU, a pool, a queue) only once a caller's new build served,
  a build whose new pods are worse than its old ones over the same minutes, does the extra
  work that build asks of it (a query without its index, retries): its own trouble would
  have hurt the old pods as much as the new ones.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent.engine.callgraph import CallGraph
from agent.engine.canary import Judgement
from agent.engine.service_score import ServiceScore
from agent.models import SignalKind

OWN_LOAD = frozenset({SignalKind.RESOURCE, SignalKind.SATURATION})
LANDED = 0.5  # of a dependency's score where a caller's build's doing shows


def apply_dropped_calls(by_service: dict[str, ServiceScore]) -> None:
    """A service whose requests fell because a caller's new version stopped sending them is
    where the loss shows, not where it began."""
    for s in list(by_service.values()):
        for callee in sorted(s.dropped_calls):
            if (c := by_service.get(callee)) is not None:
                c.score *= LANDED
                c.reasons.append(f"it lost the requests {s.service}'s new version stopped sending")


def apply_loaded_callees(
    by_service: dict[str, ServiceScore],
    judged: Sequence[Judgement],
    graph: CallGraph,
    tolerance: float,
) -> None:
    """A callee whose trouble began (give or take ``tolerance``) once the new pods of a
    build worse than its old pods over the same minutes served, and whose strongest finding
    is its own load going up, is busy with what that build asks of it."""
    for j in judged:
        if j.verdict != "suspect" or not any(
            c.worse and c.same_minutes and c.own for c in j.comparisons
        ):
            continue
        since = (j.served or j.change.at.timestamp()) - tolerance
        for callee in graph.callees.get(j.change.service, ()):
            d = by_service.get(callee)
            if d is None or d.onset is None or d.onset < since or d.change_bonus is not None:
                continue
            top = max(d.metrics, key=lambda f: f.score, default=None)
            if top is None or top.kind not in OWN_LOAD or top.direction <= 0:
                continue
            d.score *= LANDED
            d.reasons.append(f"it got busier only once {j.change.service}'s new version served")
