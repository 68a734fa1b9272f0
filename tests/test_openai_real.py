"""The openai backend and memory's OpenAI embedder against a real OpenAI-compatible server,
when one is given; the rest of the suite drives them against the local double
(tests/openai_double.py). Set:

- ``RCA_TEST_OPENAI_URL`` (the base URL, ending in ``/v1``) and, if it needs one,
  ``RCA_TEST_OPENAI_API_KEY``;
- ``RCA_TEST_OPENAI_CHAT_MODEL`` for the summarizer test, ``RCA_TEST_OPENAI_EMBEDDINGS_MODEL``
  for the embeddings test.

Without them these tests skip: no real server can run on the development machine.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import build_analysis

from agent.config import Settings
from agent.memory.embed import OpenAIEmbedder
from agent.memory.settings import MemorySettings
from agent.summarize.factory import build_summarizer
from agent.summarize.settings import SummarizerSettings

URL = os.environ.get("RCA_TEST_OPENAI_URL", "")
KEY = os.environ.get("RCA_TEST_OPENAI_API_KEY") or None
CHAT_MODEL = os.environ.get("RCA_TEST_OPENAI_CHAT_MODEL", "")
EMBEDDINGS_MODEL = os.environ.get("RCA_TEST_OPENAI_EMBEDDINGS_MODEL", "")


@pytest.mark.skipif(not (URL and CHAT_MODEL), reason="RCA_TEST_OPENAI_URL/CHAT_MODEL not set")
def test_a_real_server_summarizes_citing_only_the_evidence_it_was_given() -> None:
    summarizer = SummarizerSettings.model_validate(
        {"model": CHAT_MODEL, "base_url": URL, "api_key": KEY, "timeout_s": 60.0}
    )
    built = build_summarizer(Settings(backend="openai", summarizer=summarizer))
    draft = build_analysis()
    summary = built.summarize(draft)
    assert summary.backend == "openai"
    assert summary.fallback is None, f"fell back to extractive: {summary.fallback}"
    given = {e.id for e in draft.evidence}
    assert summary.evidence_ids and set(summary.evidence_ids) <= given
    assert summary.tokens["prompt"] > 0 and summary.tokens["completion"] > 0


@pytest.mark.skipif(
    not (URL and EMBEDDINGS_MODEL), reason="RCA_TEST_OPENAI_URL/EMBEDDINGS_MODEL not set"
)
def test_a_real_server_embeds_near_texts_closer_than_unrelated_ones() -> None:
    settings = MemorySettings.model_validate(
        {
            "embeddings": "openai",
            "embeddings_url": URL,
            "embeddings_model": EMBEDDINGS_MODEL,
            "embeddings_api_key": KEY,
            "embeddings_timeout_s": 30.0,
        }
    )
    embedder = OpenAIEmbedder.from_settings(settings)
    pool = embedder.embed("checkout: connection pool exhausted, 40 of 40 connections in use")
    again = embedder.embed("checkout: the connection pool is exhausted, all connections in use")
    disk = embedder.embed("the nightly backup job wrote its report to the shared drive")
    assert pool.dtype == np.float32 and abs(float(np.linalg.norm(pool)) - 1.0) < 1e-5
    assert float(pool @ again) > float(pool @ disk)
