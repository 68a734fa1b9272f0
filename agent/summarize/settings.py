"""Settings of the summarizer backends (``summarizer:`` / ``RCA_SUMMARIZER__*``). The backend
itself is chosen at the top level (``backend:`` / ``RCA_BACKEND`` / ``--backend``).

Example (YAML)::

    backend: openai
    summarizer:
      model: gpt-4o-mini
      api_key: sk-...            # or RCA_SUMMARIZER__API_KEY
      base_url: http://vllm:8000/v1   # vLLM, Ollama, a gateway; omit for api.openai.com
      redact_patterns: ['cust-[0-9]{8}']
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_PROMPT_TOKENS = 3000


class ModelPrice(BaseModel):
    """US dollars per million tokens; the cost of an analysis is computed from ``usage``."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0, description="USD per 1M prompt tokens")
    output: float = Field(ge=0, description="USD per 1M completion tokens")


def _default_prices() -> dict[str, ModelPrice]:
    # List prices when this table was written; override them in the config, they change.
    return {
        "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
        "gpt-4o": ModelPrice(input=2.50, output=10.00),
        "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
        "gpt-4.1": ModelPrice(input=2.00, output=8.00),
    }


class SummarizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # --- openai (OpenAI, Azure OpenAI, any OpenAI-compatible endpoint) ---
    model: str = Field("gpt-4o-mini", description="model name (Azure: the deployment name)")
    base_url: str | None = Field(
        None, description="OpenAI-compatible base URL (vLLM, Ollama, a gateway); None: OpenAI"
    )
    api_key: SecretStr | None = Field(
        None, description="API key; optional for local endpoints that ignore it"
    )
    azure_endpoint: str | None = Field(
        None, description="Azure OpenAI resource URL; selects the Azure client"
    )
    azure_api_version: str = Field("2024-10-21", description="Azure OpenAI API version")
    response_format: Literal["json_schema", "json_object"] = Field(
        "json_schema",
        description="structured output mode; json_schema falls back to json_object when the "
        "endpoint rejects it",
    )
    timeout_s: float = Field(30.0, gt=0, description="per-request timeout")
    max_retries: int = Field(2, ge=0, le=10, description="retries on 429, 5xx and timeouts")
    prices: dict[str, ModelPrice] = Field(
        default_factory=_default_prices,
        description="USD per 1M tokens by model name (longest prefix wins)",
    )

    # --- shared by the LLM backends ---
    prompt_tokens: int = Field(
        DEFAULT_PROMPT_TOKENS,
        ge=500,
        description=(
            "prompt token budget; evidence is kept in candidate order (each candidate's "
            "strongest first, best candidate first) until it is full"
        ),
    )
    max_new_tokens: int = Field(
        400, ge=16, description="cap on generated tokens (a full answer takes ~150-300)"
    )
    redact_patterns: list[str] = Field(
        default_factory=list,
        description="extra regular expressions whose matches are replaced before any prompt "
        "leaves the process",
    )

    # --- hf (transformers + peft, in-process) ---
    hf_model: str = Field(
        "smollm2",
        description="base model: 'smollm2' (cached by `rca models fetch smollm2`), a local "
        "directory, or a Hugging Face id already in the local cache",
    )
    hf_adapter: Path | None = Field(None, description="LoRA adapter directory (peft)")
    hf_device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where hf runs")
    hf_threads: int | None = Field(
        None, ge=1, description="CPU threads for torch; 1 avoids thrashing on a busy host"
    )
    hf_constrained: bool = Field(
        True,
        description="constrain hf decoding to the answers the guard accepts (valid JSON, "
        "candidate service, existing ids, own evidence cited); false: free greedy decoding",
    )
    hf_redact: bool = Field(
        True, description="redact prompts for the in-process hf backend too (nothing leaves)"
    )
    models_dir: Path | None = Field(
        None, description="model cache of `rca models fetch`; default ~/.cache/rca-agent/models"
    )

    @field_validator("redact_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                message = f"redact pattern {pattern!r} is not a valid regex: {exc}"
                raise ValueError(message) from None
        return patterns

    def resolved_models_dir(self) -> Path:
        return self.models_dir or Path.home() / ".cache" / "rca-agent" / "models"
