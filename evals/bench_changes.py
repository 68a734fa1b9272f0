"""How well the engine judges changes, on the simulator's rollout suite.

For every incident of ``rca eval --suite sim-rollout`` this compares the engine's change
verdicts (``Analysis.changes``) with what the simulator did: is the defective rollout
``suspect``, is it the only suspect, are the healthy rollouts in the same minutes ``cleared``,
and do incidents whose rollouts are all innocent get no suspect. The rollout suite has one
rollout per service, so verdicts are matched to rollouts by service. With ``--pods`` it times
``analyze()`` instead, on one large snapshot (:mod:`evals.rollout_scale`: that many pods,
``--changes`` rollouts in the same 20 minutes; best of three after a warm-up). Examples::

    python -m evals.bench_changes --seeds 40000-40199
    python -m evals.bench_changes --pods 1000 --changes 50
"""

from __future__ import annotations

import time
from collections import Counter

import click

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from evals.rollout_scale import rollout_snapshot
from evals.runner import parse_seed_range
from evals.simulator import simulate_rollout


def _verdict(verdicts: list[str]) -> str | None:
    if "suspect" in verdicts:
        return "suspect"
    if verdicts and all(v == "cleared" for v in verdicts):
        return "cleared"
    return "unknown" if verdicts else None


def score(seeds: range) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """Totals over ``seeds`` and AC@1 counts per defect kind (``innocent`` for none)."""
    totals: Counter[str] = Counter()
    by_kind: Counter[tuple[str, str]] = Counter()
    for seed in seeds:
        scenario = simulate_rollout(seed)
        snapshot = scenario.snapshot
        truth, plan = snapshot.ground_truth, scenario.rollouts
        if truth is None or plan is None:
            raise click.UsageError(f"seed {seed}: not a rollout incident")
        analysis = analyze(snapshot.model_copy(update={"ground_truth": None}), EngineSettings())
        by_service: dict[str, list[str]] = {}
        for v in analysis.changes:
            by_service.setdefault(v.change.service, []).append(v.verdict)
        judged = {r.change_id: _verdict(by_service.get(r.service, [])) for r in plan.rollouts}
        suspects = [s for s, got in by_service.items() if "suspect" in got]
        defect = plan.defect
        kind = defect.kind.value if defect else "innocent"
        by_kind[("n", kind)] += 1
        right = bool(analysis.candidates) and analysis.candidates[0].service == truth.service
        by_kind[("right", kind)] += right
        totals["cases"] += 1
        totals["right"] += right
        if truth.change:
            totals["defective"] += 1
            totals["defective_suspect"] += judged.get(truth.change) == "suspect"
            totals["only_suspect"] += suspects == [truth.service]
        else:
            totals["innocent"] += 1
            totals["innocent_no_suspect"] += not suspects
        for r in plan.healthy:
            totals["healthy"] += 1
            totals["healthy_cleared"] += judged.get(r.change_id) == "cleared"
            totals["healthy_suspect"] += judged.get(r.change_id) == "suspect"
    return totals, by_kind


def _share(n: int, of: int) -> str:
    return f"{n}/{of} ({n / of:.2f})" if of else "-"


def timing(pods: int, changes: int) -> None:
    """Build the large snapshot, then time ``analyze()`` (best of three after a warm-up)."""
    began = time.perf_counter()
    snapshot, defective = rollout_snapshot(pods, changes)
    built = time.perf_counter() - began
    runs = []
    analysis = analyze(snapshot, EngineSettings())
    for _ in range(3):
        began = time.perf_counter()
        analysis = analyze(snapshot, EngineSettings())
        runs.append(time.perf_counter() - began)
    suspects = sorted(v.change.service for v in analysis.changes if v.verdict == "suspect")
    cleared = sum(v.verdict == "cleared" for v in analysis.changes)
    top = analysis.candidates[0].service if analysis.candidates else None
    click.echo(
        f"{pods} pods, {changes} changes, {len(snapshot.signals)} series "
        f"(built in {built:.1f} s): analyze() best {min(runs):.2f} s "
        f"(runs {', '.join(f'{r:.2f}' for r in runs)}); top {top} "
        f"(defective {defective}); suspects {suspects}; cleared {cleared}"
    )


@click.command()
@click.option("--seeds", metavar="A-B", help="Rollout-suite seeds, e.g. 40000-40199.")
@click.option("--pods", type=int, help="Time analyze() on a snapshot with this many pods.")
@click.option("--changes", type=int, default=50, show_default=True, help="... and rollouts.")
def main(seeds: str | None, pods: int | None, changes: int) -> None:
    """Print AC@1 and the change verdicts' accuracy on the rollout suite (``--seeds``), or
    time the engine on a large rollout snapshot (``--pods``)."""
    if pods is not None:
        timing(pods, changes)
        return
    if seeds is None:
        raise click.UsageError("give --seeds A-B (accuracy) or --pods N (timing)")
    totals, by_kind = score(parse_seed_range(seeds))
    rows = (
        ("AC@1", "right", "cases"),
        ("defective change suspect", "defective_suspect", "defective"),
        ("defective change the only suspect", "only_suspect", "defective"),
        ("healthy rollouts cleared", "healthy_cleared", "healthy"),
        ("healthy rollouts suspect", "healthy_suspect", "healthy"),
        ("innocent incidents, no suspect", "innocent_no_suspect", "innocent"),
    )
    for label, part, whole in rows:
        click.echo(f"{label:<34} {_share(totals[part], totals[whole])}")
    for kind in sorted(kind for what, kind in by_kind if what == "n"):
        click.echo(f"  AC@1 {kind:<14} {_share(by_kind[('right', kind)], by_kind[('n', kind)])}")


if __name__ == "__main__":
    main()
