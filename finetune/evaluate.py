"""``rca finetune eval``: checkpoints side by side with their base model and ``extractive``.

This is ``rca eval --compare`` with the backends derived from the checkpoints: each adapter is
run through the ``hf`` backend (the same guard, prompt and fallback as serving) with the prompt
budget it was trained on (from its ``metadata.json``), next to the bare base model and the
extractive engine, on the same cases. Simulated seeds that the checkpoint was trained on are
refused: a score on training data says nothing. The table reads:

* ``AC@1`` the engine's ranking (the same for every row), ``right`` the summary's root cause
  against ground truth, i.e. the model's own AC@1 (extractive: the engine's top-1);
* ``valid`` valid-output rate, ``cites`` citation validity, ``fallb.`` fallback rate;
* latency and tokens per summary.

Examples::

    rca finetune eval out/smollm2-lora --suite sim --seeds 30000-30099 \\
        --json out/ft-eval.json --png out/ft-eval.png
    rca finetune eval out/a out/b --suite incidents/ --no-base
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from agent.config import Settings
from agent.errors import UsageError
from evals.runner import (
    SIM_SUITE,
    Case,
    Comparison,
    EvalReport,
    SkippedCase,
    directory_cases,
    parse_seed_range,
    run_suite,
    simulated_cases,
)
from finetune.artifacts import read_metadata


@dataclass(frozen=True)
class Suite:
    """The cases every backend is scored on."""

    name: str
    seeds: str | None
    cases: list[Case]
    skipped: list[SkippedCase]


def load_suite(suite: str, seeds: str | None, services: int | None = None) -> Suite:
    if suite == SIM_SUITE:
        if not seeds:
            raise UsageError("--suite sim needs --seeds A-B, e.g. --seeds 30000-30099")
        return Suite(suite, seeds, simulated_cases(parse_seed_range(seeds), None, services), [])
    if seeds or services:
        raise UsageError("--seeds and --services apply only to --suite sim")
    cases, skipped = directory_cases(Path(suite))
    return Suite(suite, None, cases, skipped)


def check_no_leak(metadata: dict[str, Any], suite: Suite, checkpoint: Path) -> None:
    """Refuse to score a checkpoint on the simulated seeds it was trained on."""
    trained = metadata.get("train_seeds")
    if suite.seeds is None or not trained:
        return
    train, test = parse_seed_range(trained), parse_seed_range(suite.seeds)
    lo, hi = max(train.start, test.start), min(train.stop, test.stop)
    if lo < hi:
        raise UsageError(
            f"{checkpoint} was trained on seeds {trained}; eval seeds {suite.seeds} overlap "
            f"({lo}-{hi - 1}): pick a disjoint range"
        )


@dataclass(frozen=True)
class Contender:
    """One row of the comparison: a backend spec and the settings it runs under."""

    spec: str
    settings: Settings


def tuned(settings: Settings, metadata: dict[str, Any]) -> Settings:
    """``settings`` with the prompt budget the adapter was trained on."""
    budget = int(metadata["prompt_tokens_budget"])
    summarizer = settings.summarizer.model_copy(update={"prompt_tokens": budget})
    return settings.model_copy(update={"summarizer": summarizer})


def contenders(
    checkpoints: Sequence[Path],
    settings: Settings,
    suite: Suite,
    *,
    include_base: bool = True,
    include_extractive: bool = True,
) -> list[Contender]:
    """extractive, each checkpoint with its own training budget, then the bare base model.

    The base model comes last because it is the slow row: it rarely answers in the format, so it
    runs to the token cap and then through the repair call. Its budget is the first checkpoint's,
    so it sees the same prompts.
    """
    rows: list[Contender] = []
    if include_extractive:
        rows.append(Contender("extractive", settings))
    base: Contender | None = None
    for checkpoint in checkpoints:
        meta = read_metadata(checkpoint)
        check_no_leak(meta, suite, checkpoint)
        rows.append(Contender(f"hf:{meta['base_model']}+{checkpoint}", tuned(settings, meta)))
        if base is None:
            base = Contender(f"hf:{meta['base_model']}", tuned(settings, meta))
    if include_base:
        rows.append(base or Contender(f"hf:{settings.summarizer.hf_model}", settings))
    return rows


def run_contender(contender: Contender, suite: Suite, console: Console | None) -> EvalReport:
    from agent.summarize.factory import build_summarizer

    return run_suite(
        suite.name,
        suite.cases,
        contender.settings.engine,
        seeds=suite.seeds,
        skipped=suite.skipped,
        console=console,
        summarizer=build_summarizer(contender.settings, contender.spec),
    )


def compare(rows: Sequence[Contender], suite: Suite, console: Console | None = None) -> Comparison:
    reports = [run_contender(row, suite, console) for row in rows]
    return Comparison(suite=suite.name, seeds=suite.seeds, reports=reports)


def write_outputs(comparison: Comparison, json_file: Path | None, png_file: Path | None) -> None:
    from evals.report import write_backend_comparison_png
    from evals.runner import write_report_json

    if json_file is not None:
        write_report_json(comparison, json_file)
    if png_file is not None:
        write_backend_comparison_png(comparison.reports, png_file)
