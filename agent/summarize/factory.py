"""Pick the summarizer from settings or ``--backend``.

Backend specs: ``extractive``; ``openai`` (or ``openai:MODEL`` to override
``summarizer.model``); ``hf`` (``summarizer.hf_model`` + ``hf_adapter``) or
``hf:BASE[+ADAPTER]`` where BASE is ``smollm2``, a model directory or a cached Hugging Face id
and ADAPTER a LoRA adapter directory. A plain ``hf`` with no ``summarizer.hf_adapter`` serves
the adapter ``rca finetune promote`` recorded (``<data_dir>/served-adapter.json``), with the
prompt budget it was trained at. Examples::

    rca analyze incident/ --backend openai
    rca eval --suite sim --seeds 30000-30049 --backend hf:smollm2+out/lora
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.config import Settings
from agent.errors import UsageError
from agent.summarize import Summarizer
from agent.summarize.extractive import ExtractiveSummarizer
from agent.summarize.guard import GuardedSummarizer
from agent.summarize.redact import Redactor

BACKEND_HELP = "extractive | openai[:MODEL] | hf | hf:BASE[+ADAPTER]"
SERVED_ADAPTER_FILE = "served-adapter.json"


def served_adapter(data_dir: Path) -> dict[str, Any] | None:
    """What ``rca finetune promote`` recorded as the served adapter, if anything."""
    path = data_dir / SERVED_ADAPTER_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is unreadable ({exc}); promote an adapter again") from None
    if not isinstance(record, dict) or not {"base_model", "adapter"} <= record.keys():
        raise UsageError(f"{path} lacks base_model/adapter; promote an adapter again")
    return record


def build_summarizer(settings: Settings, backend: str | None = None) -> Summarizer:
    """The summarizer for ``backend`` (default: ``settings.backend``), guards included."""
    spec = (backend or settings.backend).strip()
    kind, _, arg = spec.partition(":")
    cfg = settings.summarizer
    if kind == "extractive" and not arg:
        return ExtractiveSummarizer()
    if kind == "openai":
        from agent.summarize.openai_backend import OpenAIBackend

        if arg:
            cfg = cfg.model_copy(update={"model": arg})
        remote = OpenAIBackend(cfg)
        return GuardedSummarizer(
            remote, prompt_tokens=cfg.prompt_tokens, redact=Redactor(cfg.redact_patterns)
        )
    if kind == "hf":
        from agent.summarize.hf_backend import HfBackend, resolve_model

        served = None if arg or cfg.hf_adapter else served_adapter(settings.data_dir)
        if served is not None:
            base, adapter = str(served["base_model"]), str(served["adapter"])
            budget = served.get("prompt_tokens_budget")
            if isinstance(budget, int):
                cfg = cfg.model_copy(update={"prompt_tokens": budget})
        else:
            base, _, adapter = arg.partition("+") if arg else (cfg.hf_model, "", "")
        adapter_dir = Path(adapter) if adapter else (None if arg else cfg.hf_adapter)
        local = HfBackend(
            resolve_model(base, cfg.resolved_models_dir()),
            adapter=adapter_dir,
            device=cfg.hf_device,
            max_new_tokens=cfg.max_new_tokens,
            threads=cfg.hf_threads,
            constrained=cfg.hf_constrained,
            name=f"hf:{base}" + (f"+{adapter_dir}" if adapter_dir else ""),
        )
        redact = Redactor(cfg.redact_patterns) if cfg.hf_redact else None
        return GuardedSummarizer(local, prompt_tokens=cfg.prompt_tokens, redact=redact)
    raise UsageError(f"unknown summarizer backend {spec!r}: use {BACKEND_HELP}")
