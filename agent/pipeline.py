"""The analysis pipeline over a snapshot: detect -> rank -> summarize.

Placeholder body until the engine lands; the signature is the contract.
"""

from __future__ import annotations

from agent.config import EngineSettings
from agent.models import Analysis, Trigger
from agent.snapshot import Snapshot


def analyze(
    snapshot: Snapshot, settings: EngineSettings | None = None, trigger: Trigger | None = None
) -> Analysis:
    raise NotImplementedError
