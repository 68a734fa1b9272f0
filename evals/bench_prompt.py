"""Prompt size per analysis on simulated incidents: the numbers behind docs/benchmarks.md.

For each seed: simulate a ``--services``-service incident, analyze it, build the shared LLM
prompt under the default budget, and count its tokens two ways: the conservative estimate the
``openai`` backend uses, and (when ``rca models fetch smollm2`` has run) SmolLM2's own
tokenizer as the ``hf`` backend does. Prints p50/p95/max and how much evidence was dropped::

    python -m evals.bench_prompt --seeds 30000-30049 --services 50
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent.engine.pipeline import analyze
from agent.summarize.prompt import Message, build_prompt, estimate_tokens
from agent.summarize.redact import Redactor
from agent.summarize.settings import DEFAULT_PROMPT_TOKENS, SummarizerSettings
from evals.runner import parse_seed_range
from evals.simulator import simulate


def _smollm2_counter() -> Callable[[Sequence[Message]], int] | None:
    from agent.summarize.hf_backend import ALIASES

    path = SummarizerSettings().resolved_models_dir() / ALIASES["smollm2"]
    try:
        from transformers import AutoTokenizer
    except ImportError:
        return None
    if not (path / "config.json").is_file():
        return None
    tokenizer: Any = AutoTokenizer.from_pretrained(path, local_files_only=True)

    def count(messages: Sequence[Message]) -> int:
        encoded = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_dict=True
        )
        return len(encoded["input_ids"])

    return count


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="30000-30049")
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--budget", type=int, default=DEFAULT_PROMPT_TOKENS)
    args = parser.parse_args(argv)
    counters: dict[str, Callable[[Sequence[Message]], int]] = {"estimate": estimate_tokens}
    smollm2 = _smollm2_counter()
    if smollm2 is not None:
        counters["smollm2"] = smollm2
    rows: dict[str, list[tuple[int, int, int, int]]] = {name: [] for name in counters}
    redact = Redactor()
    for seed in parse_seed_range(args.seeds):
        snapshot = simulate(seed, services=args.services).snapshot
        draft = analyze(snapshot.model_copy(update={"ground_truth": None}))
        for name, count in counters.items():
            full = build_prompt(draft, budget=10**9, count_tokens=count, redact=redact)
            fitted = build_prompt(draft, budget=args.budget, count_tokens=count, redact=redact)
            rows[name].append(
                (fitted.tokens, full.tokens, len(fitted.evidence_ids), len(fitted.dropped_ids))
            )
    print(f"seeds {args.seeds}, {args.services} services, budget {args.budget} tokens")
    for name, values in rows.items():
        sent = np.array([r[0] for r in values])
        full = np.array([r[1] for r in values])
        dropped = sum(r[3] for r in values)
        total = sum(r[2] + r[3] for r in values)
        print(
            f"{name:>9}: prompt p50 {np.percentile(sent, 50):.0f} p95 "
            f"{np.percentile(sent, 95):.0f} max {sent.max()} | untrimmed p50 "
            f"{np.percentile(full, 50):.0f} p95 {np.percentile(full, 95):.0f} | evidence "
            f"dropped {dropped}/{total} in {sum(1 for r in values if r[3])}/{len(values)} cases"
        )


if __name__ == "__main__":
    main()
