"""The offline evaluation runner: analyze every case of a suite and score the ranking.

Two kinds of suite:

* ``sim``: cases generated on the fly by the simulator from a seed range (``1000-1199``);
  ``sim-rollout`` the same from the simulator's rollout family (several Deployments rolling
  out pod by pod in the same minutes, one of them maybe defective; ``docs/simulator.md``);
  ``sim-real`` the ``sim`` incidents under the realism profile (what recorded incidents showed:
  callee-side delay, levels only in the text, partial logs, back-to-back faults, 1-minute data);
* a directory of snapshot directories, each with a ``ground_truth.json`` (recorded or
  hand-made incidents; HolmesGPT-style "cases as folders").

A parent folder of suites (``real/nezha-dev`` holding ``oracle/ob``, ``alert/tt``, ...) expands
to each suite below it, at any depth (:func:`expand_suites`): one command scores a whole data
set, and each suite keeps its own table so that one system's misses are not averaged away.

The engine never sees the ground truth (it is stripped before ``analyze``), and latency is the
time of ``analyze()`` alone: simulating and reading files are not what an on-call engineer
waits for. With a summarizer (``--backend``) each case also gets a :class:`SummaryCase`:
what the backend wrote, whether the guard accepted it, tokens, cost and the summarizer's own
latency. Examples::

    rca eval --suite sim --seeds 1000-1199 --json out/eval.json --png out/eval.png
    rca eval --suite sim-rollout --seeds 40000-40199 --json out/rollout.json
    rca eval --suite sim-real --seeds 25000-25199 --json out/sim-real.json
    rca eval --suite sim --seeds 30000-30049 --services 50 --backend hf
    rca eval --suite ../shared/real/nezha-dev --suite sim --seeds 1000-1049 --json out/all.json
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agent.clikit import LogLines
from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.errors import RcaError, UsageError
from agent.models import Analysis, FaultType
from agent.snapshot import GROUND_TRUTH_FILE, META_FILE, Snapshot, load_snapshot
from agent.summarize import Summarizer, Summary
from evals.calibration import Reliability, reliability
from evals.metrics import (
    CaseResult,
    SuiteMetrics,
    SuiteRow,
    SummarizerMetrics,
    SummaryCase,
    per_fault_type,
    rank_of,
    suite_row,
    summarize,
    summarize_backend,
)

SIM_SUITE = "sim"
ROLLOUT_SUITE = "sim-rollout"
REAL_SUITE = "sim-real"
SIMULATED_SUITES = (SIM_SUITE, ROLLOUT_SUITE, REAL_SUITE)
_SEEDS = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


@dataclass(frozen=True)
class Case:
    """A named case whose snapshot is produced only when it is evaluated (keeps memory flat)."""

    name: str
    load: Callable[[], Snapshot]


class SkippedCase(BaseModel):
    case: str
    reason: str


class EvalReport(BaseModel):
    suite: str
    seeds: str | None
    metrics: SuiteMetrics
    per_fault_type: dict[str, SuiteMetrics]
    cases: list[CaseResult]
    skipped: list[SkippedCase] = Field(default_factory=list)
    backend: str | None = None
    summarizer: SummarizerMetrics | None = None
    summaries: list[SummaryCase] = Field(default_factory=list)
    reliability: Reliability | None = None


class Comparison(BaseModel):
    """``rca eval --compare``: the same cases scored with several summarizer backends."""

    suite: str
    seeds: str | None
    reports: list[EvalReport]


class MultiSuiteReport(BaseModel):
    """``rca eval`` with several suites: each one's report as it would be alone, and a summary."""

    suites: list[EvalReport]
    summary: list[SuiteRow]
    reliability: Reliability | None = None  # over every case of every suite

    @classmethod
    def of(cls, reports: Sequence[EvalReport]) -> MultiSuiteReport:
        rows = [
            suite_row(r.suite, r.seeds, r.metrics, len(r.skipped), r.reliability) for r in reports
        ]
        every = [case for r in reports for case in r.cases]
        return cls(suites=list(reports), summary=rows, reliability=reliability(every))


@dataclass(frozen=True)
class Suite:
    """One suite to score: ``sim`` or ``sim-rollout`` (``path`` is None, ``name`` says which)
    or a directory of snapshot directories."""

    name: str
    path: Path | None


def parse_seed_range(text: str) -> range:
    """``"A-B"`` (inclusive) or a single ``"N"``; anything else is a usage error."""
    match = _SEEDS.fullmatch(text)
    if match is None:
        raise UsageError(f"--seeds must be a range like 1000-1199, got {text!r}")
    first = int(match[1])
    last = int(match[2]) if match[2] is not None else first
    if last < first:
        raise UsageError(f"--seeds range {text!r} is empty: it ends before it starts")
    return range(first, last + 1)


def _simulated(seed: int, fault: FaultType | None, services: int | None) -> Snapshot:
    from evals.simulator import simulate  # imported late: the CLI must start without it

    return simulate(seed, fault=fault, services=services).snapshot


def _realistic(seed: int, fault: FaultType | None, services: int | None) -> Snapshot:
    from evals.simulator import simulate

    return simulate(seed, fault=fault, services=services, realism=True).snapshot


def _rolled_out(seed: int, fault: FaultType | None, services: int | None) -> Snapshot:
    from evals.simulator import simulate_rollout

    return simulate_rollout(seed, fault=fault, services=services).snapshot


def simulated_cases(
    seeds: range,
    fault: FaultType | None = None,
    services: int | None = None,
    suite: str = SIM_SUITE,
) -> list[Case]:
    """Cases of the ``sim`` suite, or of ``sim-rollout`` or ``sim-real`` (named
    ``<suite>-<seed>``)."""
    if suite not in SIMULATED_SUITES:
        raise UsageError(f"no simulated suite {suite!r}; choose {' or '.join(SIMULATED_SUITES)}")
    make = {ROLLOUT_SUITE: _rolled_out, REAL_SUITE: _realistic}.get(suite, _simulated)
    return [
        Case(f"{suite}-{seed}", functools.partial(make, seed, fault, services)) for seed in seeds
    ]


def _has(directory: Path, name: str) -> bool:
    return (directory / name).is_file() or (directory / f"{name}.gz").is_file()


def directory_cases(root: Path) -> tuple[list[Case], list[SkippedCase]]:
    """One case per snapshot directory under ``root`` (or ``root`` itself if it is one).

    Directories without ground truth cannot be scored; they are reported, not silently lost.
    """
    if not root.is_dir():
        raise UsageError(f"--suite must be '{SIM_SUITE}' or a directory; {root} is neither")
    dirs = [root] if _has(root, META_FILE) else sorted(p for p in root.iterdir() if p.is_dir())
    cases: list[Case] = []
    skipped: list[SkippedCase] = []
    for directory in dirs:
        if not _has(directory, META_FILE):
            skipped.append(SkippedCase(case=directory.name, reason=f"no {META_FILE}"))
        elif not _has(directory, GROUND_TRUTH_FILE):
            skipped.append(SkippedCase(case=directory.name, reason=f"no {GROUND_TRUTH_FILE}"))
        else:
            cases.append(Case(directory.name, functools.partial(load_snapshot, directory)))
    if not cases:
        why = "; ".join(f"{s.case}: {s.reason}" for s in skipped) or "it is empty"
        raise UsageError(f"no usable cases in {root} ({why})")
    return cases, skipped


def _is_suite(directory: Path) -> bool:
    """A snapshot directory, or a directory with at least one snapshot directory in it."""
    return _has(directory, META_FILE) or any(
        _has(child, META_FILE) for child in directory.iterdir() if child.is_dir()
    )


def _suite_dirs(directory: Path, seen: set[Path]) -> Iterator[Path]:
    """Suites at or below ``directory``, depth first in name order; a suite is not entered.

    Hidden folders are passed over, and a folder reached twice (symlinks) is walked once.
    """
    real = directory.resolve()
    if real in seen:
        return
    seen.add(real)
    if _is_suite(directory):
        yield directory
        return
    for child in sorted(directory.iterdir()):
        if child.is_dir() and not child.name.startswith("."):
            yield from _suite_dirs(child, seen)


def expand_suites(specs: Sequence[str]) -> list[Suite]:
    """Each ``--suite`` value in order: ``sim``/``sim-rollout``, a suite, or a parent folder.

    A suite given directly keeps its name as typed (the JSON of one suite is unchanged); one
    found below a parent is named by its path relative to that parent, qualified with the parent
    when two parents hold suites of the same name.
    """
    found: list[tuple[Suite, str]] = []  # (suite with its short name, its qualified name)
    for spec in specs:
        if spec in SIMULATED_SUITES:
            found.append((Suite(spec, None), spec))
            continue
        root = Path(spec)
        if not root.is_dir():
            named = ", ".join(f"'{name}'" for name in SIMULATED_SUITES)
            raise UsageError(f"--suite {spec}: not a directory (give {named} or a folder)")
        dirs = list(_suite_dirs(root, set()))
        if not dirs:
            raise UsageError(f"--suite {spec}: no snapshot directories in it, at any depth")
        for directory in dirs:
            name = directory.relative_to(root).as_posix()
            full = spec if directory == root else f"{spec.rstrip('/')}/{name}"
            found.append((Suite(full if directory == root else name, directory), full))
    places = [s.name if s.path is None else s.path.resolve() for s, _ in found]
    for i, place in enumerate(places):
        if place in places[:i]:
            raise UsageError(f"suite {found[i][1]} is given more than once")
    names = [suite.name for suite, _ in found]
    return [s if names.count(s.name) == 1 else Suite(full, s.path) for s, full in found]


def _ranked_services(services: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(services))


Analyzer = Callable[[Snapshot, EngineSettings], Analysis]


def _analyze(snapshot: Snapshot, engine: EngineSettings) -> Analysis:
    return analyze(snapshot, engine)


def _analyze_with(snapshot: Snapshot, engine: EngineSettings, summarizer: Summarizer) -> Analysis:
    return analyze(snapshot, engine, summarizer=summarizer)


def evaluate_case(case: Case, engine: EngineSettings, analyzer: Analyzer = _analyze) -> CaseResult:
    """Analyze one case blind and compare with its ground truth."""
    snapshot = case.load()
    truth = snapshot.ground_truth
    if truth is None:
        raise UsageError(f"case {case.name} has no ground truth")
    blind = snapshot.model_copy(update={"ground_truth": None})
    started = time.perf_counter()
    try:
        analysis = analyzer(blind, engine)
    except RcaError:
        raise
    except Exception as exc:
        raise RuntimeError(f"case {case.name}: {type(exc).__name__}: {exc}") from exc
    latency = time.perf_counter() - started
    predicted = _ranked_services([c.service for c in analysis.candidates])
    rank = rank_of(truth.service, predicted)
    before, after = _tied(analysis, predicted, rank)
    return CaseResult(
        case=case.name,
        truth_service=truth.service,
        truth_fault=truth.fault_type.value,
        predicted=predicted,
        predicted_fault=analysis.candidates[0].fault_type.value if analysis.candidates else None,
        rank=rank,
        latency_s=latency,
        confidence=analysis.confidence,
        tied_before=before,
        tied_after=after,
    )


def _tied(analysis: Analysis, predicted: Sequence[str], rank: int | None) -> tuple[int, int]:
    """Services listed before and after the truth with its score (to the sixth decimal: sums
    taken in another order differ in their last bits)."""
    if rank is None:
        return 0, 0
    score: dict[str, float] = {}
    for candidate in analysis.candidates:
        score.setdefault(candidate.service, round(candidate.score, 6))
    own = score[predicted[rank - 1]]
    before = sum(1 for s in predicted[: rank - 1] if score[s] == own)
    return before, sum(1 for s in predicted[rank:] if score[s] == own)


class _RecordingSummarizer:
    """Wraps the backend under test to keep the draft, the Summary and its latency."""

    def __init__(self, inner: Summarizer) -> None:
        self.inner = inner
        self.name = inner.name
        self.last: tuple[Analysis, Summary, float] | None = None

    def summarize(self, draft: Analysis) -> Summary:
        started = time.perf_counter()
        summary = self.inner.summarize(draft)
        self.last = (draft, summary, time.perf_counter() - started)
        return summary


def summary_case(
    case: str, backend: str, draft: Analysis, summary: Summary, latency_s: float, truth: str
) -> SummaryCase:
    """Score one summary against the draft it was written from and the ground truth."""
    known = {e.id for e in draft.evidence}
    if summary.checks:
        answers = len(summary.checks)
        answers_valid = sum(1 for c in summary.checks if c.valid)
        cited = sum(c.cited for c in summary.checks)
        cited_valid = sum(c.cited_valid for c in summary.checks)
    elif summary.backend in (None, backend):  # extractive: its own text is the one answer
        answers, answers_valid = 1, int(summary.fallback is None)
        cited = len(summary.evidence_ids)
        cited_valid = len(set(summary.evidence_ids) & known)
    else:  # an LLM backend that was not asked (insufficient evidence) or whose call failed
        answers = answers_valid = cited = cited_valid = 0
    root = summary.root_cause.service if summary.root_cause else None
    top = draft.candidates[0].service if draft.candidates else None
    return SummaryCase(
        case=case,
        backend=summary.backend or "",
        answers=answers,
        answers_valid=answers_valid,
        cited=cited,
        cited_valid=cited_valid,
        fallback=summary.fallback,
        agrees_top1=None if root is None else root == top,
        root_cause_correct=None if root is None else root == truth,
        latency_s=latency_s,
        tokens_in=summary.tokens.get("prompt", 0),
        tokens_out=summary.tokens.get("completion", 0),
        cost_usd=summary.cost_usd,
    )


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]eval[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _log_every(cases: int, summarizer: Summarizer | None) -> int:
    """Log lines per case for a model (seconds each), per tenth of the suite for the engine."""
    return 1 if summarizer is not None else max(cases // 10, 1)


def run_suite(
    suite: str,
    cases: Sequence[Case],
    engine: EngineSettings,
    *,
    seeds: str | None = None,
    skipped: Sequence[SkippedCase] = (),
    console: Console | None = None,
    analyzer: Analyzer = _analyze,
    summarizer: Summarizer | None = None,
) -> EvalReport:
    """Evaluate every case with a progress bar; cases that fail to load are skipped and kept.

    With ``summarizer`` the engine's analyses are summarized by it and scored as well.
    """
    results: list[CaseResult] = []
    summaries: list[SummaryCase] = []
    skips = list(skipped)
    recorder = _RecordingSummarizer(summarizer) if summarizer is not None else None
    if recorder is not None:
        analyzer = functools.partial(_analyze_with, summarizer=recorder)

    console = console or Console(stderr=True)
    lines = LogLines(console, f"eval {suite}", len(cases), every=_log_every(len(cases), summarizer))
    with _progress(console) as progress:
        task = progress.add_task(suite, total=len(cases))
        for done, case in enumerate(cases, 1):
            progress.update(task, description=f"{suite} · {case.name}")
            try:
                result = evaluate_case(case, engine, analyzer)
            except RcaError as err:
                skips.append(SkippedCase(case=case.name, reason=str(err)))
            else:
                results.append(result)
                if recorder is not None and recorder.last is not None:
                    draft, summary, seconds = recorder.last
                    summaries.append(
                        summary_case(
                            case.name, recorder.name, draft, summary, seconds, result.truth_service
                        )
                    )
            progress.advance(task)
            lines.step(done)
    if not results:
        why = "; ".join(f"{s.case}: {s.reason}" for s in skips[:3])
        raise UsageError(f"no case of suite {suite} could be evaluated ({why})")
    return EvalReport(
        suite=suite,
        seeds=seeds,
        metrics=summarize(results),
        per_fault_type=per_fault_type(results),
        cases=results,
        skipped=skips,
        backend=summarizer.name if summarizer is not None else None,
        summarizer=summarize_backend(summarizer.name, summaries)
        if summarizer and summaries
        else None,
        summaries=summaries,
        reliability=reliability(results),
    )


def write_report_json(report: EvalReport | Comparison | MultiSuiteReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path
