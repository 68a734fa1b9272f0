"""``rca finetune train``: a LoRA adapter on a dataset from ``rca finetune dataset``.

transformers' Trainer + peft, so one code path serves CPU, one GPU and several GPUs through
``accelerate launch`` (it reads the distributed setup from the environment accelerate sets).
The loss is on the assistant's answer only: prompt tokens are labelled -100. Each example is
the prompt exactly as the ``hf`` backend encodes it (chat template with the generation prompt)
followed by the answer and the end-of-turn token the model must learn to stop on. An example
longer than ``max_seq_len`` is dropped, never cut: a cut answer teaches invalid JSON, a cut
prompt teaches a format serving never sends. Examples::

    rca finetune train --config finetune/configs/smollm2-135m-cpu.yaml
    rca finetune train --config finetune/configs/smollm2-135m-cpu.yaml --resume
    accelerate launch --config_file finetune/accelerate/multi-gpu.yaml -m finetune.train \\
        --config finetune/configs/qwen2.5-1.5b-gpu.yaml
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from agent.clikit import cli_state, stage, stderr_console
from agent.errors import ConfigError, RcaError, UsageError
from agent.summarize.prompt import Message
from finetune.artifacts import (
    CURVE_FILE,
    base_revision,
    git_commit,
    write_loss_curve,
    write_metadata,
)
from finetune.config import TrainConfig, help_lines, load_config, parse_overrides

IGNORE = -100
_INSTALL = "training needs the finetune extra: pip install 'rca-agent[finetune]'"


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    metadata: dict[str, Any]
    model: Any = None  # the trained peft model, for callers that go on using it in-process


def encode(
    tokenizer: Any, messages: list[Message], max_seq_len: int
) -> dict[str, list[int]] | None:
    """Token ids and labels of one example (labels only on the answer); None if too long."""
    prompt = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    answer = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
    answer = [*answer, tokenizer.eos_token_id]
    ids = [*prompt, *answer]
    if len(ids) > max_seq_len:
        return None
    return {
        "input_ids": ids,
        "attention_mask": [1] * len(ids),
        "labels": [IGNORE] * len(prompt) + answer,
    }


def _encoded(
    tokenizer: Any, splits: Any, name: str, max_seq_len: int, limit: int | None, console: Console
) -> tuple[Any, int]:
    """The split's examples that fit, tokenised; and how many were dropped as too long."""
    import datasets

    rows = splits[name]
    total = len(rows) if limit is None else min(len(rows), limit)
    encoded, dropped = [], 0
    with stage(console, f"tokenising {total:,} {name} examples") as say:
        for done, row in enumerate(rows, start=1):
            item = encode(tokenizer, row["messages"], max_seq_len)
            if item is None:
                dropped += 1
            else:
                encoded.append(item)
            if limit is not None and len(encoded) >= limit:
                break
            say(f"{done:,}/{len(rows):,}")
    return datasets.Dataset.from_list(encoded), dropped


def precision_flags(precision: str, cuda: bool, bf16_supported: bool) -> tuple[bool, bool]:
    """(bf16, fp16) for the Trainer; half precision only on CUDA."""
    if precision == "auto":
        return cuda and bf16_supported, cuda and not bf16_supported
    if precision in ("bf16", "fp16") and not cuda:
        raise ConfigError(f"precision {precision} needs a CUDA GPU; use auto or fp32 on CPU")
    if precision == "bf16" and not bf16_supported:
        raise ConfigError("precision bf16 is not supported by this GPU; use fp16 or auto")
    return precision == "bf16", precision == "fp16"


def _load(cfg: TrainConfig, model_path: str, bf16: bool, fp16: bool) -> tuple[Any, Any]:
    import peft
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_path, local_files_only=True)
    if tokenizer.chat_template is None:
        raise ConfigError(f"base model {cfg.base_model} has no chat template")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch.bfloat16 if bf16 else torch.float16 if fp16 else torch.float32
    model: Any = transformers.AutoModelForCausalLM.from_pretrained(
        model_path, dtype=dtype, local_files_only=True
    )
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()  # LoRA: the frozen embeddings give no grad otherwise
    lora = peft.LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    try:
        model = peft.get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"LoRA config does not fit {cfg.base_model}: {exc}") from None
    return tokenizer, model


def training_arguments(cfg: TrainConfig, bf16: bool, fp16: bool, has_val: bool) -> Any:
    import inspect

    import torch
    import transformers

    early = has_val and cfg.early_stopping_patience is not None
    # transformers 5 renamed gradient_checkpointing; 4.x only knows the old name.
    known = inspect.signature(transformers.TrainingArguments).parameters
    ckpt = (
        "activation_checkpointing"
        if "activation_checkpointing" in known
        else "gradient_checkpointing"
    )
    checkpointing: dict[str, Any] = {
        ckpt: cfg.gradient_checkpointing,
        f"{ckpt}_kwargs": {"use_reentrant": False},
    }
    return transformers.TrainingArguments(
        **checkpointing,
        **warmup_arguments(cfg.warmup_ratio),
        output_dir=str(cfg.output_path / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_schedule,
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs or 1.0,
        max_steps=cfg.max_steps or -1,
        logging_steps=cfg.logging_every,
        logging_first_step=True,
        eval_strategy="steps" if has_val else "no",
        eval_steps=cfg.eval_every,
        save_strategy="steps",
        save_steps=cfg.eval_every,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        bf16=bf16,
        fp16=fp16,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to="none",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def warmup_arguments(ratio: float) -> dict[str, Any]:
    """The warmup as a fraction of the steps, in the words of the installed transformers.

    4.x has ``warmup_ratio`` and an integer ``warmup_steps`` (a ratio given there is read as
    0.05 steps: no warmup at all); 5.x dropped ``warmup_ratio`` and reads a ``warmup_steps``
    below 1 as the ratio.
    """
    import transformers

    declared = transformers.TrainingArguments.__dataclass_fields__["warmup_steps"].type
    if declared in (float, "float"):
        return {"warmup_steps": ratio}
    return {"warmup_ratio": ratio}


def _device(torch: Any) -> str:
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        return f"cuda: {torch.cuda.get_device_name(0)} x{count}"
    return f"cpu: {torch.get_num_threads()} threads"


def train(
    cfg: TrainConfig,
    *,
    models_dir: Path,
    resume: str | bool = False,
    mlflow_uri: str | None = None,
    console: Console | None = None,
) -> TrainResult:
    """Train, save adapter + tokenizer + metadata + loss curve in ``cfg.output_dir``."""
    console = console or Console(stderr=True)
    # Imports, model load and tokenising take a minute or more before the first step: each
    # says what it is doing from its first moment (finetune.progress takes over for steps).
    with stage(console, "loading torch, transformers and datasets"):
        try:
            import datasets
            import torch
            import transformers
        except ImportError:
            raise ConfigError(_INSTALL) from None
        from agent.summarize.hf_backend import resolve_model
        from finetune.dataset import read_card  # the engine, evals: not needed for `rca --help`
        from finetune.progress import RichProgress

    card = read_card(cfg.dataset_path)
    if card.get("tokenizer") != cfg.base_model:
        console.print(
            f"[yellow]warning:[/] the dataset's prompt budget was counted with "
            f"{card.get('tokenizer')}, training {cfg.base_model}: prompts may not fit at serving"
        )
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    transformers.set_seed(cfg.seed)
    cuda = torch.cuda.is_available()
    bf16, fp16 = precision_flags(cfg.precision, cuda, cuda and torch.cuda.is_bf16_supported())
    model_path = resolve_model(cfg.base_model, models_dir)
    with stage(console, f"loading base model {cfg.base_model} ({_device(torch)})"):
        tokenizer, model = _load(cfg, model_path, bf16, fp16)
    splits = datasets.load_from_disk(str(cfg.dataset_path))
    train_set, dropped = _encoded(tokenizer, splits, "train", cfg.max_seq_len, None, console)
    if len(train_set) == 0:
        raise UsageError(f"every training example is longer than max_seq_len={cfg.max_seq_len}")
    val_set, val_dropped = (
        _encoded(tokenizer, splits, "validation", cfg.max_seq_len, cfg.max_eval_examples, console)
        if "validation" in splits
        else (None, 0)
    )
    has_val = val_set is not None and len(val_set) > 0
    callbacks: list[Any] = [RichProgress(console)]
    if has_val and cfg.early_stopping_patience is not None:
        callbacks.append(transformers.EarlyStoppingCallback(cfg.early_stopping_patience))
    trainer = transformers.Trainer(
        model=model,
        args=training_arguments(cfg, bf16, fp16, has_val),
        train_dataset=train_set,
        eval_dataset=val_set if has_val else None,
        data_collator=transformers.DataCollatorForSeq2Seq(
            tokenizer, padding=True, label_pad_token_id=IGNORE
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.remove_callback(transformers.PrinterCallback)  # the rich bar shows the losses
    started = time.perf_counter()
    checkpoint = _checkpoint(cfg, resume)
    output = trainer.train(resume_from_checkpoint=checkpoint)
    final_val = None
    if has_val:
        with stage(console, f"validation loss on {len(val_set or []):,} examples"):
            final_val = trainer.evaluate()["eval_loss"]
    wall = time.perf_counter() - started
    out = cfg.output_path
    trainer.save_model(str(out))
    if not trainer.is_world_process_zero():
        return TrainResult(out, {}, trainer.model)
    history = trainer.state.log_history
    train_losses = [e["loss"] for e in history if "loss" in e]
    metadata = {
        "format": "rca-finetune-adapter",
        "base_model": cfg.base_model,
        "base_model_path": model_path,
        "base_revision": base_revision(model_path),
        "dataset": str(cfg.dataset_path.resolve()),
        "dataset_hash": card["content_hash"],
        "prompt_format_version": card["prompt_format_version"],
        "prompt_tokens_budget": card["prompt_tokens_budget"],
        "train_seeds": card.get("train_seeds"),
        "git_commit": git_commit(),
        "hyperparameters": cfg.to_dict(),
        "examples": {"train": len(train_set), "validation": len(val_set or [])},
        "dropped_too_long": {"train": dropped, "validation": val_dropped},
        "steps": trainer.state.global_step,
        "resumed_from": checkpoint,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "mean_train_loss": output.training_loss,
        "final_val_loss": final_val,
        "best_val_loss": trainer.state.best_metric,
        "wall_time_s": round(wall, 1),
        "device": _device(torch),
        "precision": "bf16" if bf16 else "fp16" if fp16 else "fp32",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    write_metadata(out, metadata)
    write_loss_curve(history, out / CURVE_FILE, f"{cfg.base_model} LoRA r={cfg.lora_r}")
    if mlflow_uri:
        _log_mlflow(mlflow_uri, cfg, metadata, history, out, console)
    return TrainResult(out, metadata, trainer.model)


def _checkpoint(cfg: TrainConfig, resume: str | bool) -> str | None:
    """``--resume``: the last checkpoint under the output folder, or the one named."""
    if not resume:
        return None
    if isinstance(resume, str) and resume != "auto":
        if not Path(resume).is_dir():
            raise UsageError(f"--resume {resume}: no such checkpoint directory")
        return resume
    from transformers.trainer_utils import get_last_checkpoint

    folder = cfg.output_path / "checkpoints"
    last = get_last_checkpoint(str(folder)) if folder.is_dir() else None
    if last is None:
        raise UsageError(f"--resume: no checkpoint in {folder} yet; start without --resume")
    return str(last)


def _log_mlflow(
    uri: str,
    cfg: TrainConfig,
    metadata: dict[str, Any],
    history: list[dict[str, Any]],
    out: Path,
    console: Console,
) -> None:
    """Params, per-step losses and the artifacts to MLflow; skipped (said) without mlflow."""
    try:
        import mlflow
    except ImportError:
        console.print("[yellow]MLFLOW_TRACKING_URI is set but mlflow is not installed: skipped")
        return
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run(run_name=out.name):
        mlflow.log_params({k: str(v) for k, v in cfg.to_dict().items()})
        mlflow.log_params({"dataset_hash": metadata["dataset_hash"], "device": metadata["device"]})
        for entry in history:
            for key in ("loss", "eval_loss"):
                if key in entry:
                    mlflow.log_metric(key, float(entry[key]), step=int(entry["step"]))
        mlflow.log_metric("wall_time_s", float(metadata["wall_time_s"]))
        for name in ("metadata.json", CURVE_FILE, "adapter_config.json"):
            if (out / name).is_file():
                mlflow.log_artifact(str(out / name))


@click.command(name="train")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Training recipe (YAML, e.g. finetune/configs/smollm2-135m-cpu.yaml). The settings "
    "file goes before the command here: rca --config rca.yaml finetune train --config ...",
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a key.")
@click.option(
    "--resume",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[CHECKPOINT]",
    help="Resume from the last checkpoint of output_dir, or from CHECKPOINT.",
)
@click.option("--help-config", is_flag=True, help="List the config keys with help and exit.")
@click.option(
    "--mlflow-uri",
    envvar="MLFLOW_TRACKING_URI",
    metavar="URI",
    help="Log params, metrics and artifacts to MLflow (default: $MLFLOW_TRACKING_URI).",
)
@click.pass_context
def train_command(
    ctx: click.Context,
    config_file: Path | None,
    overrides: tuple[str, ...],
    resume: str | None,
    help_config: bool,
    mlflow_uri: str | None,
) -> None:
    """Train a LoRA adapter (CPU, one GPU, or several under `accelerate launch`)."""
    if help_config:
        click.echo("\n".join(help_lines()))
        return
    config = load_config(config_file, parse_overrides(overrides))
    models_dir = cli_state(ctx).settings.summarizer.resolved_models_dir()
    result = train(
        config,
        models_dir=models_dir,
        resume=resume or False,
        mlflow_uri=mlflow_uri,
        console=stderr_console(),
    )
    meta = result.metadata
    if meta:
        val = meta["final_val_loss"]
        click.echo(
            f"adapter in {result.output_dir}: {meta['steps']} steps, train loss "
            f"{meta['final_train_loss']:.4f}, val loss {'—' if val is None else f'{val:.4f}'}, "
            f"{meta['wall_time_s']:.0f} s on {meta['device']}"
        )


def main(argv: list[str] | None = None) -> None:
    """``python -m finetune.train`` (what ``accelerate launch`` runs): the command ``rca finetune
    train`` registers, with the same one-line errors."""
    import sys

    try:
        train_command.main(args=argv, prog_name="finetune.train", standalone_mode=False)
    except RcaError as err:
        click.echo(f"rca: error: {err}", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)


if __name__ == "__main__":
    main()
