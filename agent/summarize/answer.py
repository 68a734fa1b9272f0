"""The JSON a model must answer with: one schema for every LLM backend and for fine-tuning.

The schema is deliberately small (a 135M-parameter model must be able to fill it) and has no
times: timeline times come from the cited evidence, so a model cannot invent them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.models import Analysis, FaultType
from agent.summarize.spec import AnswerSpec


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RootCauseAnswer(_Answer):
    service: str = Field(min_length=1)
    fault_type: FaultType
    summary: str = Field(min_length=1, description="one or two sentences citing evidence ids")


class TimelineAnswer(_Answer):
    evidence_id: str
    text: str = Field(min_length=1)


class ModelAnswer(_Answer):
    root_cause: RootCauseAnswer
    confidence: float = Field(ge=0, le=1)
    evidence_ids: list[str] = Field(min_length=1)
    timeline: list[TimelineAnswer] = Field(max_length=12)
    next_steps: list[str] = Field(max_length=6)
    alternatives: list[str] = Field(max_length=4)


def _strict(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's strict mode: every object closed and every property required."""
    if schema.get("type") == "object" and "properties" in schema:
        schema["additionalProperties"] = False
        schema["required"] = list(schema["properties"])
    for value in schema.values():
        if isinstance(value, dict):
            _strict(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    _strict(item)
    return schema


def _without(schema: Any, keys: frozenset[str]) -> Any:
    if isinstance(schema, dict):
        return {k: _without(v, keys) for k, v in schema.items() if k not in keys}
    if isinstance(schema, list):
        return [_without(v, keys) for v in schema]
    return schema


def answer_schema(spec: AnswerSpec | None = None) -> dict[str, Any]:
    """JSON schema of :class:`ModelAnswer` in the subset OpenAI's ``json_schema`` accepts.

    With a spec, the service, fault type and evidence ids are ``enum``s of what it allows, so
    an endpoint that decodes against the schema (vLLM, OpenAI strict mode) cannot misspell a
    service or invent an id. Citations inside text and the own-evidence rule stay the guard's.
    """
    unsupported = frozenset({"title", "minLength", "maxLength", "minItems", "maxItems"})
    schema = _strict(_without(ModelAnswer.model_json_schema(), unsupported))
    if spec is not None:
        defs = schema["$defs"]
        defs["RootCauseAnswer"]["properties"]["service"]["enum"] = list(spec.services)
        defs["FaultType"]["enum"] = list(spec.fault_types)
        defs["TimelineAnswer"]["properties"]["evidence_id"]["enum"] = list(spec.evidence_ids)
        schema["properties"]["evidence_ids"]["items"]["enum"] = list(spec.evidence_ids)
    return schema


def response_format(mode: str, spec: AnswerSpec | None = None) -> dict[str, Any]:
    """The ``response_format`` request field for ``json_schema`` or ``json_object`` mode."""
    if mode == "json_schema":
        schema = answer_schema(spec)
        return {
            "type": "json_schema",
            "json_schema": {"name": "rca_summary", "strict": True, "schema": schema},
        }
    return {"type": "json_object"}


_CITED = re.compile(r"\[([A-Z]\d+)\]")


def answer_for(analysis: Analysis) -> ModelAnswer | None:
    """The answer a model should have given for a finished analysis (fine-tuning targets).

    Citations are those of the analysis' summary text; a root-cause summary without any (the
    extractive headline) gets them appended, so the target passes the guard.
    """
    root = analysis.root_cause
    if root is None:
        return None
    known = {e.id for e in analysis.evidence}
    cited = [i for i in dict.fromkeys(_CITED.findall(analysis.summary)) if i in known]
    summary = root.summary
    if not _CITED.search(summary) and cited:
        summary += " Evidence: " + " ".join(f"[{i}]" for i in cited) + "."
    return ModelAnswer(
        root_cause=RootCauseAnswer(
            service=root.service, fault_type=root.fault_type, summary=summary
        ),
        confidence=analysis.confidence,
        evidence_ids=cited or [i for i in _CITED.findall(summary) if i in known],
        timeline=[
            TimelineAnswer(evidence_id=t.evidence_id, text=t.text)
            for t in analysis.timeline[:12]
            if t.evidence_id in known
        ],
        next_steps=analysis.next_steps[:6],
        alternatives=analysis.alternatives[:4],
    )
