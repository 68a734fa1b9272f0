"""A rich progress bar for the Trainer: optimizer steps, latest losses, ETA.

The Trainer's own tqdm bar is switched off (``disable_tqdm``): it shows neither the loss nor a
readable ETA when logs interleave. Only the main process draws under ``accelerate launch``.
When the output is not a terminal (``nohup``, CI, a log file) a live bar never renders, so each
logging step prints one plain line with the same step, loss and ETA instead.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback

from agent.clikit import LogLines


class RichProgress(TrainerCallback):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress: Progress | None = None
        self.task: Any = None
        self.losses = "loss —"
        self.lines: LogLines | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self.lines = LogLines(self.console, "train", state.max_steps, start=state.global_step)
        self.progress = Progress(
            TextColumn("[bold]train[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            self.losses, total=state.max_steps, completed=state.global_step
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.progress is None or not logs:
            return
        if "loss" in logs:
            self.losses = f"loss {logs['loss']:.3f}"
        if "eval_loss" in logs:
            self.console.print(f"step {state.global_step}: validation loss {logs['eval_loss']:.4f}")
        self.progress.update(self.task, description=self.losses)
        if "loss" in logs and self.lines is not None:
            self.lines.step(state.global_step, self.losses)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
