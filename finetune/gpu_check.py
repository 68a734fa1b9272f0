"""Verify the training path on CUDA in about a minute: ``python -m finetune.gpu_check``.

Builds a tiny random Llama and a small dataset (no downloads), trains a few LoRA steps through
:func:`finetune.train.train` in bf16 (fp16 where bf16 is unsupported) with gradient
checkpointing, then reloads the saved adapter with the ``hf`` backend on CUDA and generates.
Prints one line per check and a JSON summary (paste it into docs/finetune.md); exits 0 with a
message when there is no GPU, 1 when a check fails.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from finetune.config import TrainConfig
from finetune.dataset import Collected, dataset_card, write_dataset
from finetune.tiny import build_tiny_model, toy_examples

ANSWER = json.dumps(
    {
        "root_cause": {"service": "payments", "fault_type": "memory_leak", "summary": "[M1]"},
        "confidence": 0.5,
        "evidence_ids": ["M1"],
        "timeline": [],
        "next_steps": [],
        "alternatives": [],
    }
)


def _dataset(directory: Path, tokenizer: str) -> Path:
    rows = toy_examples(ANSWER, 24, "[M1]", prompt_tokens=16)
    splits = {"train": rows[:20], "validation": rows[20:]}
    provenance = {"tokenizer": tokenizer, "prompt_tokens_budget": 1000, "train_seeds": None}
    return write_dataset(
        directory, splits, dataset_card(splits, Collected(examples=rows), provenance)
    )


def _checkpointing(model: Any) -> bool:
    inner = model.get_base_model()
    flag = getattr(inner, "is_activation_checkpointing", None)  # transformers 5
    return bool(inner.is_gradient_checkpointing if flag is None else flag)


def run_checks(work: Path, device: str = "cuda") -> dict[str, Any]:
    """Train and reload on ``device`` (``cpu`` runs the same steps in fp32, for the tests)."""
    import torch

    from agent.summarize.hf_backend import HfBackend
    from finetune.train import train

    cuda = device == "cuda"
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "bf16_supported": cuda and torch.cuda.is_bf16_supported(),
    }
    model_dir = build_tiny_model(work / "tiny")
    dataset = _dataset(work / "ds", str(model_dir))
    precision = ("bf16" if results["bf16_supported"] else "fp16") if cuda else "fp32"
    config = TrainConfig(
        dataset=str(dataset),
        output_dir=str(work / "adapter"),
        base_model=str(model_dir),
        lora_r=8,
        lora_alpha=16,
        max_steps=8,
        batch_size=4,
        grad_accum=1,
        learning_rate=5e-3,
        precision=precision,
        gradient_checkpointing=True,
        eval_every=4,
        logging_every=1,
    )
    started = time.perf_counter()
    trained = train(config, models_dir=work)
    results["train_s"] = round(time.perf_counter() - started, 1)
    results["precision"] = trained.metadata["precision"]
    results["train_device"] = trained.metadata["device"]
    results["gradient_checkpointing"] = _checkpointing(trained.model)
    results["losses"] = [trained.metadata["final_train_loss"], trained.metadata["final_val_loss"]]
    lora_b = [p for n, p in trained.model.named_parameters() if "lora_B" in n]
    results["lora_weights_moved"] = any(float(p.detach().abs().sum()) > 0 for p in lora_b)
    backend = HfBackend(str(model_dir), adapter=trained.output_dir, device=device, max_new_tokens=8)
    completion = backend.complete([{"role": "user", "content": "payments memory"}])
    results["reloaded_on"] = str(backend.model.device)
    results["reloaded_dtype"] = str(backend.model.dtype)
    results["generated_tokens"] = completion.completion_tokens
    return results


def main() -> int:
    try:
        import torch
    except ImportError:
        print("gpu_check: torch is not installed (pip install 'rca-agent[finetune]')")
        return 0
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing to check (the CPU path is in the tests)")
        return 0
    with tempfile.TemporaryDirectory(prefix="rca-gpu-check-") as tmp:
        results = run_checks(Path(tmp))
    checks = {
        "bf16 or fp16 training": results["precision"] in ("bf16", "fp16"),
        "trained on cuda": results["train_device"].startswith("cuda"),
        "gradient checkpointing on": results["gradient_checkpointing"],
        "LoRA weights moved": results["lora_weights_moved"],
        "adapter reloaded on cuda": results["reloaded_on"].startswith("cuda"),
        "generated": results["generated_tokens"] > 0,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    print(json.dumps(results, indent=2))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
