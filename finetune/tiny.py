"""A tiny randomly initialized Llama and a byte-level BPE tokenizer with a chat template, built
in seconds without downloads: for the tests and for ``finetune/gpu_check.py``.

Too small to learn anything useful, large enough to exercise every code path of training,
saving, reloading, merging and serving an adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.examples import Example

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    '{"root_cause": {"service": "payments", "fault_type": "memory_leak", "summary": "x"}}',
    '"confidence": 0.5, "evidence_ids": ["M1", "L1"], "timeline": [], "next_steps": []',
    "payments checkout frontend memory latency evidence incident service [M1] [L1] [M2]",
]


def tiny_tokenizer(vocab_size: int = 400) -> Any:
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    raw.train_from_iterator(_CORPUS * 20, trainer)
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide Llama and its tokenizer in ``directory``."""
    import torch
    import transformers

    tokenizer = tiny_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16384,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    transformers.LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def toy_examples(answer: str, count: int, cited: str, prompt_tokens: int) -> list[Example]:
    """``count`` short chat examples of simulated incidents, each answered with ``answer``."""
    return [
        Example(
            id=f"sim:sim-{i}:x",
            incident=f"sim-{i}",
            source="sim",
            service="payments",
            fault_type="memory_leak",
            messages=[
                {"role": "system", "content": "Answer with JSON."},
                {"role": "user", "content": f"incident {i}: payments memory {cited}"},
                {"role": "assistant", "content": answer},
            ],
            prompt_tokens=prompt_tokens,
        )
        for i in range(count)
    ]
