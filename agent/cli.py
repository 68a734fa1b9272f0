"""The ``rca`` command line: analyze a snapshot, simulate incidents, run the demo and evals.

Errors the user can fix arrive as :class:`~agent.errors.RcaError` and become one line on
stderr (``rca: error: ...``) with the error's exit code; anything else is a bug and becomes
one ``rca: internal error`` line (``--debug`` shows the traceback). Click's own usage errors
keep exit code 2. The group and its global options are here; each command lives with its
kind, with its examples: ``agent/cli_analyze.py`` (analyze, record, check-sources),
``agent/cli_simulate.py`` (simulate, demo), ``evals/cli.py`` (eval), ``agent/cli_memory.py``
(similar), ``agent/service/cli.py`` (serve), ``agent/summarize/fetch.py`` (models),
``finetune/cli.py`` (finetune). Examples::

    rca demo
    rca analyze path/to/snapshot --markdown report.md --chart evidence.png
    rca eval --suite sim --seeds 1000-1199 --json out/eval.json --png out/eval.png
"""

from __future__ import annotations

from pathlib import Path

import click

from agent import __version__
from agent.cli_analyze import analyze, check_sources, record
from agent.cli_memory import similar
from agent.cli_simulate import demo, simulate
from agent.clikit import (
    CONFIG_HELP,
    LOG_LEVELS,
    CliState,
    RcaGroup,
    accept_config_anywhere,
    log_level_name,
    set_log_level,
)
from agent.service.cli import serve
from agent.summarize.fetch import models
from evals.cli import eval_command
from finetune.cli import finetune


@click.group(cls=RcaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="rca", message="%(prog)s %(version)s")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help=CONFIG_HELP + " Also accepted after the command.",
)
@click.option(
    "-v",
    "--verbose",
    "verbosity",
    count=True,
    help="Log more: -v info, -vv debug (to stderr).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    help="Log level (wins over -v); for rca serve it replaces the log_level setting.",
)
@click.option("--debug", is_flag=True, help="Show full tracebacks for errors.")
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: Path | None,
    verbosity: int,
    log_level: str | None,
    debug: bool,
) -> None:
    """rca: find the most likely root cause of an incident from its metrics and logs."""
    level = log_level_name(log_level, verbosity)
    overrides = {"log_level": level} if level else {}
    ctx.obj = CliState(config_file=config_file, debug=debug, overrides=overrides)
    set_log_level(level)


# Each command module owns its commands; registering them here is the only coupling.
COMMANDS = (
    analyze,
    record,
    check_sources,
    simulate,
    demo,
    eval_command,
    similar,
    serve,
    models,
    finetune,
)
for command in COMMANDS:
    cli.add_command(command)
accept_config_anywhere(cli)


def main() -> None:
    """Console-script entry point (``rca``)."""
    cli.main(prog_name="rca")
