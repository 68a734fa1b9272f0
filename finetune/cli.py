"""``rca finetune``: dataset -> train -> eval -> promote (and merge for serving). Examples::

    rca finetune dataset --out out/ds --seeds 20000-20599 --prompt-tokens 1024
    rca finetune train --config finetune/configs/smollm2-135m-cpu.yaml
    rca finetune eval out/smollm2-lora --suite sim --seeds 30000-30099 --png out/ft.png
    rca finetune promote out/smollm2-lora
    rca finetune merge out/smollm2-lora --out out/smollm2-merged

Heavy imports (torch, transformers, datasets) happen inside the commands: ``rca --help``
stays fast and the core install (no ``[finetune]`` extra) still lists these commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.clikit import FILE_OPTION, JsonOut, cli_state, json_options, stderr_console
from finetune.train import train_command

DIR = click.Path(file_okay=False, path_type=Path)
EXISTING_DIR = click.Path(file_okay=False, exists=True, path_type=Path)


@click.group(name="finetune", short_help="Build datasets, train, eval, promote.")
def finetune() -> None:
    """LoRA fine-tuning of the hf backend's model on your incidents (see docs/finetune.md)."""


@finetune.command(name="dataset")
@click.option("--out", type=DIR, required=True, help="Output directory of the dataset.")
@click.option("--seeds", metavar="A-B", help="Train seed range of simulated incidents.")
@click.option("--services", type=click.IntRange(min=1), help="Services per simulated incident.")
@click.option(
    "--snapshots", type=EXISTING_DIR, multiple=True, help="Snapshot folder(s) with ground truth."
)
@click.option(
    "--feedback/--no-feedback",
    default=False,
    help="Include rated analyses from the service database (database_url).",
)
@click.option(
    "--model",
    metavar="BASE",
    help="Model whose tokenizer counts the prompt budget (default: summarizer.hf_model).",
)
@click.option(
    "--prompt-tokens",
    type=click.IntRange(min=200),
    help="Prompt budget (default: summarizer.prompt_tokens); serve with the same budget.",
)
@click.option("--val-fraction", type=float, default=0.1, show_default=True)
@click.pass_context
def dataset_command(
    ctx: click.Context,
    out: Path,
    seeds: str | None,
    services: int | None,
    snapshots: tuple[Path, ...],
    feedback: bool,
    model: str | None,
    prompt_tokens: int | None,
    val_fraction: float,
) -> None:
    """Build a chat-format dataset: the serving prompt and the grounded answer per incident."""
    from agent.store.db import database_url
    from finetune.dataset import DatasetRequest, build_dataset

    settings = cli_state(ctx).settings
    if not (seeds or snapshots or feedback):
        raise click.UsageError("give at least one source: --seeds, --snapshots or --feedback")
    request = DatasetRequest(
        out=out,
        model=model or settings.summarizer.hf_model,
        prompt_tokens=prompt_tokens or settings.summarizer.prompt_tokens,
        seeds=seeds,
        services=services,
        snapshots=snapshots,
        feedback_url=database_url(settings.database_url, settings.data_dir) if feedback else None,
        val_fraction=val_fraction,
    )
    card = build_dataset(request, settings, stderr_console())
    for name, counts in card["splits"].items():
        click.echo(f"{name}: {counts['examples']} examples, {counts['incidents']} incidents")
    for why, count in card["skipped"].items():
        click.echo(f"skipped {count}: {why}")
    click.echo(f"content hash {card['content_hash']}; wrote {out}")


@finetune.command(name="eval")
@click.argument("checkpoints", nargs=-1, type=EXISTING_DIR)
@click.option("--suite", required=True, metavar="sim|DIR", help="'sim' or a snapshot folder.")
@click.option("--seeds", metavar="A-B", help="Held-out seed range for --suite sim.")
@click.option("--services", type=click.IntRange(min=1), help="Services per simulated case.")
@click.option("--base/--no-base", default=True, help="Also score the bare base model.")
@json_options("the comparison", file_was_json=True)
@click.option("--png", "png_file", type=FILE_OPTION, help="Write the comparison chart.")
@click.pass_context
def eval_command(
    ctx: click.Context,
    checkpoints: tuple[Path, ...],
    suite: str,
    seeds: str | None,
    services: int | None,
    base: bool,
    json_out: JsonOut,
    png_file: Path | None,
) -> None:
    """Score CHECKPOINT... side by side with the base model and extractive."""
    from evals.report import summarizer_table
    from finetune.evaluate import compare, contenders, load_suite, write_outputs

    if not checkpoints:
        raise click.UsageError("give one or more adapter directories")
    settings = cli_state(ctx).settings
    cases = load_suite(suite, seeds, services)
    rows = contenders(checkpoints, settings, cases, include_base=base)
    comparison = compare(rows, cases, stderr_console())
    json_out.console().print(summarizer_table(comparison.reports))
    if json_out:
        json_out.write(comparison.model_dump_json(indent=2))
    write_outputs(comparison, None, png_file)
    if png_file is not None:
        click.echo(f"wrote {png_file}", err=True)


@finetune.command(name="promote")
@click.argument("checkpoint", type=EXISTING_DIR)
@click.option("--policy", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--seeds", metavar="A-B", help="Override the policy's eval seeds.")
@click.option("--margin", type=float, help="Override the policy's margin.")
@click.pass_context
def promote_command(
    ctx: click.Context,
    checkpoint: Path,
    policy: Path | None,
    seeds: str | None,
    margin: float | None,
) -> None:
    """Serve CHECKPOINT if it beats the served adapter on the configured eval."""
    from agent.errors import UsageError
    from evals.metrics import SummarizerMetrics
    from finetune.artifacts import read_metadata
    from finetune.evaluate import Contender, check_no_leak, load_suite, run_contender, tuned
    from finetune.promote import PromotionRefused, load_policy, promote

    settings = cli_state(ctx).settings
    rules = load_policy(policy, seeds=seeds, margin=margin)
    suite = load_suite(rules.suite, rules.seeds, rules.services)
    console = stderr_console()
    candidate = read_metadata(checkpoint)
    check_no_leak(candidate, suite, checkpoint)

    def score(spec: str, adapter: Path | None) -> SummarizerMetrics:
        """The base model is scored with the candidate's prompt budget: same prompts."""
        meta = read_metadata(adapter) if adapter else candidate
        report = run_contender(Contender(spec, tuned(settings, meta)), suite, console)
        if report.summarizer is None:
            raise UsageError(f"no case of {rules.suite} produced a summary to score")
        return report.summarizer

    decision = promote(checkpoint, rules, settings.data_dir, score)
    for name, m in (("served", decision.current), ("candidate", decision.candidate)):
        click.echo(
            f"{name}: {rules.metric} {getattr(m, rules.metric) or 0:.3f}, valid "
            f"{m.valid_output_rate:.3f}, cites {m.citation_validity or 0:.3f}"
        )
    if not decision.promoted:
        raise PromotionRefused("not promoted: " + "; ".join(decision.reasons))
    click.echo(f"promoted {checkpoint}; the hf backend now serves it ({decision.pointer})")


@finetune.command(name="merge")
@click.argument("checkpoint", type=EXISTING_DIR)
@click.option("--out", type=DIR, required=True, help="Directory of the merged model.")
@click.option(
    "--dtype",
    type=click.Choice(["float32", "bfloat16", "float16"]),
    default="float32",
    show_default=True,
)
@click.pass_context
def merge_command(ctx: click.Context, checkpoint: Path, out: Path, dtype: str) -> None:
    """Merge CHECKPOINT into its base model and save a standalone model for serving."""
    from finetune.merge import merge_adapter

    models_dir = cli_state(ctx).settings.summarizer.resolved_models_dir()
    merge_adapter(checkpoint, out, models_dir=models_dir, dtype=dtype)
    click.echo(f"merged model in {out}; serve it with --backend hf:{out} or vLLM")


finetune.add_command(train_command)  # the command lives beside the code it runs
