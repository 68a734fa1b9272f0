"""``rca eval``: score the engine on suites of incidents with known root causes, and the
summarizer backends on top of it. Examples::

    rca eval --suite sim --seeds 1000-1199 --json out/eval.json --png out/eval.png
    rca eval --suite sim-rollout --seeds 40000-40199 --json out/rollout.json
    rca eval --suite ../shared/real/nezha-dev/oracle/ob
    rca eval --suite ../shared/real/nezha-dev --json out/real.json --png out/real.png
    rca eval --suite sim --seeds 1000-1049 --suite incidents/ --suite ../shared/real/nezha-dev/alert
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
from agent.errors import RcaError, UsageError
from agent.models import FaultType

if TYPE_CHECKING:
    from agent.summarize import Summarizer
    from evals.runner import Case, EvalReport, SkippedCase, Suite


@click.command(name="eval", short_help="Score ranking accuracy on suites of known incidents.")
@click.option(
    "--suite",
    "suites",
    required=True,
    multiple=True,
    metavar="sim|sim-rollout|DIR",
    help="'sim' (simulated incidents), 'sim-rollout' (simulated rollouts: several Deployments "
    "rolling out pod by pod in the same minutes, one maybe defective), a directory of snapshot "
    "directories, or a folder holding such directories at any depth (each becomes a suite "
    "named by its relative path). Repeat for several suites.",
)
@click.option(
    "--seeds", metavar="A-B", help="Seed range for --suite sim or sim-rollout, e.g. 1000-1199."
)
@click.option(
    "--json",
    "json_file",
    type=FILE_OPTION,
    metavar="FILE",
    help='Write results as JSON; with several suites {"suites": [...], "summary": [...]}.',
)
@click.option(
    "--png",
    "png_file",
    type=FILE_OPTION,
    metavar="FILE",
    help="Write a chart: per fault type for one suite, per suite for several.",
)
@click.option(
    "--reliability-png",
    "reliability_png",
    type=FILE_OPTION,
    metavar="FILE",
    help="Write the confidence reliability diagram (accuracy per confidence bin, per suite).",
)
@click.option("--services", type=click.IntRange(min=1), help="Services per simulated case.")
@click.option(
    "--fault",
    type=click.Choice(FAULT_CHOICES),
    help="Only simulate this fault type (sim-rollout: bad_deploy for defective rollouts, "
    "another fault for innocent ones).",
)
@click.option(
    "--backend",
    metavar="SPEC",
    help="Summarizer to score: extractive | openai[:MODEL] | hf | hf:BASE[+ADAPTER] "
    "(default: the configured backend).",
)
@click.option(
    "--compare",
    is_flag=True,
    help="Score each backend given as an argument and show them side by side (one suite).",
)
@click.argument("backends", nargs=-1, metavar="[BACKEND]...")
@click.pass_context
def eval_command(
    ctx: click.Context,
    suites: tuple[str, ...],
    seeds: str | None,
    json_file: Path | None,
    png_file: Path | None,
    reliability_png: Path | None,
    services: int | None,
    fault: str | None,
    backend: str | None,
    compare: bool,
    backends: tuple[str, ...],
) -> None:
    """Score the engine on suites: AC@1, AC@3, Avg@5, fault-type accuracy, latency; how well
    its confidence is calibrated (ECE, precision of the high / medium / low labels); and the
    summarizer: valid output, citation validity, top-1 agreement, fallback, latency, tokens.

    Several suites (--suite repeated, or a parent folder of suites) get one table each and a
    summary table; --json then holds every suite's report and the summary rows.

    With --compare, every BACKEND is scored on the same cases; --json and --png then hold the
    comparison.
    """
    from agent.summarize.factory import build_summarizer
    from evals.runner import expand_suites

    if backends and not compare:
        raise click.UsageError("backends as arguments need --compare, e.g. --compare extractive hf")
    if compare and (len(backends) < 2 or backend):
        raise click.UsageError("--compare needs two or more backends as arguments, no --backend")
    plan = expand_suites(suites)
    if compare and len(plan) > 1:
        names = ", ".join(suite.name for suite in plan)
        raise UsageError(f"--compare scores one suite, got {len(plan)} ({names}): give one --suite")
    if (seeds or fault or services) and all(suite.path is not None for suite in plan):
        raise click.UsageError(
            "--seeds, --fault and --services apply only to --suite sim or sim-rollout"
        )
    loaded = [_load(suite, seeds, fault, services) for suite in plan]
    settings = cli_state(ctx).settings
    if compare:
        reports = [_run(ctx, *loaded[0], build_summarizer(settings, spec)) for spec in backends]
        _write_comparison(reports, json_file, png_file)
        return
    summarizer = build_summarizer(settings, backend)
    reports = [_run(ctx, *suite, summarizer) for suite in loaded]
    if len(reports) == 1:
        _write_single(reports[0], json_file, png_file)
    else:
        _write_suites(reports, json_file, png_file)
    _write_reliability(reports, reliability_png)


def _write_reliability(reports: list[EvalReport], png_file: Path | None) -> None:
    from evals.calibration import reliability, write_reliability_png
    from evals.report import reliability_table

    named = [(r.suite, r.reliability) for r in reports if r.reliability is not None]
    if len(reports) > 1:
        named.append(("all suites", reliability([c for r in reports for c in r.cases])))
    stdout_console().print(reliability_table(named))
    if png_file is not None:
        click.echo(f"wrote {write_reliability_png(named, png_file)}", err=True)


def _load(
    suite: Suite, seeds: str | None, fault: str | None, services: int | None
) -> tuple[str, list[Case], str | None, list[SkippedCase]]:
    """A suite's name, its cases (simulated lazily), its seed range and the cases it skipped."""
    from evals.runner import directory_cases

    if suite.path is None:
        return suite.name, _sim_cases(suite.name, seeds, fault, services), seeds, []
    cases, skipped = directory_cases(suite.path)
    return suite.name, cases, None, skipped


def _run(
    ctx: click.Context,
    suite: str,
    cases: list[Case],
    seeds: str | None,
    skipped: list[SkippedCase],
    summarizer: Summarizer,
) -> EvalReport:
    from evals.report import metrics_table, summarizer_table
    from evals.runner import run_suite

    report = run_suite(
        suite,
        cases,
        engine_settings(ctx, None),
        seeds=seeds,
        skipped=skipped,
        console=stderr_console(),
        summarizer=summarizer,
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


def _write_suites(reports: list[EvalReport], json_file: Path | None, png_file: Path | None) -> None:
    from evals.report import suites_table, write_suites_png
    from evals.runner import MultiSuiteReport, write_report_json

    combined = MultiSuiteReport.of(reports)
    stdout_console().print(suites_table(combined.summary))
    if json_file is not None:
        click.echo(f"wrote {write_report_json(combined, json_file)}", err=True)
    if png_file is not None:
        click.echo(f"wrote {write_suites_png(combined.summary, png_file)}", err=True)


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


def _sim_cases(
    suite: str, seeds: str | None, fault: str | None, services: int | None
) -> list[Case]:
    from evals.runner import parse_seed_range, simulated_cases

    if not seeds:
        raise click.UsageError(f"--suite {suite} needs --seeds A-B, e.g. --seeds 1000-1199")
    try:
        seed_range = parse_seed_range(seeds)
    except RcaError as err:
        raise click.BadParameter(str(err), param_hint="--seeds") from None
    return simulated_cases(seed_range, FaultType(fault) if fault else None, services, suite)
