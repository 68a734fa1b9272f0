"""Slack's documented Block Kit limits, clipping that marks what it cut, and a validator.

Slack rejects a whole message (``invalid_blocks``) when one element is over its limit, so
an incident post that grew a long log template would silently never arrive. Every text we
build goes through :func:`clip` (plain text) or :func:`clip_mrkdwn` (mrkdwn), which keep
under the limit and end in "…"; the builder adds a visible "(truncated)" note.
:func:`clip_mrkdwn` never ends inside a ``<url|label>`` link or an ``&amp;`` entity: a link
cut anywhere opens the wrong page (a PromQL graph URL cut mid-query is a different query),
so a link that does not fit is dropped whole. :func:`problems` checks a finished message,
for tests and as a last guard before sending.

Limits: https://docs.slack.dev/reference/block-kit/blocks and .../block-elements.
"""

from __future__ import annotations

import re
from typing import Any

MAX_BLOCKS = 50
HEADER_TEXT = 150
SECTION_TEXT = 3000
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3000
BUTTON_TEXT = 75
ACTION_ID = 255
BLOCK_ID = 255
BUTTON_VALUE = 2000
ACTIONS_ELEMENTS = 25
MESSAGE_TEXT = 4000  # chat.postMessage truncates ``text`` beyond 40,000; 4,000 keeps it readable
ELLIPSIS = "…"

# What must stay whole in mrkdwn: links and mentions (<...>) and the entities escape() writes.
_WHOLE = re.compile(r"<[^<>]*>|&(?:amp|lt|gt);")


def clip(text: str, limit: int) -> tuple[str, bool]:
    """``text`` cut to ``limit`` characters ending in "…", and whether it was cut."""
    if len(text) <= limit:
        return text, False
    return text[: limit - 1].rstrip() + ELLIPSIS, True


def clip_mrkdwn(text: str, limit: int) -> tuple[str, bool]:
    """Like :func:`clip`, but the cut moves back to before a link or entity it would split."""
    if len(text) <= limit:
        return text, False
    cut = limit - 1
    for span in _WHOLE.finditer(text):
        if span.start() >= cut:
            break
        if span.end() > cut:
            cut = span.start()
            break
    return text[:cut].rstrip() + ELLIPSIS, True


def escape(text: str) -> str:
    """Slack mrkdwn control characters; also defuses ``<!channel>`` in untrusted log text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: str, label: str) -> str:
    """A mrkdwn link whose URL cannot break out of the ``<url|label>`` syntax."""
    safe = url.replace("|", "%7C").replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    return f"<{safe}|{escape(label)}>"


def _text_of(obj: dict[str, Any] | None) -> str:
    return str((obj or {}).get("text", ""))


def _element_problems(where: str, element: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if element.get("type") == "button":
        if len(_text_of(element.get("text"))) > BUTTON_TEXT:
            out.append(f"{where}: button text over {BUTTON_TEXT}")
        if len(str(element.get("value", ""))) > BUTTON_VALUE:
            out.append(f"{where}: button value over {BUTTON_VALUE}")
    if len(str(element.get("action_id", ""))) > ACTION_ID:
        out.append(f"{where}: action_id over {ACTION_ID}")
    return out


def _block_problems(where: str, block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    out: list[str] = []
    if len(str(block.get("block_id", ""))) > BLOCK_ID:
        out.append(f"{where}: block_id over {BLOCK_ID}")
    if kind == "header" and len(_text_of(block.get("text"))) > HEADER_TEXT:
        out.append(f"{where}: header text over {HEADER_TEXT}")
    if kind == "section":
        if len(_text_of(block.get("text"))) > SECTION_TEXT:
            out.append(f"{where}: section text over {SECTION_TEXT}")
        fields = block.get("fields") or []
        if len(fields) > 10 or any(len(_text_of(f)) > 2000 for f in fields):
            out.append(f"{where}: section fields over 10 or over 2000 characters")
    if kind == "context":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= CONTEXT_ELEMENTS:
            out.append(f"{where}: context needs 1 to {CONTEXT_ELEMENTS} elements")
        if any(len(_text_of(e)) > CONTEXT_TEXT for e in elements):
            out.append(f"{where}: context element text over {CONTEXT_TEXT}")
    if kind == "actions":
        elements = block.get("elements") or []
        if not 1 <= len(elements) <= ACTIONS_ELEMENTS:
            out.append(f"{where}: actions needs 1 to {ACTIONS_ELEMENTS} elements")
        for j, element in enumerate(elements):
            out += _element_problems(f"{where}.elements[{j}]", element)
    return out


def problems(blocks: list[dict[str, Any]], text: str = "") -> list[str]:
    """Every way this message breaks a Slack limit; empty when Slack will accept it."""
    out: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        out.append(f"{len(blocks)} blocks, over {MAX_BLOCKS}")
    if len(text) > MESSAGE_TEXT:
        out.append(f"fallback text over {MESSAGE_TEXT}")
    for i, block in enumerate(blocks):
        out += _block_problems(f"blocks[{i}]", block)
    return out
