"""The training configuration: one dataclass, loaded from YAML, overridden from the command line,
validated in ``__post_init__`` so a bad value fails before any model is loaded.

Each field's help text is in its metadata (``rca finetune train --help-config`` prints them).
Overrides are ``--set key=value`` with the value parsed as YAML (``--set lora_r=8``,
``--set target_modules=[q_proj,v_proj]``). Example::

    rca finetune train --config finetune/configs/smollm2-135m-cpu.yaml --set max_steps=20
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError

SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def _help(text: str, default: Any = dataclasses.MISSING) -> Any:
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Hyperparameters and paths of one LoRA training run."""

    dataset: str = _help("directory written by `rca finetune dataset`")
    output_dir: str = _help("where the adapter, tokenizer, metadata and curves go")
    base_model: str = _help(
        "smollm2 (cached by `rca models fetch smollm2`), a model directory or a cached HF id",
        "smollm2",
    )
    lora_r: int = _help("LoRA rank", 16)
    lora_alpha: int = _help("LoRA scaling numerator (scale = alpha / r)", 32)
    lora_dropout: float = _help("dropout on the LoRA input", 0.05)
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
        metadata={"help": "modules that get adapters (Llama/Qwen/SmolLM2 names)"},
    )
    learning_rate: float = _help("peak learning rate", 2e-4)
    lr_schedule: str = _help(f"one of {', '.join(SCHEDULES)}", "cosine")
    warmup_ratio: float = _help("fraction of steps spent warming up", 0.05)
    weight_decay: float = _help("AdamW weight decay", 0.0)
    epochs: float | None = _help("passes over the training split (or set max_steps)", None)
    max_steps: int | None = _help("optimizer steps; wins over epochs when both are set", None)
    max_seq_len: int = _help("longer examples are dropped (never cut: see the docs)", 2048)
    batch_size: int = _help("examples per device per micro-batch", 1)
    grad_accum: int = _help("micro-batches per optimizer step", 8)
    seed: int = _help("seed of weights init, shuffling and dropout", 42)
    precision: str = _help(
        "auto (bf16 on CUDA when supported, else fp16; fp32 on CPU), bf16, fp16 or fp32", "auto"
    )
    gradient_checkpointing: bool = _help("trade compute for memory (GPU recipes)", False)
    eval_every: int = _help("optimizer steps between validation losses (and checkpoints)", 50)
    max_eval_examples: int | None = _help("cap on validation examples per evaluation", None)
    early_stopping_patience: int | None = _help(
        "stop after this many evaluations without a lower validation loss; null: never", 3
    )
    logging_every: int = _help("optimizer steps between logged training losses", 5)
    threads: int | None = _help("CPU threads for torch; null: torch's default", None)
    save_total_limit: int = _help("checkpoints kept for resuming", 2)

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise ConfigError(f"invalid training config: {'; '.join(problems)}")

    def _problems(self) -> list[str]:
        found = []
        positive = ("lora_r", "lora_alpha", "max_seq_len", "batch_size", "grad_accum")
        found += [f"{name} must be at least 1" for name in positive if getattr(self, name) < 1]
        found += [f"{n} must be at least 1" for n in ("eval_every", "logging_every")
                  if getattr(self, n) < 1]  # fmt: skip
        if not 0 <= self.lora_dropout < 1:
            found.append(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.target_modules:
            found.append("target_modules must name at least one module")
        if not 0 < self.learning_rate < 1:
            found.append(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.lr_schedule not in SCHEDULES:
            found.append(f"lr_schedule must be one of {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_ratio < 1:
            found.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.precision not in PRECISIONS:
            found.append(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.epochs is None and self.max_steps is None:
            found.append("set epochs or max_steps")
        if self.epochs is not None and self.epochs <= 0:
            found.append("epochs must be positive")
        if self.max_steps is not None and self.max_steps < 1:
            found.append("max_steps must be at least 1")
        for name in ("early_stopping_patience", "max_eval_examples", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                found.append(f"{name} must be at least 1 or null")
        if not self.dataset or not self.output_dir:
            found.append("dataset and output_dir are required")
        return found

    @property
    def dataset_path(self) -> Path:
        return Path(self.dataset)

    @property
    def output_path(self) -> Path:
        return Path(self.output_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def help_lines() -> list[str]:
    """``name (default): help`` for every field, for ``--help-config``."""
    lines = []
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "required"
        lines.append(f"{f.name} ({default}): {f.metadata['help']}")
    return lines


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``key=value`` pairs, values parsed as YAML scalars or lists."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE with KEY one of the config keys")
        try:
            overrides[key] = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {pair!r}: the value is not valid YAML: {exc}") from None
    return overrides


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The YAML file (if any) with ``overrides`` on top; unknown keys are errors."""
    values: dict[str, Any] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"training config {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"training config {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"training config {path} must hold a mapping")
        values.update(loaded)
    values.update(overrides or {})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown training config keys: {', '.join(unknown)}")
    missing = [n for n in ("dataset", "output_dir") if n not in values]
    if missing:
        raise ConfigError(f"training config needs {' and '.join(missing)} (file or --set)")
    try:
        return TrainConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"invalid training config: {exc}") from None
