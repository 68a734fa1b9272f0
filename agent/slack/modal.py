"""The 👎 modal: which service and fault type it really was, a note, and what fixed it.

What people pick here becomes labelled training data, so the choices are closed lists
(the analysis's candidates first, then every known service; :class:`FaultType`), and the
free text is a note, not the label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.models import Analysis, FaultType
from agent.slack.limits import clip

FEEDBACK_VIEW = "rca_feedback"
SERVICE_BLOCK, SERVICE_ACTION = "actual_service", "service"
FAULT_BLOCK, FAULT_ACTION = "actual_fault_type", "fault_type"
NOTE_BLOCK, NOTE_ACTION = "note", "note"
FIX_BLOCK, FIX_ACTION = "resolution", "resolution"
FIX_URL_BLOCK, FIX_URL_ACTION = "resolution_url", "resolution_url"
OTHER_SERVICE = "__other__"
MAX_OPTIONS = 100
NOTE_MAX = 3000
FIX_MAX = 3000
URL_MAX = 2000


@dataclass(frozen=True)
class FeedbackOrigin:
    """Carried in the modal's ``private_metadata``: what is being rated, where it was shown."""

    analysis_id: str
    channel: str
    message_ts: str | None = None

    def dump(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def load(cls, text: str) -> FeedbackOrigin:
        data = json.loads(text or "{}")
        return cls(str(data["analysis_id"]), str(data["channel"]), data.get("message_ts"))


@dataclass(frozen=True)
class FeedbackAnswer:
    service: str | None
    fault_type: FaultType
    note: str
    resolution: str | None = None
    resolution_url: str | None = None


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": clip(text, 75)[0]}, "value": value[:150]}


def service_choices(analysis: Analysis | None, known_services: Sequence[str]) -> list[str]:
    ranked = [c.service for c in analysis.candidates] if analysis else []
    return list(dict.fromkeys([*ranked, *sorted(known_services)]))[: MAX_OPTIONS - 1]


def feedback_modal(
    origin: FeedbackOrigin, analysis: Analysis | None, known_services: Sequence[str]
) -> dict[str, Any]:
    services = [_option(s, s) for s in service_choices(analysis, known_services)]
    services.append(_option("other (name it in the note)", OTHER_SERVICE))
    faults = [_option(f.value.replace("_", " "), f.value) for f in FaultType]
    return {
        "type": "modal",
        "callback_id": FEEDBACK_VIEW,
        "private_metadata": origin.dump(),
        "title": {"type": "plain_text", "text": "What was it really?"},
        "submit": {"type": "plain_text", "text": "Send feedback"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": SERVICE_BLOCK,
                "label": {"type": "plain_text", "text": "Actual root-cause service"},
                "element": {
                    "type": "static_select",
                    "action_id": SERVICE_ACTION,
                    "options": services,
                },
            },
            {
                "type": "input",
                "block_id": FAULT_BLOCK,
                "label": {"type": "plain_text", "text": "Actual fault type"},
                "element": {"type": "static_select", "action_id": FAULT_ACTION, "options": faults},
            },
            {
                "type": "input",
                "block_id": NOTE_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Note"},
                "element": {
                    "type": "plain_text_input",
                    "action_id": NOTE_ACTION,
                    "multiline": True,
                    "max_length": NOTE_MAX,
                },
            },
            {
                "type": "input",
                "block_id": FIX_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "What fixed it?"},
                "hint": {
                    "type": "plain_text",
                    "text": "Shown when a similar incident comes back.",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": FIX_ACTION,
                    "multiline": True,
                    "max_length": FIX_MAX,
                },
            },
            {
                "type": "input",
                "block_id": FIX_URL_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Postmortem or pull request"},
                "element": {"type": "url_text_input", "action_id": FIX_URL_ACTION},
            },
        ],
    }


def _selected(values: dict[str, Any], block: str, action: str) -> str | None:
    option = (values.get(block, {}).get(action) or {}).get("selected_option") or {}
    value = option.get("value")
    return str(value) if value else None


def read_submission(view: dict[str, Any]) -> tuple[FeedbackAnswer | None, dict[str, str]]:
    """The answer, or per-block errors to show in the modal (Slack's ``response_action``)."""
    values = (view.get("state") or {}).get("values") or {}
    service = _selected(values, SERVICE_BLOCK, SERVICE_ACTION)
    fault = _selected(values, FAULT_BLOCK, FAULT_ACTION)
    note = _text(values, NOTE_BLOCK, NOTE_ACTION)
    fix = _text(values, FIX_BLOCK, FIX_ACTION)
    link = _text(values, FIX_URL_BLOCK, FIX_URL_ACTION)
    errors: dict[str, str] = {}
    if len(fix) > FIX_MAX:
        errors[FIX_BLOCK] = f"At most {FIX_MAX} characters."
    if link and (len(link) > URL_MAX or not link.startswith(("http://", "https://"))):
        errors[FIX_URL_BLOCK] = f"An http(s) link of at most {URL_MAX} characters."
    if service is None:
        errors[SERVICE_BLOCK] = "Pick the service that really caused it."
    elif service == OTHER_SERVICE and not note:
        errors[NOTE_BLOCK] = "Name the service in the note."
    if fault not in {f.value for f in FaultType}:
        errors[FAULT_BLOCK] = "Pick a fault type (unknown is fine)."
    if errors or fault is None:
        return None, errors
    actual = None if service == OTHER_SERVICE else service
    answer = FeedbackAnswer(actual, FaultType(fault), note[:NOTE_MAX], fix or None, link or None)
    return answer, {}


def _text(values: dict[str, Any], block: str, action: str) -> str:
    return str((values.get(block, {}).get(action) or {}).get("value") or "").strip()
