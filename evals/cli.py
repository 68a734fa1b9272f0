"""``rca eval``: score the engine on a suite of incidents with known root causes, and the
summarizer backends on top of it. Examples::

    rca eval --suite sim --seeds 1000-1199 --json out/eval.json --png out/eval.png
    rca eval --suite sim --seeds 30000-30049 --services 50 --backend hf
    rca eval --suite sim --seeds 30000-30049 --compare extractive hf hf:smollm2+out/lora \\
        --json out/compare.json --png out/compare.png
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.clikit import (
    FAULT_CHOICES,
    FILE_OPTION,
    cli_state,
    engine_settings,
    stderr_console,
    stdout_console,
)
from agent.errors import RcaError
from agent.models import FaultType

if TYPE_CHECKING:
    from evals.runner import Case, EvalReport, SkippedCase


@click.command(name="eval", short_help="Score ranking accuracy on a suite of known incidents.")
@click.option(
    "--suite",
    required=True,
    metavar="sim|DIR",
    help="'sim' or a directory of snapshot directories.",
)
@click.option("--seeds", metavar="A-B", help="Seed range for --suite sim, e.g. 1000-1199.")
@click.option(
    "--json", "json_file", type=FILE_OPTION, metavar="FILE", help="Write results as JSON."
)
@click.option(
    "--png", "png_file", type=FILE_OPTION, metavar="FILE", help="Write a comparison chart."
)
@click.option("--services", type=click.IntRange(min=1), help="Services per simulated case.")
@click.option("--fault", type=click.Choice(FAULT_CHOICES), help="Only simulate this fault type.")
@click.option(
    "--backend",
    metavar="SPEC",
    help="Summarizer to score: extractive | openai[:MODEL] | hf | hf:BASE[+ADAPTER] "
    "(default: the configured backend).",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Score each backend given as an argument and show them side by side.",
)
@click.argument("backends", nargs=-1, metavar="[BACKEND]...")
@click.pass_context
def eval_command(
    ctx: click.Context,
    suite: str,
    seeds: str | None,
    json_file: Path | None,
    png_file: Path | None,
    services: int | None,
    fault: str | None,
    backend: str | None,
    compare: bool,
    backends: tuple[str, ...],
) -> None:
    """Score the engine on a suite: AC@1, AC@3, Avg@5, fault-type accuracy, latency; and the
    summarizer: valid output, citation validity, top-1 agreement, fallback, latency, tokens.

    With --compare, every BACKEND is scored on the same cases; --json and --png then hold the
    comparison.
    """
    from evals.runner import SIM_SUITE, directory_cases

    if backends and not compare:
        raise click.UsageError("backends as arguments need --compare, e.g. --compare extractive hf")
    if compare and (len(backends) < 2 or backend):
        raise click.UsageError("--compare needs two or more backends as arguments, no --backend")

    skipped: list[SkippedCase] = []
    if suite == SIM_SUITE:
        cases = _sim_cases(seeds, fault, services)
    else:
        if seeds or fault or services:
            raise click.UsageError("--seeds, --fault and --services apply only to --suite sim")
        cases, skipped = directory_cases(Path(suite))
    specs = list(backends) if compare else [backend or cli_state(ctx).settings.backend]
    reports = [
        _run(ctx, suite, cases, seeds if suite == SIM_SUITE else None, skipped, spec)
        for spec in specs
    ]
    if compare:
        _write_comparison(reports, json_file, png_file)
    else:
        _write_single(reports[0], json_file, png_file)


def _run(
    ctx: click.Context,
    suite: str,
    cases: list[Case],
    seeds: str | None,
    skipped: list[SkippedCase],
    spec: str,
) -> EvalReport:
    from agent.summarize.factory import build_summarizer
    from evals.report import metrics_table, summarizer_table
    from evals.runner import run_suite

    settings = cli_state(ctx).settings
    report = run_suite(
        suite,
        cases,
        engine_settings(ctx, None),
        seeds=seeds,
        skipped=skipped,
        console=stderr_console(),
        summarizer=build_summarizer(settings, spec),
    )
    for skip in report.skipped:
        click.echo(f"skipped {skip.case}: {skip.reason}", err=True)
    stdout_console().print(metrics_table(report))
    stdout_console().print(summarizer_table([report]))
    return report


def _write_single(report: EvalReport, json_file: Path | None, png_file: Path | None) -> None:
    from evals.report import write_comparison_png
    from evals.runner import write_report_json

    if json_file is not None:
        click.echo(f"wrote {write_report_json(report, json_file)}", err=True)
    if png_file is not None:
        click.echo(f"wrote {write_comparison_png(report, png_file)}", err=True)


def _write_comparison(
    reports: list[EvalReport], json_file: Path | None, png_file: Path | None
) -> None:
    from evals.report import summarizer_table, write_backend_comparison_png
    from evals.runner import Comparison, write_report_json

    stdout_console().print(summarizer_table(reports))
    if json_file is not None:
        comparison = Comparison(suite=reports[0].suite, seeds=reports[0].seeds, reports=reports)
        click.echo(f"wrote {write_report_json(comparison, json_file)}", err=True)
    if png_file is not None:
        click.echo(f"wrote {write_backend_comparison_png(reports, png_file)}", err=True)


def _sim_cases(seeds: str | None, fault: str | None, services: int | None) -> list[Case]:
    from evals.runner import parse_seed_range, simulated_cases

    if not seeds:
        raise click.UsageError("--suite sim needs --seeds A-B, e.g. --seeds 1000-1199")
    try:
        seed_range = parse_seed_range(seeds)
    except RcaError as err:
        raise click.BadParameter(str(err), param_hint="--seeds") from None
    return simulated_cases(seed_range, FaultType(fault) if fault else None, services)
