"""Which changes explain what: the canary verdicts reconsidered with the call graph in view.

A before/after comparison sees whatever else happened in those minutes, so it blames a
change only when nothing else explains it, as an SRE would check:

- a service that got worse after its rollout, no earlier than one of its dependencies got
  worse on its own (errors from a failing one, latency from a slow one) and within a few
  samples of it (trouble passed up shows at once; a dependency that was already in trouble
  while the service stayed well did not make it worse, unless that dependency is a suspect
  rollout still taking over), is passing that dependency's trouble up: its change is
  cleared, unless its own CPU, memory or throttling got worse too (waiting is not work)
  or fewer of its pods serve since (the same load on fewer pods), or no direct callee rose
  anywhere near as much (a callee's errors or latency grow a few times on their way up, not
  fifty); what got worse on every pod of it, old or new, counts as passed up as well;
- a caller's errors or latency that rose after a callee's rollout are that callee's only if
  none of the caller's other dependencies, direct or further down (nor the callee's own),
  was in trouble first, big enough to explain it (a direct callee that rose at least a
  fifth as much); errors that rose with the caller's latency are the timeouts of whatever
  explains that latency, and a rise that began with the caller's own trouble off the
  serving path (its CPU, disk or packets) is its own; if several of its callees changed,
  :mod:`agent.engine.owners` says which takes the rise (whose new pods served by the time
  it began, whose progress it followed); most of the changed service's callers must rise
  (one caller failing alone is its own fault), and not on a signal its old pods got as bad
  on as its new ones; a caller whose rise another rising caller of the changed service
  explains, directly or through a dependency of its own (the same trouble, passed up)
  counts neither way;
- a callee that lost requests the changed service still gets: the new build stopped calling
  (where several of its callers changed, :mod:`agent.engine.owners` says which).

"In trouble of its own" is what :mod:`agent.engine.hood` says: a serving errors or latency
series that stayed up for a few samples, a change whose new pods are worse than its old ones,
or a service that went down as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from agent.engine.canary import (
    LEAD_S,
    OLD_AS_BAD,
    OLD_WELL,
    Comparison,
    Judgement,
)
from agent.engine.hood import OWN_LOAD, SERVING, TOLERANCE_S, Neighbourhood, Trouble, add_trouble
from agent.engine.neighbours import (
    Index,
    Rise,
    caller_rises,
    carried,
    index_of,
    own_rise,
)
from agent.engine.old_pods import serving_pods
from agent.engine.owners import (
    Rises,
    ahead_of_rollout,
    answered_wrong,
    followed_callee,
    losses_of,
    owners_of,
)
from agent.models import Change, Signal, SignalKind


def reconsider(
    judged: Sequence[Judgement], signals: Sequence[Signal], hood: Neighbourhood, end: float
) -> list[Judgement]:
    """The verdicts with the neighbours in view (see the module docstring): first each
    change's own before/after evidence, then its callers and callees, then the own evidence
    again with what the neighbours showed."""
    index = index_of(signals)
    changed = {j.change.service: j.change.at.timestamp() for j in judged}
    hood = replace(hood, changed=changed, rolled={j.change.service: j for j in judged})
    own = _own_controls(list(judged), index, hood)
    hood = replace(hood, troubled=_with_passed_on(_with_suspects(hood.troubled, own), own, index))
    suspects = frozenset(j.change.service for j in own if j.verdict == "suspect")
    open_ = [j for j in own if j.verdict != "suspect"]
    rises = {id(j): _unexplained_rises(j, index, hood, suspects, end) for j in open_}
    owners = owners_of(rises, {id(j): j for j in open_}, hood.troubled, index)
    losses = losses_of(open_, index, hood, end)
    after = [
        _neighbour_verdict(j, rises[id(j)], owners, losses[id(j)]) if id(j) in rises else j
        for j in own
    ]
    return _own_controls(after, index, hood)


def _with_suspects(troubled: Trouble, judged: Sequence[Judgement]) -> Trouble:
    out = dict(troubled)
    for j in judged:
        if j.verdict == "suspect":
            add_trouble(out, j)
    return out


def _with_passed_on(troubled: Trouble, judged: Sequence[Judgement], index: Index) -> Trouble:
    """A cleared change's service whose serving series got worse all the same is in trouble
    from when they rose, for its callers: it passes a dependency's trouble on to them, and
    their rise is explained by it, not by a change to another of their callees. Its young
    pods give the detector too short a baseline to say so."""
    out = dict(troubled)
    for j in judged:
        worse = [c for c in j.comparisons if c.worse and not c.same_minutes and c.kind in SERVING]
        if j.verdict != "cleared" or not worse:
            continue
        began = own_rise(j.change, index, worse)
        for c in worse:
            key = (j.change.service, c.kind)
            out[key] = min(out.get(key, math.inf), began)
    return out


def _own_controls(judged: list[Judgement], index: Index, hood: Neighbourhood) -> list[Judgement]:
    """:func:`_own_control` until nothing changes: a suspect dependency explains its
    callers' before/after worsening, and may itself be cleared by one further down."""
    for _ in range(len(judged) + 1):
        done = True
        for i, j in enumerate(judged):
            others = [o for o in judged if o is not j]
            suspect = frozenset(o.change.service for o in others if o.verdict == "suspect")
            troubled = _with_suspects(hood.troubled, others)
            checked = _own_control(j, index, replace(hood, troubled=troubled, suspect=suspect))
            if checked.verdict != j.verdict:
                judged[i], done = checked, False
        if done:
            break
    return judged


def _own_control(judgement: Judgement, index: Index, hood: Neighbourhood) -> Judgement:
    """A change worse only before/after, no earlier than a dependency in trouble of its own
    on the same signals, is cleared: the service passes that dependency's trouble up. Not
    if its own CPU, memory or throttling got worse too (by the before/after margin): a
    slow or failing dependency leaves a caller waiting, not busier; nor if fewer of its pods
    serve since the change; nor if its new pods failed beside old ones that stayed well (a
    dependency's trouble reaches every pod that calls it). Worse on errors alone, it is
    cleared too where another caller of a changed callee began to fail with it
    (:func:`~agent.engine.owners.answered_wrong`: that callee answers wrong)."""
    worse = [c for c in judgement.comparisons if c.worse]
    if not worse or any(c.same_minutes or c.kind in OWN_LOAD for c in worse):
        return judgement
    if any(OLD_WELL in c.versus for c in worse):
        return judgement
    change = judgement.change
    if _scaled_down(change, index):
        return judgement
    # What got worse on every pod, old or new, was passed up too: a caller waiting on a slow
    # dependency times out, its latency up on every pod and its errors on the new ones.
    every_pod = {c.kind for c in judgement.comparisons if OLD_AS_BAD in c.versus}
    kinds = ({c.kind for c in worse} | every_pod) & set(SERVING)
    callees = hood.callees.get(change.service, ())
    began = own_rise(change, index, worse)
    other, how = None, "its dependency {} is, which is in trouble of its own"
    at = change.at.timestamp()
    if carried(change.service, at, index, callees, kinds, hood.unsized, began):
        other = _dependency_in_trouble(change, hood, kinds, began, True)
    if other is None and kinds == {SignalKind.ERRORS}:
        other = answered_wrong(change.service, began, callees, hood, index)
        how = "other callers of {}, which changed too, fail with it"
    if other is None and kinds == {SignalKind.ERRORS}:
        other = followed_callee(judgement, began, hood, index)
        how = "{}'s new pods took over (its errors followed that rollout, not its own)"
    if other is None:
        return judgement
    shown = ", ".join(sorted({c.kind.value for c in worse}))
    why = (
        f"{_label(change)}: worse on {shown} after the change only as {how.format(other)}: cleared"
    )
    return replace(judgement, verdict="cleared", reasons=[why])


def _scaled_down(change: Change, index: Index) -> bool:
    """Whether fewer of the service's pods serve at the end than just before the change: the
    same load on fewer pods makes each of them slower, whatever its dependencies do."""
    pods = [s for s in index.get(change.service, ()) if s.pod is not None]
    return serving_pods(pods) < serving_pods(pods, change.at.timestamp())


def _dependency_in_trouble(
    change: Change,
    hood: Neighbourhood,
    kinds: Iterable[SignalKind],
    by: float | None,
    with_it: bool = False,
) -> str | None:
    """A dependency of the changed service (or theirs) in trouble of its own from shortly
    before the change and no later than ``by``; ``with_it``: no earlier than
    :data:`TOLERANCE_S` before ``by`` either, unless its trouble is a suspect rollout (which
    grows as its new pods take over): trouble passed up shows within a few samples, so a
    service that stayed well while its dependency was already in trouble, and got worse
    only as its own new pods served, was not hurt by that dependency."""
    kinds = list(kinds)
    since = change.at.timestamp() - LEAD_S
    for callee in hood.downstream(change.service):
        if not hood.troubled_between(callee, kinds, since, by):
            continue
        began = hood.began(callee, kinds, by)
        ramping = callee in hood.suspect and began >= hood.changed[callee] - TOLERANCE_S
        if with_it and by is not None and began < by - TOLERANCE_S and not ramping:
            continue
        return callee
    return None


def _unexplained_rises(
    judgement: Judgement,
    index: Index,
    hood: Neighbourhood,
    suspects: frozenset[str],
    end: float,
) -> Rises:
    """The change's callers' rises, less those another dependency in trouble explains, those
    of a caller whose own new version is suspect (its failures are its own), and those on a
    signal the changed service's old pods got as bad on as its new ones (the service fails,
    whichever version serves)."""
    change = judgement.change
    rises, measured = caller_rises(change, index, hood.callers.get(change.service, ()), end)
    every_pod = {c.kind for c in judgement.comparisons if c.own and OLD_AS_BAD in c.versus}
    culprits = {id(r): _culprit(r, change, hood, index) for r in rises}
    kept, notes, relayed = [], [], {}
    for r in rises:
        culprit = culprits[id(r)] or _timeouts_of(r, rises, culprits)
        if r.caller in suspects:
            notes.append(f"{r.caller}'s {r.kind.value} rose, but its own new version is suspect")
        elif r.kind in every_pod:
            notes.append(f"{r.caller}'s {r.kind.value} rose, as every pod's of it did, old or new")
        elif _own_trouble(r, hood):
            notes.append(f"{r.caller}'s {r.kind.value} rose with trouble of its own")
        elif ahead_of_rollout(r, judgement, index):
            notes.append(
                f"{r.caller}'s {r.kind.value} were at their full rise before "
                f"{change.service}'s new pods served"
            )
        elif culprit is not None:
            notes.append(f"{r.caller}'s {r.kind.value} rose, as did {culprit}'s")
            relayed[r.caller] = culprit
        else:
            kept.append(r)
    rising = {r.caller for r in kept}
    through = {c: _through(by, rising, hood) for c, by in relayed.items() if c not in rising}
    return Rises(kept, measured, notes, {c: by for c, by in through.items() if by is not None})


def _own_trouble(rise: Rise, hood: Neighbourhood) -> bool:
    """Whether the caller's rise began with clear trouble of its own off the serving path
    (:func:`_sick`), within :data:`TOLERANCE_S`: a caller whose own network or CPU went bad
    in the minute its errors rose fails on that, not on what a callee's new build answers
    (which leaves the caller itself well)."""
    began = hood.sick.get(rise.caller)
    return began is not None and rise.onset is not None and abs(began - rise.onset) <= TOLERANCE_S


def _through(culprit: str, rising: set[str], hood: Neighbourhood) -> str | None:
    """The rising caller whose trouble a culprit passes on: the culprit itself, or the
    nearest rising caller it depends on (the same trouble, passed up more than one call)."""
    if culprit in rising:
        return culprit
    return next((d for d in hood.downstream(culprit) if d in rising), None)


def _culprit(rise: Rise, change: Change, hood: Neighbourhood, index: Index) -> str | None:
    """Another dependency of the caller (or of the changed service) in trouble of its own on
    the rise's signal by the time the rise began, nearest first; the caller's own only where
    the direct callee it reaches the caller through rose anywhere near as much as the caller
    did (:func:`carried`: another callee's trouble does not make it big enough)."""
    at = change.at.timestamp()
    direct = [c for c in hood.callees.get(rise.caller, ()) if c != change.service]
    for other in hood.downstream(rise.caller):
        if other == change.service:
            continue
        if not hood.troubled_between(other, {rise.kind}, at - LEAD_S, rise.onset):
            continue
        via = [c for c in direct if c == other or other in hood.downstream(c)]
        if carried(rise.caller, at, index, via, {rise.kind}, hood.unsized, rise.onset):
            return other
    return _dependency_in_trouble(change, hood, {rise.kind}, rise.onset)


def _timeouts_of(
    rise: Rise, rises: Sequence[Rise], culprits: Mapping[int, str | None]
) -> str | None:
    """The dependency that explains the same caller's latency rise, for an errors rise that
    began with it (within :data:`TOLERANCE_S`): a caller kept waiting on a slow dependency
    times out, so its errors come with its latency. Not a dependency's latency alone: a
    caller whose own latency held fails for what it got back, not for waiting."""
    if rise.kind is not SignalKind.ERRORS:
        return None
    for other in rises:
        culprit = culprits[id(other)]
        if other.caller != rise.caller or other.kind is not SignalKind.LATENCY or not culprit:
            continue
        if rise.onset is None or other.onset is None:
            return culprit
        if abs(rise.onset - other.onset) <= TOLERANCE_S:
            return culprit
    return None


def _neighbour_verdict(
    judgement: Judgement, found: Rises, owners: Mapping[str, str], losses: list[Comparison]
) -> Judgement:
    """Suspect when most callers fail more towards the change since it, with nothing else
    to explain it, or a callee lost requests the changed service still gets."""
    change, label = judgement.change, _label(judgement.change)
    mine = [r for r in found.rises if owners.get(r.caller) == change.service]
    failing = sorted({r.caller for r in mine})
    echoes = {c for c, by in found.relayed.items() if by in failing}
    reasons: list[str] = []
    callers = []
    if failing and 2 * len(failing) > found.measured - len(echoes):
        callers = [r.comparison for r in mine]
        reasons.append(
            f"{label}: its callers {', '.join(failing)} fail more towards it since its new "
            "pods served, and none of their other dependencies is in trouble"
            + (f" ({', '.join(sorted(echoes))}: the same, passed up)" if echoes else "")
        )
    for c in losses:
        reasons.append(
            f"{label}: its callee {c.signal.service} lost requests since its new pods served "
            f"({c.new.median:.3g} vs {c.reference.median:.3g}) while its own traffic held"
        )
    if not reasons:
        return replace(judgement, reasons=judgement.reasons + found.notes)
    own = judgement.reasons if judgement.verdict == "suspect" else []
    return replace(
        judgement,
        verdict="suspect",
        comparisons=judgement.comparisons + callers + losses,
        reasons=own + reasons,
    )


def _label(change: Change) -> str:
    return f"{change.service} {change.to_version or 'new version'}"
