"""Settings of the HTTP service (``rca serve``). The database URL and the tokens live at the
top level of :class:`agent.config.Settings` (``RCA_DATABASE_URL``, ``RCA_API_TOKENS``,
``RCA_WEBHOOK_TOKEN``); the rest sits under ``service:`` / ``RCA_SERVICE__*``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=1, le=65535, description="port to listen on")
