"""``rca eval``: score the engine on suites of incidents with known root causes, and the
summarizer backends on top of it. Examples::

    rca eval --suite sim --seeds 1000-1199 --json-file out/eval.json --png out/eval.png
    rca eval --suite sim --seeds 1000-1049 --json | jq '.metrics'
    rca eval --suite sim-rollout --seeds 40000-40199 --json-file out/rollout.json
    rca eval --suite sim-real --seeds 25000-25199 --json-file out/sim-real.json
    rca eval --suite ../shared/real/nezha-dev/oracle/ob
    rca eval --suite ../shared/real/nezha-dev --json-file out/real.json --png out/real.png
    rca eval --suite sim --seeds 1000-1049 --suite incidents/ --suite ../shared/real/nezha-dev/alert
    rca eval --suite sim --seeds 30000-30049 --services 50 --backend hf
    rca eval --suite sim --seeds 30000-30049 --compare extractive hf hf:smollm2+out/lora \\
        --json-file out/compare.json --png out/compare.png
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.clikit import (
    FAULT_CHOICES,
    FILE_OPTION,
    JsonOut,
    cli_state,
    engine_settings,
    json_options,
    stderr_console,
)
from agent.errors import RcaError, UsageError
from agent.models import FaultType

if TYPE_CHECKING:
    from rich.console import Console

    from agent.summarize import Summarizer
    from evals.runner import Case, EvalReport, SkippedCase, Suite


@click.command(name="eval", short_help="Score ranking accuracy on suites of known incidents.")
@click.option(
    "--suite",
    "suites",
    required=True,
    multiple=True,
    metavar="sim|sim-rollout|sim-real|DIR",
    help="'sim' (simulated incidents), 'sim-rollout' (simulated rollouts: several Deployments "
    "rolling out pod by pod in the same minutes, one maybe defective), 'sim-real' (the sim "
    "incidents under the realism profile of recorded ones), a directory of snapshot "
    "directories, or a folder holding such directories at any depth (each becomes a suite "
    "named by its relative path). Repeat for several suites.",
)
@click.option("--seeds", metavar="A-B", help="Seed range for a simulated suite, e.g. 1000-1199.")
@json_options(
    'the results (with several suites {"suites": [...], "summary": [...]})', file_was_json=True
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
@click.option(
    "--alert-delay",
    "alert_delay",
    type=float,
    default=0.0,
    metavar="SECONDS",
    help="Move each alert-only case's alert this many seconds later (negative: earlier): how "
    "the answers depend on how soon the alert fires. Cases given an incident start are as "
    "recorded; the suite is named with the delay.",
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
    json_out: JsonOut,
    png_file: Path | None,
    reliability_png: Path | None,
    alert_delay: float,
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
    summary table; the JSON then holds every suite's report and the summary rows.

    With --compare, every BACKEND is scored on the same cases; the JSON and --png then hold
    the comparison.
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
            "--seeds, --fault and --services apply only to a simulated suite "
            "(sim, sim-rollout, sim-real)"
        )
    loaded = [_load(suite, seeds, fault, services, alert_delay) for suite in plan]
    settings = cli_state(ctx).settings
    tables = json_out.console()
    if compare:
        reports = [
            _run(ctx, *loaded[0], build_summarizer(settings, spec), tables) for spec in backends
        ]
        _write_comparison(reports, json_out, png_file, tables)
        return
    summarizer = build_summarizer(settings, backend)
    reports = [_run(ctx, *suite, summarizer, tables) for suite in loaded]
    if len(reports) == 1:
        _write_single(reports[0], json_out, png_file)
    else:
        _write_suites(reports, json_out, png_file, tables)
    _write_reliability(reports, reliability_png, tables)


def _write_reliability(reports: list[EvalReport], png_file: Path | None, tables: Console) -> None:
    from evals.calibration import reliability, write_reliability_png
    from evals.report import reliability_table

    named = [(r.suite, r.reliability) for r in reports if r.reliability is not None]
    if len(reports) > 1:
        named.append(("all suites", reliability([c for r in reports for c in r.cases])))
    tables.print(reliability_table(named))
    if png_file is not None:
        click.echo(f"wrote {write_reliability_png(named, png_file)}", err=True)


def _load(
    suite: Suite, seeds: str | None, fault: str | None, services: int | None, alert_delay: float
) -> tuple[str, list[Case], str | None, list[SkippedCase]]:
    """A suite's name, its cases (simulated lazily), its seed range and the cases it skipped;
    with ``alert_delay``, the name says it and each case's alert is moved."""
    from evals.alert_delay import with_alert_moved
    from evals.runner import directory_cases

    skipped: list[SkippedCase] = []
    if suite.path is None:
        cases = _sim_cases(suite.name, seeds, fault, services)
    else:
        cases, skipped = directory_cases(suite.path)
        seeds = None  # a folder's cases are as recorded
    if not alert_delay:
        return suite.name, cases, seeds, skipped
    named = f"{suite.name} (alert {alert_delay:+g} s)"
    return named, with_alert_moved(cases, alert_delay), seeds, skipped


def _run(
    ctx: click.Context,
    suite: str,
    cases: list[Case],
    seeds: str | None,
    skipped: list[SkippedCase],
    summarizer: Summarizer,
    tables: Console,
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
    tables.print(metrics_table(report))
    tables.print(summarizer_table([report]))
    return report


def _write_single(report: EvalReport, json_out: JsonOut, png_file: Path | None) -> None:
    from evals.report import write_comparison_png

    if json_out:
        json_out.write(report.model_dump_json(indent=2))
    if png_file is not None:
        click.echo(f"wrote {write_comparison_png(report, png_file)}", err=True)


def _write_suites(
    reports: list[EvalReport], json_out: JsonOut, png_file: Path | None, tables: Console
) -> None:
    from evals.report import suites_table, write_suites_png
    from evals.runner import MultiSuiteReport

    combined = MultiSuiteReport.of(reports)
    tables.print(suites_table(combined.summary))
    if json_out:
        json_out.write(combined.model_dump_json(indent=2))
    if png_file is not None:
        click.echo(f"wrote {write_suites_png(combined.summary, png_file)}", err=True)


def _write_comparison(
    reports: list[EvalReport], json_out: JsonOut, png_file: Path | None, tables: Console
) -> None:
    from evals.report import summarizer_table, write_backend_comparison_png
    from evals.runner import Comparison

    tables.print(summarizer_table(reports))
    if json_out:
        comparison = Comparison(suite=reports[0].suite, seeds=reports[0].seeds, reports=reports)
        json_out.write(comparison.model_dump_json(indent=2))
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
