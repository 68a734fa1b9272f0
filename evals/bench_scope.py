"""Does an ad-hoc request find the root cause as often as the alert does?

An on-call engineer who types ``/rca storefront`` names where it hurts, as an alert does; the
cause is often further down the call graph. For every simulated incident in a seed range this
benchmark analyses the same data four ways:

- ``alert``: the snapshot with its alert, as the webhook path analyses it;
- ``request``: an ad-hoc request naming the entry (front-end) service that reaches the root
  cause, from the alert's start (stated: "it hurts since") to the end of the data, through
  the same window rule
  (:func:`agent.window.frame`), scope (:func:`connectors.collect.request_scope`) and live
  collection (:func:`connectors.collect.collect_live`, over a source that serves the
  snapshot's series, logs and call graph) as ``POST /v1/analyses`` and Slack's ``/rca``;
- ``replay``: the snapshot replayed as that request (``rca analyze DIR --service ENTRY``);
- ``named_only``: the request as it was collected before: the named service's series alone;
- ``request_alerted``: the request naming the alert's services instead of the entry: the
  same facts the alert gives, through the request's path (what the scope itself costs).

The entry is an alerted service when one is an entry that reaches the root cause, else the
first (by name) entry among the root cause and its callers' callers. Example::

    python -m evals.bench_scope --seeds 17000-17199 --json out/bench_scope.json
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.errors import RcaError
from agent.models import Analysis, Trigger
from agent.scope import as_request
from agent.snapshot import Snapshot
from agent.window import WindowRule, frame
from connectors.collect import Scope, collect_live, request_scope
from connectors.settings import CollectSettings
from evals.runner import parse_seed_range
from evals.simulator import Scenario, simulate
from evals.snapshot_sources import SnapshotLogs, SnapshotMetrics

PATHS = ("alert", "request", "replay", "named_only", "request_alerted")


def entry_service(scenario: Scenario) -> str:
    """The front-end service an engineer would name: an entry that reaches the root cause."""
    graph, truth = scenario.graph, scenario.plan.service
    reaching = {truth, *graph.ancestors(truth)}
    entries = sorted(n for n in reaching if not graph.callers(n))
    alerted = scenario.snapshot.alert.services() if scenario.snapshot.alert else []
    return next((s for s in alerted if s in entries), entries[0] if entries else truth)


@dataclass(frozen=True)
class ScopeCase:
    seed: int
    fault: str
    truth: str
    entry: str
    services: int
    kept: int  # services in the request's neighbourhood
    top: dict[str, str | None]  # path -> top candidate

    def right(self, path: str) -> bool:
        return self.top[path] == self.truth


def _top(analysis: Analysis) -> str | None:
    return analysis.candidates[0].service if analysis.candidates else None


def request_analysis(
    snapshot: Snapshot, named: Sequence[str], engine: EngineSettings, named_only: bool = False
) -> tuple[Analysis, Snapshot]:
    """The ad-hoc request on ``named`` from the alert's start to the end of the data."""
    assert snapshot.alert is not None and snapshot.meta.window.end is not None
    start, end = snapshot.alert.starts_at, snapshot.meta.window.end
    rule = WindowRule(lookback=timedelta(minutes=engine.lookback_minutes))
    framed = frame(start, end, rule, end=end)
    scope = request_scope(named, framed, since=start)
    if named_only:  # before: the named service's series were all that was collected
        scope = Scope(tuple(named), framed.incident_start, framed.end, start=framed.start)
    options = CollectSettings()
    collected = collect_live(scope, SnapshotMetrics(snapshot), SnapshotLogs(snapshot.logs), options)
    trigger = Trigger(kind="api", services=list(named), since=start)
    return analyze(collected.snapshot, engine, trigger), collected.snapshot


def run_case(seed: int, engine: EngineSettings) -> ScopeCase:
    scenario = simulate(seed)
    snapshot = scenario.snapshot.model_copy(update={"ground_truth": None})
    entry = entry_service(scenario)
    assert snapshot.alert is not None
    request, collected = request_analysis(snapshot, [entry], engine)
    named, _ = request_analysis(snapshot, [entry], engine, named_only=True)
    alerted, _ = request_analysis(snapshot, snapshot.alert.services(), engine)
    lookback = timedelta(minutes=engine.lookback_minutes)
    trigger = Trigger(kind="cli", services=[entry], since=snapshot.alert.starts_at)
    replay = analyze(as_request(snapshot, [entry], lookback), engine, trigger)
    tops = {
        "alert": _top(analyze(snapshot, engine)),
        "request": _top(request),
        "replay": _top(replay),
        "named_only": _top(named),
        "request_alerted": _top(alerted),
    }
    return ScopeCase(
        seed=seed,
        fault=scenario.plan.fault.value,
        truth=scenario.plan.service,
        entry=entry,
        services=len(scenario.graph.services),
        kept=len({s.service for s in collected.signals}),
        top=tops,
    )


def summarize(cases: Sequence[ScopeCase]) -> dict[str, float | int]:
    n = len(cases)

    def share(holds: Callable[[ScopeCase], bool]) -> float:
        return round(sum(holds(c) for c in cases) / n, 3) if n else 0.0

    out: dict[str, float | int] = {"n": n}
    for path in PATHS:
        out[f"{path}_ac_at_1"] = share(lambda c, p=path: c.right(p))
    out["entry_is_root_cause"] = share(lambda c: c.entry == c.truth)
    out["request_agrees_with_alert"] = share(lambda c: c.top["request"] == c.top["alert"])
    out["mean_services_kept"] = round(sum(c.kept / c.services for c in cases) / n, 3) if n else 0
    return out


def _table(metrics: Mapping[str, float | int], seeds: str) -> Table:
    table = Table(title=f"ad-hoc scope vs alert, seeds {seeds} (n={metrics['n']})")
    table.add_column("path")
    table.add_column("AC@1", justify="right")
    for path in PATHS:
        table.add_row(path, f"{metrics[f'{path}_ac_at_1']:.3f}")
    return table


@click.command()
@click.option("--seeds", required=True, help="Seed range A-B of simulated incidents.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
def main(seeds: str, json_out: Path | None) -> None:
    """Compare an ad-hoc request naming the entry service with the alert path."""
    console = Console(stderr=True)
    try:
        seed_range = parse_seed_range(seeds)
    except RcaError as err:
        raise click.BadParameter(str(err), param_hint="--seeds") from None
    engine = EngineSettings()
    cases: list[ScopeCase] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("simulating and analysing", total=len(seed_range))
        for seed in seed_range:
            cases.append(run_case(seed, engine))
            progress.advance(task)
    metrics = summarize(cases)
    Console().print(_table(metrics, seeds))
    click.echo(json.dumps(metrics, indent=2))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        report = {"seeds": seeds, "metrics": metrics, "cases": [asdict(c) for c in cases]}
        json_out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
