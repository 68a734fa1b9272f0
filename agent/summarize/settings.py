"""Settings of the summarizer backends (``summarizer:`` / ``RCA_SUMMARIZER__*``). The backend
itself is chosen at the top level (``backend:`` / ``RCA_BACKEND`` / ``--backend``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class SummarizerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
