"""``rca finetune merge``: fold a LoRA adapter into its base model for serving.

A merged model is an ordinary model directory (safetensors + tokenizer): vLLM serves it
without ``--enable-lora``, and the ``hf`` backend loads it as ``hf:DIR`` with no adapter. The
unmerged adapter stays the smaller artifact to keep and to promote. Example::

    rca finetune merge out/smollm2-lora --out out/smollm2-merged
    rca analyze incident/ --backend hf:out/smollm2-merged
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from agent.errors import ConfigError, UsageError
from finetune.artifacts import read_metadata, write_metadata


def merge_adapter(checkpoint: Path, out: Path, *, models_dir: Path, dtype: str = "float32") -> Path:
    """Base + adapter merged and saved in ``out`` with the adapter's metadata (``merged``)."""
    try:
        import peft
        import torch
        import transformers
    except ImportError:
        raise ConfigError(
            "merging needs the finetune extra: pip install 'rca-agent[finetune]'"
        ) from None
    from agent.summarize.hf_backend import resolve_model

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in dtypes:
        raise UsageError(f"--dtype must be one of {', '.join(dtypes)}, got {dtype!r}")
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not empty; choose a new --out")
    metadata = read_metadata(checkpoint)
    base_path = resolve_model(metadata["base_model"], models_dir)
    base = transformers.AutoModelForCausalLM.from_pretrained(
        base_path, dtype=dtypes[dtype], local_files_only=True
    )
    merged: Any = peft.PeftModel.from_pretrained(base, str(checkpoint)).merge_and_unload()
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
    tokenizer.save_pretrained(out)
    write_metadata(out, {**metadata, "merged": True, "adapter": str(checkpoint.resolve())})
    curve = checkpoint / "loss.png"
    if curve.is_file():
        shutil.copy2(curve, out / curve.name)
    return out
