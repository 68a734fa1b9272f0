"""Shared pieces of the ``rca`` command line: the state every command reads, the error
handling that turns exceptions into one stderr line, consoles and common option types.

Command modules (``agent/cli.py``, ``evals/cli.py``, ...) import from here and are registered
on the ``cli`` group in ``agent/cli.py``.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from agent.config import EngineSettings, Settings, read_settings
from agent.errors import RcaError
from agent.models import FaultType

FAULT_CHOICES = [f.value for f in FaultType if f is not FaultType.UNKNOWN]
FILE_OPTION = click.Path(dir_okay=False, writable=True, path_type=Path)
TIME_FORMATS = ["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
"""What ``--end``/``--at TIME`` accept: ISO-8601, naive meaning UTC, ``Z`` or an offset."""
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Duration(click.ParamType):
    """``90s``, ``30m``, ``2h``, ``1h30m``, ``7d``: Prometheus' duration syntax, as a timedelta."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip()
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration such as 30m, 2h or 1h30m", param, ctx)
        seconds = sum(int(n) * _UNIT_S[u] for n, u in parts)
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than 0", param, ctx)
        return timedelta(seconds=seconds)


def clock_span(span: timedelta) -> str:
    """``1h30m`` for a timedelta, the way ``Duration`` reads it back."""
    seconds = int(span.total_seconds())
    parts = []
    for unit in ("d", "h", "m", "s"):
        count, seconds = divmod(seconds, _UNIT_S[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


@dataclass(frozen=True)
class JsonOut:
    """Where a command's JSON goes: ``--json`` prints it on stdout (and nothing else goes
    there: tables and notes move to stderr), ``--json-file FILE`` writes it to FILE. Both may
    be given; neither means the command prints its human report only."""

    stdout: bool = False
    file: Path | None = None

    def __bool__(self) -> bool:
        return self.stdout or self.file is not None

    def console(self) -> Console:
        """Where the human report goes: stderr when stdout carries the JSON."""
        return stderr_console() if self.stdout else stdout_console()

    def write(self, text: str) -> None:
        text = text.rstrip("\n") + "\n"
        if self.file is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            self.file.write_text(text, encoding="utf-8")
            click.echo(f"wrote {self.file}", err=True)
        if self.stdout:
            click.echo(text, nl=False)


def json_options(what: str, *, file_was_json: bool = False) -> Callable[[Any], Any]:
    """``--json`` and ``--json-file FILE`` with one meaning in every command; the command
    receives them as one ``json_out: JsonOut``. Goes below ``@click.command``.

    ``file_was_json``: the command used to take ``--json FILE``; a value after ``--json`` is
    still read as the file, with a deprecation note on stderr. (Only for commands whose
    positional arguments cannot follow ``--json``: ``analyze --json SNAPSHOT`` must stay.)
    """

    def decorate(command: Any) -> Any:
        @functools.wraps(command)
        def merged(*args: Any, json_out: JsonOut, json_file: Path | None, **kwargs: Any) -> Any:
            return command(*args, json_out=json_target(json_out, json_file), **kwargs)

        merged = click.option(
            "--json-file",
            "json_file",
            type=FILE_OPTION,
            metavar="FILE",
            help=f"Write {what} as JSON to FILE.",
        )(merged)
        help_text = f"Print {what} as JSON on stdout (the rest goes to stderr)."
        if not file_was_json:
            return click.option(
                "--json", "json_out", is_flag=True, callback=_json_stdout, help=help_text
            )(merged)
        return click.option(
            "--json",
            "json_out",
            is_flag=False,
            flag_value="",
            default=None,
            metavar="",
            callback=_json_stdout_or_legacy_file,
            help=f"{help_text} (--json FILE still writes FILE, deprecated: use --json-file.)",
        )(merged)

    return decorate


def _json_stdout(_ctx: click.Context, _param: click.Parameter, value: bool) -> JsonOut:
    return JsonOut(stdout=value)


def _json_stdout_or_legacy_file(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> JsonOut:
    if value is None or value == "":
        return JsonOut(stdout=value == "")
    click.echo(
        f"rca: warning: --json FILE is deprecated: use --json-file {value} "
        "(--json alone prints the JSON on stdout)",
        err=True,
    )
    return JsonOut(file=Path(value))


def json_target(json_out: JsonOut, json_file: Path | None) -> JsonOut:
    """The command's one JsonOut, from its ``--json`` and ``--json-file`` options."""
    if json_file is None:
        return json_out
    if json_out.file is not None and json_out.file != json_file:
        raise click.UsageError("give the JSON file once: --json-file FILE")
    return JsonOut(stdout=json_out.stdout, file=json_file)


@dataclass
class CliState:
    """What every command reads. The settings load on first use, so that ``--config`` is
    taken after the subcommand as well as before it (:func:`accept_config_anywhere`)."""

    config_file: Path | None = None
    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)
    """Settings the root options set (``--log-level``), over file and environment."""
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            reading = read_settings(self.config_file, **self.overrides)
            for note in reading.notes:
                click.echo(f"rca: warning: {note}", err=True)
            self._settings = reading.settings
        return self._settings

    def use_config(self, path: Path) -> None:
        if self.config_file is not None and self.config_file != path:
            raise click.UsageError(f"--config given twice: {self.config_file} and {path}")
        if self._settings is not None and self.config_file != path:
            raise click.UsageError("--config must come before anything that reads settings")
        self.config_file = path


LOG_LEVELS = ["debug", "info", "warning", "error", "critical"]


def log_level_name(name: str | None, verbosity: int = 0) -> str | None:
    """The level ``--log-level`` or ``-v`` (info) / ``-vv`` (debug) asks for; None: neither."""
    if name:
        return name.lower()
    if verbosity:
        return "info" if verbosity == 1 else "debug"
    return None


def set_log_level(name: str | None) -> None:
    """The root logger's level for this command. ``rca serve`` configures its own logging
    from the ``log_level`` setting, which the root option overrides (:class:`CliState`).
    Records go to stderr; a handler that is already installed keeps its format."""
    if name is None:
        return
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(getattr(logging, name.upper()))


CONFIG_HELP = (
    "YAML settings file (see docs/configuration.md); RCA_* environment variables override it."
)


def _config_after_command(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        cli_state(ctx).use_config(value)


def accept_config_anywhere(group: click.Group) -> None:
    """Give every subcommand (at any depth) the root's ``--config``, so ``rca analyze X
    --config rca.yaml`` works like ``rca --config rca.yaml analyze X``. A command with a
    ``--config`` of its own (``finetune train``: the training config) keeps it."""
    for command in group.commands.values():
        if not any("--config" in param.opts for param in command.params):
            command.params.append(
                click.Option(
                    ["--config", "config_file"],
                    type=click.Path(dir_okay=False, path_type=Path),
                    metavar="FILE",
                    expose_value=False,
                    is_eager=True,
                    callback=_config_after_command,
                    help=CONFIG_HELP + " Also accepted before the command.",
                )
            )
        if isinstance(command, click.Group):
            accept_config_anywhere(command)


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
            lines = [f"rca: error: {_one_line(line)}" for line in err.lines()]
            self._report(ctx, "\n".join(lines))
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


def cli_state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    if state is None:  # commands invoked directly (tests): settings from the environment
        state = ctx.ensure_object(CliState)
    return state


def stdout_console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = 160  # pipes and files get tables uncut, not rich's 80 columns
    return console


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def engine_settings(ctx: click.Context, lookback: float | None) -> EngineSettings:
    engine = cli_state(ctx).settings.engine
    if lookback is not None:
        engine = engine.model_copy(update={"lookback_minutes": lookback})
    return engine


@contextmanager
def stage(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    """Say what a slow step is doing from its first moment, then how long it took.

    On a terminal a spinner shows ``text`` (and whatever the step reports through the
    callable it is given, e.g. a count); elsewhere (a log file, CI) a spinner never renders, so
    ``text`` is printed as a line at once. Either way a line with the time taken follows,
    unless the step raised.
    """
    started = time.monotonic()
    if console.is_terminal:
        with console.status(f"{text} …") as status:
            yield lambda detail: status.update(f"{text} … {detail}")
    else:
        console.print(f"{text} …", highlight=False, soft_wrap=True)
        yield lambda _detail: None
    done = f"{text}: done in {time.monotonic() - started:.1f} s"
    console.print(done, highlight=False, soft_wrap=True)


class LogLines:
    """Progress for output that is not a terminal (``nohup``, CI, a log file).

    A rich bar draws nothing there until it ends, so a long job (an eval, a training run)
    would look hung. This prints one plain line per ``every`` steps instead: the step, what
    the caller adds (a loss), the elapsed time and the ETA. On a terminal it stays silent.
    """

    def __init__(
        self, console: Console, label: str, total: int, *, every: int = 1, start: int = 0
    ) -> None:
        """``start``: steps already done (a resumed run); the ETA is timed from here."""
        self.console, self.label, self.total, self.every = console, label, total, max(every, 1)
        self.started, self.first = time.monotonic(), start

    def step(self, done: int, detail: str = "") -> None:
        if self.console.is_terminal or (done % self.every and done != self.total):
            return
        elapsed = time.monotonic() - self.started
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        extra = f" {detail}" if detail else ""
        self.console.print(
            f"{self.label} {done}/{self.total}{extra} elapsed {_clock(elapsed)} ETA {_clock(eta)}",
            highlight=False,
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
