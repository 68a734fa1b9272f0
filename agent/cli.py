"""The ``rca`` command line: analyze a snapshot, simulate incidents, run the demo and evals.

Errors the user can fix arrive as :class:`~agent.errors.RcaError` and become one line on
stderr (``rca: error: ...``) with the error's exit code; anything else is a bug and becomes
one ``rca: internal error`` line (``--debug`` shows the traceback). Click's own usage errors
keep exit code 2. Examples::

    rca demo
    rca analyze path/to/snapshot --markdown report.md --chart evidence.png
    rca analyze path/to/snapshot --json | jq .root_cause
    rca simulate --seed 7 --fault memory_leak --out /tmp/incident
    rca eval --suite sim --seeds 1000-1199 --json out/eval.json --png out/eval.png
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from agent import __version__
from agent.config import EngineSettings, Settings, load_settings
from agent.errors import RcaError
from agent.models import Analysis, FaultType
from agent.snapshot import Snapshot, load_snapshot

if TYPE_CHECKING:
    from evals.runner import Case

FAULT_CHOICES = [f.value for f in FaultType if f is not FaultType.UNKNOWN]
DEMO_SEED = 25
_FILE = click.Path(dir_okay=False, writable=True, path_type=Path)


@dataclass(frozen=True)
class CliState:
    settings: Settings
    debug: bool


def _one_line(text: str) -> str:
    return " | ".join(part.strip() for part in text.strip().splitlines() if part.strip())


class RcaGroup(click.Group):
    """Turns exceptions into one stderr line and an exit code, wherever they are raised."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise
        except RcaError as err:
            self._report(ctx, f"rca: error: {_one_line(str(err))}")
            ctx.exit(err.exit_code)
        except Exception as err:  # noqa: BLE001 - the last line of defence: no traceback
            message = _one_line(str(err)) or "(no message)"
            hint = "" if _debug(ctx) else " (re-run with --debug for the traceback)"
            self._report(ctx, f"rca: internal error: {type(err).__name__}: {message}{hint}")
            ctx.exit(1)

    @staticmethod
    def _report(ctx: click.Context, line: str) -> None:
        if _debug(ctx):
            traceback.print_exc(file=sys.stderr)
        click.echo(line, err=True)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug"))


def _state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    if state is None:  # commands invoked directly (tests): settings from the environment
        state = CliState(settings=load_settings(), debug=False)
    return state


@click.group(cls=RcaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rca", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML settings file (see docs/cli.md); RCA_* environment variables override it.",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, config_file: Path | None, debug: bool) -> None:
    """rca: find the most likely root cause of an incident from its metrics and logs."""
    ctx.obj = CliState(settings=load_settings(config_file), debug=debug)


def _stdout() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 100  # pipes and files get tables uncut, not rich's 80 columns
    return console


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


def _engine(ctx: click.Context, lookback: float | None) -> EngineSettings:
    engine = _state(ctx).settings.engine
    if lookback is not None:
        engine = engine.model_copy(update={"lookback_minutes": lookback})
    return engine


def _run_analysis(snapshot: Snapshot, engine: EngineSettings) -> Analysis:
    from agent.pipeline import analyze

    return analyze(snapshot, engine)


def _write_outputs(
    analysis: Analysis, snapshot: Snapshot, markdown: Path | None, chart: Path | None
) -> list[Path]:
    written: list[Path] = []
    if chart is not None:
        from agent.chart import write_evidence_chart  # matplotlib is slow to import

        written.append(write_evidence_chart(analysis, snapshot, chart))
    if markdown is not None:
        from agent.report import write_markdown

        written.append(write_markdown(analysis, markdown, chart=chart))
    return written


@cli.command(short_help="Rank the likely root causes of one incident snapshot.")
@click.argument("snapshot_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print only the analysis as JSON on stdout.")
@click.option("--markdown", type=_FILE, metavar="FILE", help="Also write a Markdown report.")
@click.option("--chart", type=_FILE, metavar="FILE", help="Also write the evidence chart (PNG).")
@click.option(
    "--lookback",
    type=click.FloatRange(min=0, min_open=True),
    metavar="MINUTES",
    help="Incident window starts this long before the alert fired (default from settings).",
)
@click.pass_context
def analyze(
    ctx: click.Context,
    snapshot_dir: Path,
    as_json: bool,
    markdown: Path | None,
    chart: Path | None,
    lookback: float | None,
) -> None:
    """Analyze the incident snapshot in SNAPSHOT_DIR and print the ranked root cause."""
    snapshot = load_snapshot(snapshot_dir)
    analysis = _run_analysis(snapshot, _engine(ctx, lookback))
    if as_json:
        click.echo(analysis.model_dump_json(indent=2))
    else:
        from agent.report import print_report

        print_report(analysis, _stdout())
    for path in _write_outputs(analysis, snapshot, markdown, chart):
        click.echo(f"wrote {path}", err=True)


@cli.command(short_help="Write a simulated incident (with ground truth) as a snapshot.")
@click.option("--seed", type=int, required=True, help="Same seed, same incident.")
@click.option(
    "--fault", type=click.Choice(FAULT_CHOICES), help="Fault to inject (default: by seed)."
)
@click.option(
    "--services", type=click.IntRange(min=1), help="Services in a random graph (default: by seed)."
)
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output dir."
)
@click.option(
    "--raw",
    is_flag=True,
    help="Also write raw/metrics.om (OpenMetrics) and raw/logs.ndjson (ECS) for real servers.",
)
def simulate(seed: int, fault: str | None, services: int | None, out: Path, raw: bool) -> None:
    """Simulate an incident and write it as a snapshot directory (with ground truth)."""
    from evals.simulator import simulate as run_simulation
    from evals.simulator import write_scenario

    scenario = run_simulation(seed, fault=FaultType(fault) if fault else None, services=services)
    path = write_scenario(scenario, out, raw=raw)
    truth = scenario.snapshot.ground_truth
    what = f"{truth.service} / {truth.fault_type.value}" if truth else "no ground truth"
    click.echo(f"wrote scenario seed={seed} ({what}) to {path}")


def _demo_verdict(analysis: Analysis, snapshot: Snapshot) -> str:
    truth = snapshot.ground_truth
    if truth is None:
        return "The simulator recorded no ground truth for this seed."
    top = analysis.candidates[0] if analysis.candidates else None
    said = f"{top.service} / {top.fault_type.value}" if top else "nothing"
    verdict = "matches" if top and top.service == truth.service else "does not match"
    return (
        f"Simulator ground truth: {truth.service} / {truth.fault_type.value} — "
        f"the top candidate ({said}) {verdict}."
    )


@cli.command(short_help="Offline demo: simulate an incident, analyze it, write a report.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Where to write the snapshot, report.md and evidence.png.",
)
@click.option("--seed", type=int, default=DEMO_SEED, show_default=True, help="Simulator seed.")
@click.pass_context
def demo(ctx: click.Context, out: Path, seed: int) -> None:
    """Simulate an incident on the shop topology, analyze it, write a report and a chart.

    Offline: no server, no API key.
    """
    from agent.report import print_report
    from evals.simulator import simulate as run_simulation
    from evals.simulator import write_scenario

    scenario = run_simulation(seed)
    snapshot_dir = write_scenario(scenario, out / "snapshot")
    snapshot = load_snapshot(snapshot_dir)
    blind = snapshot.model_copy(update={"ground_truth": None})
    analysis = _run_analysis(blind, _engine(ctx, None))
    console = _stdout()
    print_report(analysis, console)
    console.print(_demo_verdict(analysis, snapshot), style="bold")
    (out / "analysis.json").write_text(analysis.model_dump_json(indent=2) + "\n", encoding="utf-8")
    _write_outputs(analysis, blind, out / "report.md", out / "evidence.png")
    console.print(
        f"\nWrote {out / 'report.md'}, {out / 'evidence.png'} and {out / 'analysis.json'}.\n"
        f"The incident itself is in {snapshot_dir}; re-run with: rca analyze {snapshot_dir}"
    )


@cli.command(name="eval", short_help="Score ranking accuracy on a suite of known incidents.")
@click.option(
    "--suite",
    required=True,
    metavar="sim|DIR",
    help="'sim' or a directory of snapshot directories.",
)
@click.option("--seeds", metavar="A-B", help="Seed range for --suite sim, e.g. 1000-1199.")
@click.option("--json", "json_file", type=_FILE, metavar="FILE", help="Write results as JSON.")
@click.option("--png", "png_file", type=_FILE, metavar="FILE", help="Write a comparison chart.")
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
        _engine(ctx, None),
        seeds=seeds if suite == SIM_SUITE else None,
        skipped=skipped,
        console=_stderr(),
    )
    for skip in report.skipped:
        click.echo(f"skipped {skip.case}: {skip.reason}", err=True)
    _stdout().print(metrics_table(report))
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


def main() -> None:
    """Console-script entry point (``rca``)."""
    cli.main(prog_name="rca")
