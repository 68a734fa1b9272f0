"""Settings of incident memory and runbooks (``memory:`` / ``RCA_MEMORY__*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MemorySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="fingerprint every analysis and show similar past ones")
    similar: int = Field(
        3, ge=0, le=20, description="similar past analyses shown in Slack and the report"
    )
    min_similarity: float = Field(
        0.3, ge=0, le=1, description="past analyses less similar than this are not shown"
    )
    prior: bool = Field(
        True,
        description="let a confirmed past root cause with a close fingerprint break a close "
        "call (evidence P1, capped at a fifth of the leader's score)",
    )
    retention_days: float | None = Field(
        365.0,
        gt=0,
        description="fingerprints older than this are forgotten (deleted from memory; the "
        "analyses stay); none: kept for ever",
    )
    runbooks_dir: Path | None = Field(
        None,
        description="folder of Markdown runbooks with front matter (alerts, services, "
        "fault_types); the matching section is cited as R1 (docs/memory.md)",
    )
    embeddings: Literal["none", "openai", "local"] = Field(
        "none",
        description="text embeddings of each analysis's summary and log templates, mixed into "
        "similarity: none, openai (an OpenAI-compatible /v1/embeddings endpoint) or local (a "
        "sentence-transformers directory; needs the [local] extra)",
    )
    embeddings_url: str | None = Field(
        None, description="OpenAI-compatible base URL of the embeddings endpoint (http://host/v1)"
    )
    embeddings_model: str | None = Field(
        None, description="embedding model name the endpoint serves (text-embedding-3-small)"
    )
    embeddings_api_key: SecretStr | None = Field(
        None, description="API key of the embeddings endpoint; optional for local endpoints"
    )
    embeddings_dir: Path | None = Field(
        None, description="local sentence-transformers model directory (nothing is downloaded)"
    )
    embeddings_weight: float = Field(
        0.3, ge=0, le=1, description="how much the text's cosine counts in similarity (0..1)"
    )
    embeddings_timeout_s: float = Field(
        10.0, gt=0, description="per-request timeout of the embeddings endpoint"
    )

    def embeddings_problem(self) -> tuple[str, str] | None:
        """(setting, what is wrong) when the chosen embeddings cannot work, else None."""
        if self.embeddings == "openai":
            for name in ("embeddings_url", "embeddings_model"):
                if not getattr(self, name):
                    return name, "needed when memory.embeddings is openai"
        if self.embeddings == "local":
            if self.embeddings_dir is None:
                return "embeddings_dir", "needed when memory.embeddings is local"
            if not self.embeddings_dir.is_dir():
                return "embeddings_dir", f"{self.embeddings_dir} is not a directory"
        return None
