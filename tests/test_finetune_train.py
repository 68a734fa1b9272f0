"""LoRA training end to end on a tiny randomly initialized Llama built here (no downloads):
a few steps, only adapter weights move, the answer alone is trained, the adapter saves,
reloads, generates, merges, resumes; eval scores it beside base and extractive; promotion
refuses a checkpoint that does not beat the served model. Skipped without ``[finetune]``.
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import build_analysis
from rich.console import Console

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("datasets")
transformers = pytest.importorskip("transformers")

from agent.cli import cli  # noqa: E402 - after the importorskips
from agent.config import Settings  # noqa: E402
from agent.errors import UsageError  # noqa: E402
from agent.models import FaultType  # noqa: E402
from agent.summarize.hf_backend import HfBackend  # noqa: E402
from agent.summarize.settings import SummarizerSettings  # noqa: E402
from evals.metrics import SummarizerMetrics  # noqa: E402
from finetune.config import TrainConfig  # noqa: E402
from finetune.dataset import Collected, dataset_card, write_dataset  # noqa: E402
from finetune.evaluate import compare, contenders, load_suite, write_outputs  # noqa: E402
from finetune.examples import Example, Truth, target_answer  # noqa: E402
from finetune.merge import merge_adapter  # noqa: E402
from finetune.promote import PromotionPolicy, promote, refusals, served_adapter  # noqa: E402
from finetune.tiny import build_tiny_model, toy_examples  # noqa: E402
from finetune.train import IGNORE, TrainResult, encode, train, training_arguments  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"
TRAIN_SEEDS = "20000-20099"


def _examples() -> list[Example]:
    """Short chat examples with a real, guard-valid answer (fast to train on)."""
    draft = build_analysis()
    answer = target_answer(draft, Truth("payments", FaultType.MEMORY_LEAK), ["M1", "L1", "M2"])
    text = json.dumps(answer.model_dump(mode="json"))
    return toy_examples(text, 10, "[M1] [L1]", prompt_tokens=20)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, tiny: Path) -> Path:
    examples = _examples()
    splits = {"train": examples[:8], "validation": examples[8:]}
    provenance = {"tokenizer": str(tiny), "prompt_tokens_budget": 700, "train_seeds": TRAIN_SEEDS}
    card = dataset_card(splits, Collected(examples=examples), provenance)
    return write_dataset(tmp_path_factory.mktemp("ds"), splits, card)


def _config(dataset: Path, out: Path, tiny: Path, **extra: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "dataset": str(dataset),
        "output_dir": str(out),
        "base_model": str(tiny),
        "lora_r": 4,
        "lora_alpha": 8,
        "target_modules": ["q_proj", "v_proj"],
        "learning_rate": 5e-3,
        "max_steps": 4,
        "grad_accum": 2,
        "batch_size": 2,
        "eval_every": 2,
        "logging_every": 1,
        "max_seq_len": 1024,
    }
    return TrainConfig(**(values | extra))


@pytest.mark.parametrize("ratio", [0.05, 0.25])
def test_warmup_is_that_share_of_the_steps_on_the_installed_transformers(
    tmp_path: Path, ratio: float
) -> None:
    """4.x reads a ratio given as warmup_steps as 0.05 steps (no warmup); 5.x dropped
    warmup_ratio. Either way 200 steps warm up over ratio * 200 of them."""
    cfg = _config(tmp_path / "ds", tmp_path / "out", tmp_path / "tiny", warmup_ratio=ratio)
    args = training_arguments(cfg, bf16=False, fp16=False, has_val=False)
    assert args.get_warmup_steps(200) == round(ratio * 200)


@pytest.fixture(scope="module")
def train_console() -> Console:
    """Where training reports, as in a log file: not a terminal."""
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory, dataset: Path, tiny: Path, train_console: Console
) -> TrainResult:
    out = tmp_path_factory.mktemp("adapter")
    return train(_config(dataset, out, tiny), models_dir=out, console=train_console)


def test_progress_reaches_a_log_file_line_by_line(
    trained: TrainResult, train_console: Console
) -> None:
    log = train_console.file.getvalue()  # type: ignore[attr-defined]
    steps = re.findall(r"train (\d+)/4 loss (\d+\.\d+) elapsed \S+ ETA \S+", log)
    assert [int(step) for step, _ in steps] == [1, 2, 3, 4]  # logging_every=1
    assert "validation loss" in log


def test_train_says_what_it_is_doing_before_the_model_loads(
    dataset: Path, tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rca finetune train` used to print nothing until its first optimizer step (imports,
    model load and tokenising: ~90 s with SmolLM2 on 2 cores). Now each of those says what it
    does as it starts; the moment the weights load is marked in the same stream."""
    original = transformers.AutoModelForCausalLM.from_pretrained

    def from_pretrained(*args: Any, **kwargs: Any) -> Any:
        sys.stderr.write("<weights load here>\n")
        return original(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    config = tmp_path / "train.yaml"
    values = _config(dataset, tmp_path / "adapter", tiny, max_steps=1).to_dict()
    config.write_text(yaml.safe_dump(values))
    result = CliRunner().invoke(cli, ["finetune", "train", "--config", str(config)])

    assert result.exit_code == 0, result.output
    log = result.stderr
    lines = log.splitlines()
    assert lines[0] == "loading torch, transformers and datasets …"  # before any heavy import
    assert log.index(f"loading base model {tiny} (cpu: ") < log.index("<weights load here>")
    assert log.index("<weights load here>") < log.index("tokenising 8 train examples …")
    assert log.index("tokenising 8 train examples: done in") < log.index("train 1/1 loss")
    assert "tokenising 2 validation examples …" in log
    assert "adapter in" in result.stdout


def test_only_the_answer_is_trained(tiny: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny)
    messages = _examples()[0].messages
    item = encode(tokenizer, messages, 4096)
    assert item is not None
    prompt = tokenizer.apply_chat_template(
        messages[:-1], add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    assert item["input_ids"][: len(prompt)] == prompt  # exactly what the hf backend encodes
    assert item["labels"][: len(prompt)] == [IGNORE] * len(prompt)
    answer = item["labels"][len(prompt) :]
    assert answer[-1] == tokenizer.eos_token_id and IGNORE not in answer
    assert tokenizer.decode(answer[:-1]) == messages[-1]["content"]
    assert encode(tokenizer, messages, len(prompt)) is None  # too long: dropped, never cut


def test_training_moves_lora_weights_and_leaves_the_base_alone(
    trained: TrainResult, tiny: Path
) -> None:
    original = transformers.AutoModelForCausalLM.from_pretrained(tiny).state_dict()
    model = trained.model
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(p.requires_grad for p in lora_b)
    assert any(float(p.detach().abs().sum()) > 0 for p in lora_b)  # B starts at zero
    checked = 0
    for name, param in model.named_parameters():
        if "lora_" in name:
            continue
        assert not param.requires_grad, name
        key = name.removeprefix("base_model.model.").replace(".base_layer", "")
        assert torch.equal(param.detach().cpu(), original[key]), name
        checked += 1
    assert checked == len(original)


def test_artifacts_record_where_the_adapter_came_from(trained: TrainResult, dataset: Path) -> None:
    out = trained.output_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert (out / "loss.png").read_bytes().startswith(PNG)
    meta = json.loads((out / "metadata.json").read_text())
    card = json.loads((dataset / "card.json").read_text())
    assert meta["dataset_hash"] == card["content_hash"]
    assert meta["steps"] == 4 and meta["hyperparameters"]["lora_r"] == 4
    assert meta["final_train_loss"] > 0 and meta["final_val_loss"] > 0
    assert meta["base_revision"].startswith("dir-sha256:")
    assert meta["device"].startswith("cpu") and meta["precision"] == "fp32"


def test_adapter_reloads_and_generates_differently_from_the_base(
    trained: TrainResult, tiny: Path
) -> None:
    backend = HfBackend(str(tiny), adapter=trained.output_dir, device="cpu", max_new_tokens=6)
    messages = _examples()[0].messages[:-1]
    completion = backend.complete(messages)
    assert 0 < completion.completion_tokens <= 6
    inputs = backend._encode(messages)
    base = transformers.AutoModelForCausalLM.from_pretrained(tiny).eval()
    with torch.no_grad():
        tuned_logits = backend.model(**inputs).logits
        base_logits = base(**inputs).logits
    assert not torch.allclose(tuned_logits, base_logits)


def test_merged_model_matches_base_plus_adapter(
    trained: TrainResult, tiny: Path, tmp_path: Path
) -> None:
    merged_dir = merge_adapter(trained.output_dir, tmp_path / "merged", models_dir=tmp_path)
    merged = transformers.AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    backend = HfBackend(str(tiny), adapter=trained.output_dir, device="cpu")
    inputs = backend._encode(_examples()[0].messages[:-1])
    with torch.no_grad():
        expected = backend.model(**inputs).logits
        got = merged(**inputs).logits
    assert torch.allclose(expected, got, atol=1e-4)
    assert json.loads((merged_dir / "metadata.json").read_text())["merged"] is True


def test_training_resumes_from_its_last_checkpoint(
    trained: TrainResult, dataset: Path, tiny: Path
) -> None:
    cfg = _config(dataset, trained.output_dir, tiny, max_steps=6)
    resumed = train(cfg, models_dir=trained.output_dir, resume=True)
    assert resumed.metadata["resumed_from"].endswith("checkpoint-4")
    assert resumed.metadata["steps"] == 6


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, summarizer=SummarizerSettings(max_new_tokens=16))


def test_eval_scores_checkpoint_base_and_extractive_side_by_side(
    trained: TrainResult, tiny: Path, tmp_path: Path
) -> None:
    suite = load_suite("sim", "30000-30001")
    rows = contenders([trained.output_dir], _settings(tmp_path), suite)
    specs = ["extractive", f"hf:{tiny}+{trained.output_dir}", f"hf:{tiny}"]
    assert [r.spec for r in rows] == specs
    assert all(r.settings.summarizer.prompt_tokens == 700 for r in rows[1:])
    comparison = compare(rows, suite)
    write_outputs(comparison, tmp_path / "eval.json", tmp_path / "eval.png")
    backends = [r.summarizer.backend for r in comparison.reports if r.summarizer]
    assert backends[0] == "extractive" and backends[1].endswith(str(trained.output_dir))
    assert (tmp_path / "eval.png").read_bytes().startswith(PNG)
    assert len(json.loads((tmp_path / "eval.json").read_text())["reports"]) == 3
    with pytest.raises(UsageError, match="overlap"):
        contenders([trained.output_dir], _settings(tmp_path), load_suite("sim", "20050-30000"))


def _metrics(accuracy: float, valid: float = 1.0) -> SummarizerMetrics:
    return SummarizerMetrics(
        backend="x",
        n_cases=10,
        valid_output_rate=valid,
        citation_validity=1.0,
        top1_agreement=1.0,
        root_cause_accuracy=accuracy,
        fallback_rate=0.0,
        latency_p50_s=1.0,
        latency_p95_s=1.0,
        tokens_in_mean=1.0,
        tokens_out_mean=1.0,
        tokens_in_p95=1.0,
        cost_usd_total=0.0,
    )


def test_promotion_refuses_a_worse_checkpoint_and_accepts_a_better_one(
    trained: TrainResult, tmp_path: Path
) -> None:
    policy = PromotionPolicy(seeds="30000-30001", margin=0.02)
    assert refusals(_metrics(0.80), _metrics(0.79), policy)  # within the margin
    assert refusals(_metrics(0.95, valid=0.5), _metrics(0.5), policy)  # invalid output
    assert not refusals(_metrics(0.85), _metrics(0.80), policy)

    worse = promote(trained.output_dir, policy, tmp_path, lambda spec, _: _metrics(0.6))
    assert not worse.promoted and served_adapter(tmp_path) is None
    scores = {True: _metrics(0.9), False: _metrics(0.7)}
    better = promote(trained.output_dir, policy, tmp_path, lambda s, a: scores[a is not None])
    pointer = served_adapter(tmp_path)
    assert better.promoted and pointer is not None
    assert (Path(pointer["adapter"]) / "adapter_model.safetensors").is_file()
    assert not (Path(pointer["adapter"]) / "checkpoints").exists()


def test_cli_promote_scores_for_real_and_changes_nothing_when_refused(
    trained: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RCA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RCA_SUMMARIZER__MAX_NEW_TOKENS", "16")
    policy = tmp_path / "policy.yaml"
    policy.write_text("suite: sim\nseeds: 30000-30001\nmetric: root_cause_accuracy\n")
    result = CliRunner().invoke(
        cli, ["finetune", "promote", str(trained.output_dir), "--policy", str(policy)]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("rca: error: not promoted:")
    assert "valid-output rate" in result.stderr
    assert not (tmp_path / "served-adapter.json").exists()


def test_gpu_check_script_runs_its_steps_on_cpu(tmp_path: Path) -> None:
    """The CUDA script's own steps (gradient checkpointing included) in fp32 on CPU."""
    from finetune.gpu_check import run_checks

    results = run_checks(tmp_path, device="cpu")
    assert results["gradient_checkpointing"] is True
    assert results["lora_weights_moved"] is True
    assert results["reloaded_on"] == "cpu" and results["generated_tokens"] > 0
