"""Do the numbers an analysis quotes support what its evidence says?

A metric item says a series went up or down; the value it quotes for the incident must then
lie above (or below) the baseline median it quotes next to it. An item that says "down from
489 ms to 490 ms" tells a tired engineer the opposite of its direction. This walks suites of
incidents and lists every such item; the project keeps the count at zero. Example::

    python -m evals.honesty --suite ../shared/real/nezha-dev --seeds 16000-16199
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import click

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.models import Analysis, Evidence
from evals.runner import Case, directory_cases, expand_suites, parse_seed_range, simulated_cases


def quoted_incident_value(evidence: Evidence) -> float | None:
    """The incident value a metric item's text quotes for its direction."""
    if evidence.value is not None:
        return evidence.value
    stats = evidence.incident
    return stats.max if evidence.pattern == "up" else stats.median


def contradicts(evidence: Evidence) -> bool:
    """An up/down metric item whose quoted incident value is not beyond its quoted baseline."""
    if evidence.source != "metric" or evidence.pattern not in ("up", "down"):
        return False
    before, after = evidence.baseline.median, quoted_incident_value(evidence)
    if before is None or after is None:
        return True  # a direction with nothing to show for it
    return not (after > before if evidence.pattern == "up" else after < before)


@dataclass
class Tally:
    cases: int = 0
    items: int = 0
    contradicting: list[tuple[str, str]] = field(default_factory=list)

    def add(self, case: str, analysis: Analysis) -> None:
        self.cases += 1
        for evidence in analysis.evidence:
            if evidence.source == "metric" and evidence.pattern in ("up", "down"):
                self.items += 1
                if contradicts(evidence):
                    self.contradicting.append((case, evidence.description))


def walk(cases: Iterable[Case], engine: EngineSettings | None = None) -> Tally:
    """Analyse every case blind and tally its metric items."""
    tally = Tally()
    for case in cases:
        snapshot = case.load().model_copy(update={"ground_truth": None})
        tally.add(case.name, analyze(snapshot, engine))
    return tally


@click.command()
@click.option("--suite", "suites", multiple=True, metavar="DIR", help="Snapshot folders to walk.")
@click.option("--seeds", metavar="A-B", help="Simulator seeds to walk as well.")
def main(suites: tuple[str, ...], seeds: str | None) -> None:
    """Count metric items whose quoted numbers contradict their direction."""
    cases: list[Case] = []
    for suite in expand_suites(suites):
        if suite.path is not None:
            cases += directory_cases(Path(suite.path))[0]
    if seeds:
        cases += simulated_cases(parse_seed_range(seeds))
    tally = walk(cases)
    found = tally.contradicting
    click.echo(f"{tally.cases} cases, {tally.items} metric items, {len(found)} contradicting")
    for case, text in found:
        click.echo(f"  {case}: {text}")
    raise SystemExit(1 if found else 0)


if __name__ == "__main__":
    main()
