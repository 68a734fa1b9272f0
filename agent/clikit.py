"""Shared pieces of the ``rca`` command line: the state every command reads, the error
handling that turns exceptions into one stderr line, consoles and common option types.

Command modules (``agent/cli.py``, ``evals/cli.py``, ...) import from here and are registered
on the ``cli`` group in ``agent/cli.py``.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from agent.config import EngineSettings, Settings, load_settings
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


def cli_state(ctx: click.Context) -> CliState:
    state = ctx.find_object(CliState)
    if state is None:  # commands invoked directly (tests): settings from the environment
        state = CliState(settings=load_settings(), debug=False)
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
