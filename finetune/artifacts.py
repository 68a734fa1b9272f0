"""What a training run leaves behind besides the adapter: ``metadata.json`` (where the weights
came from and how they were made) and ``loss.png`` (training and validation loss curves).

The metadata is what later steps trust: ``eval`` reads the base model, prompt budget and train
seeds from it (to refuse evaluating on training seeds), ``merge`` and ``promote`` read the base.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from agent.errors import UsageError

METADATA_FILE = "metadata.json"
CURVE_FILE = "loss.png"


def git_commit(cwd: Path | None = None) -> str | None:
    """The checked-out commit, with ``-dirty`` when the tree has changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if dirty else "")


def base_revision(model_path: str) -> str:
    """A stable name for the exact base weights.

    A hub snapshot is named by its commit; a model from ``rca models fetch`` by the sha256 of the
    GGUF it was converted from; any other directory by the sha256 of its config and the sizes of
    its weight files (cheap, and it changes when the weights are replaced).
    """
    path = Path(model_path)
    if path.parent.name == "snapshots":
        return f"hub:{path.name}"
    marker = path / "rca-model.json"
    if marker.is_file():
        data = json.loads(marker.read_text(encoding="utf-8"))
        return f"gguf-sha256:{data.get('gguf_sha256', '?')}"
    digest = hashlib.sha256()
    config = path / "config.json"
    if config.is_file():
        digest.update(config.read_bytes())
    for weights in sorted(path.glob("*.safetensors")):
        digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return f"dir-sha256:{digest.hexdigest()[:16]}"


def write_metadata(directory: Path, metadata: dict[str, Any]) -> Path:
    path = directory / METADATA_FILE
    path.write_text(json.dumps(metadata, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def read_metadata(checkpoint: Path) -> dict[str, Any]:
    """The metadata of a trained adapter; a clear error for anything else."""
    if not (checkpoint / "adapter_config.json").is_file():
        raise UsageError(f"{checkpoint} is not a LoRA adapter directory (no adapter_config.json)")
    path = checkpoint / METADATA_FILE
    if not path.is_file():
        raise UsageError(
            f"{checkpoint} has no {METADATA_FILE}: was it made by `rca finetune train`?"
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def loss_points(log_history: list[dict[str, Any]]) -> tuple[list[tuple[int, float]], ...]:
    """(step, loss) for training and for validation, from the trainer's log history."""
    train = [(int(e["step"]), float(e["loss"])) for e in log_history if "loss" in e]
    val = [(int(e["step"]), float(e["eval_loss"])) for e in log_history if "eval_loss" in e]
    return train, val


def write_loss_curve(log_history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Training and validation loss against optimizer steps."""
    from matplotlib.figure import Figure

    train, val = loss_points(log_history)
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation", linewidth=1.5)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (answer tokens)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(frameon=False)
    fig.savefig(path, format="png", dpi=110)
    return path
