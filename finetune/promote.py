"""``rca finetune promote``: make a checkpoint the served adapter, only if it earns it.

The candidate and the current served adapter (or, before any promotion, the bare base model)
are scored on the configured eval (``finetune/configs/promotion.yaml``: suite, seeds, metric,
margin, quality floors). The candidate is promoted only when its metric beats the current one
by the margin *and* it clears the floors on valid output and citation validity; otherwise the
command prints why and changes nothing. Promotion copies the adapter under
``<data_dir>/adapters/`` (checkpoint folders get cleaned up; the served copy must not) and
rewrites the pointer ``<data_dir>/served-adapter.json``, which is what the ``hf`` backend loads
when ``summarizer.hf_adapter`` is not set. Example::

    rca finetune promote out/smollm2-lora
    rca finetune promote out/smollm2-lora --seeds 30000-30199 --margin 0.02
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError, RcaError
from agent.summarize.factory import SERVED_ADAPTER_FILE, served_adapter
from evals.metrics import SummarizerMetrics
from finetune.artifacts import read_metadata

DEFAULT_POLICY = Path(__file__).parent / "configs" / "promotion.yaml"
METRICS = ("root_cause_accuracy", "valid_output_rate", "citation_validity", "top1_agreement")


class PromotionRefused(RcaError):
    """The candidate did not beat the served adapter; nothing was changed."""


@dataclass(frozen=True)
class PromotionPolicy:
    """The configured eval and the bar a candidate must clear."""

    suite: str = "sim"
    seeds: str | None = "30000-30099"
    services: int | None = None
    metric: str = "root_cause_accuracy"
    margin: float = 0.0
    min_valid_output_rate: float = 0.99
    min_citation_validity: float = 0.95

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"promotion metric must be one of {', '.join(METRICS)}")
        if not -1 <= self.margin <= 1:
            raise ConfigError(f"promotion margin must be in [-1, 1], got {self.margin}")
        for name in ("min_valid_output_rate", "min_citation_validity"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1]")


def load_policy(path: Path | None = None, **overrides: Any) -> PromotionPolicy:
    path = path or DEFAULT_POLICY
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"promotion policy {path}: {exc}") from None
    values.update({k: v for k, v in overrides.items() if v is not None})
    names = {f.name for f in dataclasses.fields(PromotionPolicy)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"promotion policy {path}: unknown keys {', '.join(unknown)}")
    return PromotionPolicy(**values)


def pointer_path(data_dir: Path) -> Path:
    return data_dir / SERVED_ADAPTER_FILE


def _score(metrics: SummarizerMetrics, metric: str) -> float:
    value = getattr(metrics, metric)
    return 0.0 if value is None else float(value)


def refusals(
    candidate: SummarizerMetrics, current: SummarizerMetrics, policy: PromotionPolicy
) -> list[str]:
    """Why ``candidate`` must not replace ``current``; empty when it may."""
    reasons = []
    new, old = _score(candidate, policy.metric), _score(current, policy.metric)
    if not new > old + policy.margin:
        reasons.append(
            f"{policy.metric} {new:.3f} does not beat the served {old:.3f} "
            f"by more than the margin {policy.margin:+.3f}"
        )
    if candidate.valid_output_rate < policy.min_valid_output_rate:
        reasons.append(
            f"valid-output rate {candidate.valid_output_rate:.3f} is below "
            f"{policy.min_valid_output_rate:.3f}"
        )
    citations = candidate.citation_validity or 0.0
    if citations < policy.min_citation_validity:
        reasons.append(
            f"citation validity {citations:.3f} is below {policy.min_citation_validity:.3f}"
        )
    return reasons


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reasons: list[str]
    candidate: SummarizerMetrics
    current: SummarizerMetrics
    current_spec: str
    pointer: Path | None = None


# spec -> metrics on the policy's eval (finetune.cli wires it to finetune.evaluate)
Scorer = Callable[[str, Path | None], SummarizerMetrics]


def promote(checkpoint: Path, policy: PromotionPolicy, data_dir: Path, score: Scorer) -> Decision:
    """Score candidate and served adapter with ``score``; promote only past the bar."""
    meta = read_metadata(checkpoint)
    served = served_adapter(data_dir)
    base = meta["base_model"]
    current_spec = f"hf:{served['base_model']}+{served['adapter']}" if served else f"hf:{base}"
    current = score(current_spec, Path(served["adapter"]) if served else None)
    candidate = score(f"hf:{base}+{checkpoint}", checkpoint)
    reasons = refusals(candidate, current, policy)
    if reasons:
        return Decision(False, reasons, candidate, current, current_spec)
    pointer = _install(checkpoint, meta, data_dir, policy, candidate, served)
    return Decision(True, [], candidate, current, current_spec, pointer)


def _install(
    checkpoint: Path,
    meta: dict[str, Any],
    data_dir: Path,
    policy: PromotionPolicy,
    metrics: SummarizerMetrics,
    previous: dict[str, Any] | None,
) -> Path:
    """Copy the adapter (not its resume checkpoints) and swap the pointer atomically."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = data_dir / "adapters" / f"{checkpoint.name}-{meta['dataset_hash'][:8]}-{stamp}"
    shutil.copytree(checkpoint, target, ignore=shutil.ignore_patterns("checkpoints"))
    pointer = {
        "adapter": str(target.resolve()),
        "base_model": meta["base_model"],
        "prompt_tokens_budget": meta["prompt_tokens_budget"],
        "source_checkpoint": str(checkpoint.resolve()),
        "promoted_at": stamp,
        "policy": dataclasses.asdict(policy),
        "metrics": metrics.model_dump(),
        "previous": {k: v for k, v in (previous or {}).items() if k != "previous"} or None,
    }
    path = pointer_path(data_dir)
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(pointer, indent=2) + "\n", encoding="utf-8")
    partial.replace(path)
    return path
