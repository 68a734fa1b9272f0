"""``rca eval``: score the engine on a suite of incidents with known root causes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.clikit import FAULT_CHOICES, FILE_OPTION, engine_settings, stderr_console, stdout_console
from agent.errors import RcaError
from agent.models import FaultType

if TYPE_CHECKING:
    from evals.runner import Case


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
@click.pass_context
def eval_command(
    ctx: click.Context,
    suite: str,
    seeds: str | None,
    json_file: Path | None,
    png_file: Path | None,
    services: int | None,
    fault: str | None,
) -> None:
    """Score the engine on a suite: AC@1, AC@3, Avg@5, fault-type accuracy, latency."""
    from evals.report import metrics_table, write_comparison_png
    from evals.runner import (
        SIM_SUITE,
        SkippedCase,
        directory_cases,
        run_suite,
        write_report_json,
    )

    skipped: list[SkippedCase] = []
    if suite == SIM_SUITE:
        cases = _sim_cases(seeds, fault, services)
    else:
        if seeds or fault or services:
            raise click.UsageError("--seeds, --fault and --services apply only to --suite sim")
        cases, skipped = directory_cases(Path(suite))
    report = run_suite(
        suite,
        cases,
        engine_settings(ctx, None),
        seeds=seeds if suite == SIM_SUITE else None,
        skipped=skipped,
        console=stderr_console(),
    )
    for skip in report.skipped:
        click.echo(f"skipped {skip.case}: {skip.reason}", err=True)
    stdout_console().print(metrics_table(report))
    if json_file is not None:
        click.echo(f"wrote {write_report_json(report, json_file)}", err=True)
    if png_file is not None:
        click.echo(f"wrote {write_comparison_png(report, png_file)}", err=True)


def _sim_cases(seeds: str | None, fault: str | None, services: int | None) -> list[Case]:
    from evals.runner import parse_seed_range, simulated_cases

    if not seeds:
        raise click.UsageError("--suite sim needs --seeds A-B, e.g. --seeds 1000-1199")
    try:
        seed_range = parse_seed_range(seeds)
    except RcaError as err:
        raise click.BadParameter(str(err), param_hint="--seeds") from None
    return simulated_cases(seed_range, FaultType(fault) if fault else None, services)
