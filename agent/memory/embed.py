"""Optional text embeddings of an analysis, mixed into incident memory's similarity.

What is embedded: the analysis's summary and its masked log templates (the fingerprint's,
already redacted), the summary redacted like a prompt, clipped to :data:`MAX_TEXT_CHARS`.
Two backends behind one small protocol, both returning L2-normalized ``float32`` vectors:

- :class:`OpenAIEmbedder`: any OpenAI-compatible ``/v1/embeddings`` endpoint, through the
  ``openai`` SDK (``memory.embeddings: openai``);
- :class:`LocalEmbedder`: a sentence-transformers model directory read with plain
  ``transformers`` (the ``[local]`` extra), pooled as its ``1_Pooling/config.json`` says;
  nothing is downloaded (``memory.embeddings: local``).

An embedder that fails raises :class:`~agent.errors.SourceError` (source ``embeddings``);
:func:`embed_analysis` turns that into a warning and no vector, so an analysis never fails
for it and memory falls back to the fingerprint alone.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from agent.errors import ConfigError, SourceError
from agent.memory.settings import MemorySettings

if TYPE_CHECKING:
    import openai

log = logging.getLogger("rca.memory")

MAX_TEXT_CHARS = 4000  # about 1,000 tokens: the summary and the first templates
MAX_LOCAL_TOKENS = 512
MAX_DIMENSIONS = 8192  # the largest models give 4,096; more is a broken or hostile endpoint
POOLING_MODES = ("mean", "cls", "max")


class Embedder(Protocol):
    """Text -> a unit vector. ``name`` is stored beside each vector: vectors of two models
    are never compared."""

    name: str

    def embed(self, text: str) -> np.ndarray: ...


@dataclass(frozen=True)
class Embedding:
    model: str
    vector: np.ndarray  # float32, unit length

    def to_bytes(self) -> bytes:
        """Little-endian float32: 1.5 KB for 384 dimensions, a quarter of JSON's size."""
        return self.vector.astype("<f4").tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


def unit(values: Any) -> np.ndarray:
    """``values`` as a unit float32 vector; an empty, zero, non-finite or non-numeric one is
    an error."""
    try:
        vector = np.asarray(values, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise SourceError("embeddings", "the embedding is not a list of numbers") from None
    if vector.size > MAX_DIMENSIONS:
        raise SourceError(
            "embeddings", f"the embedding has {vector.size} dimensions, over {MAX_DIMENSIONS}"
        )
    norm = float(np.linalg.norm(vector)) if vector.size else 0.0
    if not np.isfinite(vector).all() or norm == 0.0:
        raise SourceError("embeddings", "the embedding is empty, zero or not finite")
    return vector / norm


def cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """Cosine of two unit vectors clipped to [0, 1]; None when their sizes differ."""
    if a.shape != b.shape:
        return None
    return min(1.0, max(0.0, float(np.dot(a, b))))


def hybrid(jaccard: float, cos: float, weight: float) -> float:
    """The fingerprint's weighted Jaccard with the text's cosine mixed in at ``weight``."""
    return round((1.0 - weight) * jaccard + weight * cos, 4)


def embedding_text(summary: str, templates: Iterable[str], redact: Callable[[str], str]) -> str:
    """The summary (redacted) and the masked templates, one per line, clipped."""
    lines = [redact(summary).strip(), *templates]
    return "\n".join(line for line in lines if line)[:MAX_TEXT_CHARS]


def embed_analysis(embedder: Embedder, text: str) -> tuple[Embedding | None, str | None]:
    """(the embedding, None), or (None, why not): a failing embedder only logs a warning."""
    try:
        return Embedding(embedder.name, embedder.embed(text)), None
    except SourceError as exc:
        problem = exc.message[:200]
        log.warning("no text embedding, memory uses the fingerprint only: %s", problem)
        return None, problem


class OpenAIEmbedder:
    """``client.embeddings.create`` of the ``openai`` SDK; its client carries the timeout."""

    def __init__(self, client: openai.OpenAI, model: str) -> None:
        self.client = client
        self.model = model
        self.name = f"openai:{model}"

    @classmethod
    def from_settings(cls, settings: MemorySettings) -> OpenAIEmbedder:
        import openai

        key = settings.embeddings_api_key
        client = openai.OpenAI(
            api_key=key.get_secret_value() if key else "not-needed",  # local servers ignore it
            base_url=settings.embeddings_url,
            timeout=settings.embeddings_timeout_s,
            max_retries=1,
        )
        return cls(client, settings.embeddings_model or "")

    def embed(self, text: str) -> np.ndarray:
        import openai

        try:
            response = self.client.embeddings.create(
                model=self.model, input=[text], encoding_format="float"
            )
        except openai.OpenAIError as exc:
            raise SourceError("embeddings", f"{type(exc).__name__}: {exc}") from None
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != 1:
            count = len(data) if isinstance(data, list) else "no"
            raise SourceError("embeddings", f"{count} embeddings in the answer for one text")
        return unit(getattr(data[0], "embedding", None))


def _pooling_mode(config: dict[str, Any]) -> str:
    """The mode a sentence-transformers ``1_Pooling/config.json`` names (mean by default)."""
    for mode, key in (
        ("cls", "pooling_mode_cls_token"),
        ("max", "pooling_mode_max_tokens"),
        ("mean", "pooling_mode_mean_tokens"),
    ):
        if config.get(key):
            return mode
    return "mean"


def _layout(directory: Path) -> tuple[Path, str]:
    """The transformer's folder and the pooling mode, from ``modules.json`` when present."""
    model_dir, pooling_dir = directory, directory / "1_Pooling"
    modules = directory / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text()):
            kind = str(module.get("type", ""))
            if kind.endswith("Transformer"):
                model_dir = directory / str(module.get("path", ""))
            elif kind.endswith("Pooling"):
                pooling_dir = directory / str(module.get("path", ""))
    config = pooling_dir / "config.json"
    mode = _pooling_mode(json.loads(config.read_text())) if config.is_file() else "mean"
    return model_dir, mode


class LocalEmbedder:
    """A sentence-transformers directory through ``transformers`` (AutoTokenizer, AutoModel,
    ``local_files_only``), loaded on first use; ``pooling`` overrides the directory's."""

    def __init__(self, directory: Path, pooling: str | None = None) -> None:
        if pooling is not None and pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {', '.join(POOLING_MODES)}, not {pooling!r}")
        self.directory = directory
        self.pooling = pooling
        self.name = f"local:{directory.name}"
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, str] | None = None

    def _load(self) -> tuple[Any, Any, str]:
        if self._loaded is None:
            from transformers import AutoModel, AutoTokenizer

            try:
                model_dir, mode = _layout(self.directory)
                tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
                model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
            except (OSError, ValueError) as exc:  # JSONDecodeError is a ValueError
                raise SourceError("embeddings", f"cannot load {self.directory}: {exc}") from None
            self._loaded = (tokenizer, model, self.pooling or mode)
        return self._loaded

    def embed(self, text: str) -> np.ndarray:
        import torch

        with self._lock:
            tokenizer, model, mode = self._load()
            limit = min(int(getattr(tokenizer, "model_max_length", MAX_LOCAL_TOKENS)), 512)
            try:
                batch = tokenizer(text, truncation=True, max_length=limit, return_tensors="pt")
                with torch.no_grad():
                    hidden = model(**batch).last_hidden_state[0]
            except (RuntimeError, ValueError) as exc:
                raise SourceError("embeddings", f"local model failed: {exc}") from None
        mask = batch["attention_mask"][0].bool()
        if mode == "cls":
            pooled = hidden[0]
        elif mode == "max":
            pooled = hidden[mask].max(dim=0).values
        else:
            pooled = hidden[mask].mean(dim=0)
        return unit(pooled.float().numpy())


def build_embedder(settings: MemorySettings) -> Embedder | None:
    """The configured embedder, or None (``memory.embeddings: none``); nothing is called
    yet. ``local`` without ``transformers`` installed is a configuration error."""
    if settings.embeddings == "openai":
        return OpenAIEmbedder.from_settings(settings)
    if settings.embeddings == "local" and settings.embeddings_dir is not None:
        if importlib.util.find_spec("transformers") is None or not importlib.util.find_spec(
            "torch"
        ):
            raise ConfigError(
                "memory.embeddings: local needs transformers and torch: "
                "pip install 'rca-agent[local]', or set memory.embeddings to openai or none"
            )
        return LocalEmbedder(settings.embeddings_dir)
    return None
