"""The incident-memory benchmark: does remembering past incidents help on recurring ones?

A stream of simulated incidents (:mod:`evals.simulator.recurring`) in which about 30% repeat
an earlier incident's cause with other noise, topology and timing. Each incident is analysed
once (detection and ranking are the expensive part); the ranked draft is then finished three
ways, as the service's ``enrich`` hook would:

- ``none``: no memory (the engine alone);
- ``memory``: the bounded prior (:mod:`agent.memory.prior`) from the incidents before it, each
  rated by the time the next one comes: "correct" when the engine was right, else "wrong"
  with the real cause;
- ``memory-20%-wrong``: the same, but a fifth of the ratings (drawn by seed) lie: a right
  answer rated wrong with another candidate named, a wrong one rated correct.

Each run keeps its own memory (an in-process :class:`~agent.memory.index.MemoryIndex` of the
fingerprints of what that run answered, each holding the cause its rating confirmed, as the
service's do once rated). Reported: AC@1 of each run, and for the repeats,
how often the top similar past incident is a twin (an earlier incident with the same cause).
With ``--embeddings-dir`` (a sentence-transformers directory, read as ``memory.embeddings:
local`` reads it), also how often it is a twin once the text's cosine is mixed in as the
service mixes it into similar-incident lookups (:func:`agent.store.memory.rerank`); the prior
uses the fingerprint alone, so AC@1 does not depend on it. Example::

    python -m evals.recurring --seed 11 --incidents 200 --json-file out/recurring.json
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from agent.engine.pipeline import analyze
from agent.errors import SourceError
from agent.memory.embed import Embedder, LocalEmbedder, cosine, embedding_text
from agent.memory.fingerprint import Fingerprint, fingerprint_of
from agent.memory.index import MemoryIndex
from agent.memory.prior import MAX_SHARE, apply_prior
from agent.memory.recall import PastIncident, confirmed_cause
from agent.memory.settings import MemorySettings
from agent.models import Analysis
from agent.store.memory import RERANK_POOL, rerank
from agent.summarize.extractive import ExtractiveSummarizer
from evals.simulator.recurring import Recurring, recurring_stream

RUNS = ("none", "memory", "memory-20%-wrong")
WRONG_SHARE = 0.2
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Rating:
    verdict: str
    actual_service: str | None
    actual_fault_type: str | None


@dataclass
class Memory:
    """One run's memory: fingerprints of its answers, and the ratings they got."""

    index: MemoryIndex = field(default_factory=MemoryIndex)
    stored: dict[str, Fingerprint] = field(default_factory=dict)
    ratings: dict[str, Rating] = field(default_factory=dict)
    created: dict[str, datetime] = field(default_factory=dict)
    truth: dict[str, tuple[str, str]] = field(default_factory=dict)  # bookkeeping, not recalled
    texts: dict[str, np.ndarray] = field(default_factory=dict)  # text embeddings, when made

    def top_with_text(self, fp: Fingerprint, text: np.ndarray, weight: float) -> str | None:
        """The most similar past analysis once the text's cosine is mixed in, as the
        service's lookups mix it (the fingerprint's top hits re-ranked)."""
        hits = self.index.similar(fp, RERANK_POOL, min_similarity=0.0)
        cosines = {
            h.analysis_id: c
            for h in hits
            if (c := cosine(text, self.texts[h.analysis_id])) is not None
        }
        mixed = rerank(hits, cosines, weight, 0.0)
        return mixed[0].analysis_id if mixed else None

    def recall(self, fp: Fingerprint, k: int, exclude: str | None = None) -> list[PastIncident]:
        found = []
        for hit in self.index.similar(fp, k, exclude=exclude):
            past = self.stored[hit.analysis_id]
            rating = self.ratings.get(hit.analysis_id)
            service, fault = confirmed_cause(
                past.root_service,
                past.fault_type,
                rating.verdict if rating else None,
                rating.actual_service if rating else None,
                rating.actual_fault_type if rating else None,
            )
            found.append(
                PastIncident(
                    analysis_id=hit.analysis_id,
                    created_at=self.created[hit.analysis_id],
                    similarity=hit.similarity,
                    root_service=past.root_service,
                    fault_type=past.fault_type,
                    verdict=rating.verdict if rating else None,
                    confirmed_service=service,
                    confirmed_fault_type=fault,
                )
            )
        return found

    def remember(
        self, key: str, when: datetime, fp: Fingerprint, rating: Rating, truth: tuple[str, str]
    ) -> None:
        """Store the answer's fingerprint with the cause its rating confirms, as the service
        does when a rating comes (:func:`agent.store.memory.confirm_fingerprint`)."""
        service, fault = confirmed_cause(
            fp.root_service,
            fp.fault_type,
            rating.verdict,
            rating.actual_service,
            rating.actual_fault_type,
        )
        fp = fp.confirmed_as(service, fault)
        self.index.add(key, when.timestamp(), fp)
        self.stored[key] = fp
        self.created[key] = when
        self.ratings[key] = rating
        self.truth[key] = truth


def _top(analysis: Analysis) -> str | None:
    return analysis.candidates[0].service if analysis.candidates else None


def _rating(
    answer: Analysis, truth: tuple[str, str], lie: bool, rng: np.random.Generator
) -> Rating:
    """What the team says about an answer: the truth, or (``lie``) deliberately the opposite."""
    right = _top(answer) == truth[0]
    if not lie:
        return Rating("correct", None, None) if right else Rating("wrong", *truth)
    if not right:
        return Rating("correct", None, None)  # a wrong answer confirmed
    others = [c for c in answer.candidates[1:] if c.service != truth[0]]
    if not others:
        return Rating("wrong", None, None)  # says wrong, names nothing: confirms nothing
    blamed = others[int(rng.integers(len(others)))]
    return Rating("wrong", blamed.service, blamed.fault_type.value)


@dataclass
class Tally:
    right: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUNS, 0))
    twin_top: int = 0
    twin_top_with_text: int = 0
    repeats: int = 0
    # Repeats whose answer was right both times, and how often the twin came first for them.
    clear_repeats: int = 0
    clear_twin_top: int = 0
    # Wrong without memory although an earlier incident had the same cause (what memory could
    # fix at most), and of those, the ones where the true service was a close call.
    fixable: int = 0
    close_calls: int = 0
    incidents: int = 0
    prior_applied: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUNS, 0))
    fixed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUNS, 0))
    broken: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RUNS, 0))


def _close_call(draft: Analysis, service: str) -> bool:
    """``service`` is a candidate within the prior's reach of the leader."""
    if not draft.candidates or draft.candidates[0].score <= 0:
        return False
    leader = draft.candidates[0].score
    own = next((c.score for c in draft.candidates if c.service == service), None)
    return own is not None and own >= (1 - MAX_SHARE) * leader


def _draft(incident: Recurring) -> tuple[Analysis, dict[str, str]]:
    """The ranked draft the ``enrich`` hook would see (analysed blind)."""
    snapshot = incident.scenario.snapshot.model_copy(update={"ground_truth": None})
    seen: list[Analysis] = []

    def capture(draft: Analysis) -> Analysis:
        seen.append(draft)
        return draft

    analyze(snapshot, enrich=capture)
    alert = snapshot.alert
    labels = {**alert.groupLabels, **alert.commonLabels} if alert is not None else {}
    return seen[0], labels


def _embedded(analysis: Analysis, fp: Fingerprint, embedder: Embedder) -> np.ndarray:
    """The vector the service stores for an analysis: its summary (the extractive one here)
    and its fingerprint's masked templates."""
    summary = ExtractiveSummarizer().summarize(analysis).text
    return embedder.embed(embedding_text(summary, fp.templates, str))


def run(
    seed: int,
    incidents: int,
    repeat_share: float,
    systems: int,
    embedder: Embedder | None = None,
    weight: float = 0.0,
) -> dict[str, object]:
    rng = np.random.default_rng([seed, 20])
    memories = {name: Memory() for name in RUNS if name != "none"}
    tally = Tally()
    right_before: dict[int, bool] = {}
    began = time.perf_counter()
    progress = Progress(
        TextColumn("recurring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    with progress:
        task = progress.add_task("incidents", total=incidents)
        for incident in recurring_stream(seed, incidents, repeat_share, systems):
            draft, labels = _draft(incident)
            topology = incident.scenario.snapshot.topology
            truth = (incident.scenario.plan.service, incident.scenario.plan.fault.value)
            key = f"{incident.system}:{incident.index}"
            when = EPOCH + timedelta(days=incident.index)
            tally.incidents += 1
            tally.right["none"] += _top(draft) == truth[0]
            plain = fingerprint_of(draft, topology, labels)
            text = _embedded(draft, plain, embedder) if embedder is not None else None
            remembered = memories["memory"]
            if incident.twin is not None:
                tally.repeats += 1
                top = remembered.index.similar(plain, 1)
                hit = bool(top) and remembered.truth[top[0].analysis_id] == truth
                tally.twin_top += hit
                if text is not None:
                    first = remembered.top_with_text(plain, text, weight)
                    tally.twin_top_with_text += first is not None and (
                        remembered.truth[first] == truth
                    )
                if _top(draft) == truth[0] and right_before.get(incident.twin):
                    tally.clear_repeats += 1
                    tally.clear_twin_top += hit
            if _top(draft) != truth[0] and truth in remembered.truth.values():
                tally.fixable += 1
                tally.close_calls += _close_call(draft, truth[0])
            right_before[incident.index] = _top(draft) == truth[0]
            lie = rng.random() < WRONG_SHARE
            for name, memory in memories.items():
                answer = apply_prior(draft, memory.recall(plain, 5))
                tally.prior_applied[name] += answer is not draft
                tally.right[name] += _top(answer) == truth[0]
                was, now = _top(draft) == truth[0], _top(answer) == truth[0]
                tally.fixed[name] += now and not was
                tally.broken[name] += was and not now
                rating = _rating(answer, truth, lie and name != "memory", rng)
                stored = fingerprint_of(answer, topology, labels)
                memory.remember(key, when, stored, rating, truth)
                if embedder is not None and text is not None:
                    again = answer is not draft  # the prior changed it: its own text
                    memory.texts[key] = _embedded(answer, stored, embedder) if again else text
            progress.advance(task)
    report = _report(seed, incidents, repeat_share, systems, tally, time.perf_counter() - began)
    if embedder is not None:
        report["embeddings"] = {"model": embedder.name, "weight": weight}
        report["twin_top_share_with_text"] = round(
            tally.twin_top_with_text / max(1, tally.repeats), 4
        )
    return report


def _report(
    seed: int, incidents: int, share: float, systems: int, tally: Tally, seconds: float
) -> dict[str, object]:
    n = max(1, tally.incidents)
    ac1 = {name: round(tally.right[name] / n, 4) for name in RUNS}
    return {
        "command": f"python -m evals.recurring --seed {seed} --incidents {incidents} "
        f"--repeat-share {share} --systems {systems}",
        "incidents": tally.incidents,
        "repeats": tally.repeats,
        "twin_top_share": round(tally.twin_top / max(1, tally.repeats), 4),
        "repeats_right_both_times": tally.clear_repeats,
        "twin_top_share_when_right_both_times": round(
            tally.clear_twin_top / max(1, tally.clear_repeats), 4
        ),
        "wrong_without_memory": tally.incidents - tally.right["none"],
        "wrong_with_an_earlier_same_cause": tally.fixable,
        "of_those_a_close_call": tally.close_calls,
        "ac1": ac1,
        "gain_with_memory": round(ac1["memory"] - ac1["none"], 4),
        "gain_with_20pct_wrong_feedback": round(ac1["memory-20%-wrong"] - ac1["none"], 4),
        "p1_added": tally.prior_applied,
        "leader_fixed": tally.fixed,
        "leader_broken": tally.broken,
        "seconds": round(seconds, 1),
    }


@click.command()
@click.option("--seed", type=int, default=11, show_default=True, help="Seed of the stream.")
@click.option("--incidents", type=click.IntRange(10, 5000), default=200, show_default=True)
@click.option("--repeat-share", type=click.FloatRange(0, 1), default=0.3, show_default=True)
@click.option("--systems", type=click.IntRange(1, 50), default=3, show_default=True)
@click.option(
    "--embeddings-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A sentence-transformers directory: also measure twin-first with the text mixed in.",
)
@click.option(
    "--embeddings-weight",
    type=click.FloatRange(0, 1),
    default=MemorySettings().embeddings_weight,
    show_default=True,
    help="How much the text's cosine counts (memory.embeddings_weight).",
)
@click.option("--json-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
def main(
    seed: int,
    incidents: int,
    repeat_share: float,
    systems: int,
    embeddings_dir: Path | None,
    embeddings_weight: float,
    json_file: Path | None,
) -> None:
    """Run the recurring-incidents suite with and without incident memory."""
    embedder = LocalEmbedder(embeddings_dir) if embeddings_dir is not None else None
    if embedder is not None:
        try:  # a directory that holds no model fails here, not 200 analyses later
            embedder.embed("checkout: database connection pool exhausted")
        except SourceError as exc:
            raise click.BadParameter(exc.message, param_hint="--embeddings-dir") from None
    report = run(seed, incidents, repeat_share, systems, embedder, embeddings_weight)
    if embeddings_dir is not None:
        report["command"] = (
            f"{report['command']} --embeddings-dir {embeddings_dir} "
            f"--embeddings-weight {embeddings_weight:g}"
        )
    table = Table("run", "AC@1", "P1 added", "wrong -> right", "right -> wrong")
    for name in RUNS:
        ac1, added = report["ac1"], report["p1_added"]
        fixed, broken = report["leader_fixed"], report["leader_broken"]
        assert isinstance(ac1, dict) and isinstance(added, dict)
        assert isinstance(fixed, dict) and isinstance(broken, dict)
        row = (f"{ac1[name]:.3f}", str(added[name]), str(fixed[name]), str(broken[name]))
        table.add_row(name, *row)
    console = Console()
    console.print(table)
    console.print(
        f"repeats: {report['repeats']} of {report['incidents']}; the top similar past incident "
        f"was a twin for {report['twin_top_share']:.3f} of them "
        f"({report['twin_top_share_when_right_both_times']:.3f} of the "
        f"{report['repeats_right_both_times']} answered right both times)\n"
        f"wrong without memory: {report['wrong_without_memory']}, of which "
        f"{report['wrong_with_an_earlier_same_cause']} had an earlier incident with the same "
        f"cause ({report['of_those_a_close_call']} of them a close call memory may break)"
    )
    if embedder is not None:
        console.print(
            f"with the text's cosine mixed in at {embeddings_weight:g} ({embedder.name}), the "
            f"top similar past incident was a twin for {report['twin_top_share_with_text']:.3f}"
        )
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {json_file}")


if __name__ == "__main__":
    main()
