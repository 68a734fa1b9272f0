"""The canonical JSON of one valid answer, checked character by character as it is written.

:class:`AnswerGrammar` accepts exactly the texts that ``json.dumps(answer.model_dump(mode=
"json"), ensure_ascii=False)`` gives for a :class:`~agent.summarize.answer.ModelAnswer` that
the guard (:func:`~agent.summarize.guard.check_answer`) accepts under an
:class:`~agent.summarize.spec.AnswerSpec`, minus a few things no good answer needs. It is the
training format byte for byte (keys in schema order, ``", "`` and ``": "``), so a model tuned
on it is never pushed off its own habits, and every prefix it accepts can still be completed:

* enums: the root-cause service, the fault type, ``evidence_ids`` items (no repeats) and
  timeline ``evidence_id`` come from the spec;
* free text: a ``[`` opens a citation that must be a citable id closed by ``]``; no ``]`` or
  ``\\`` of its own, no control characters (so no escape is ever needed), and no ``"``
  except the closing one; no link (``http://``, ``www.``, ``](``, ``<a ``); not empty;
* the summary cannot close before it cites an id, and when it cites none of the chosen
  service's evidence the ``evidence_ids`` list cannot end before one of them is in it;
* ``confidence`` is 0 to 1 with at most three decimals;
* a text past its length limit may only finish a citation (or, for an uncited summary, start
  one) and close; lists end at their item limits.

:meth:`AnswerState.closing` is the shortest way to finish from any state, which is what lets
a decoder (:mod:`agent.summarize.guide`) always finish inside its token cap.
"""

from __future__ import annotations

import re

from agent.summarize.spec import AnswerSpec

# guard._LINK, plus the replacement character: a byte-level decoder shows the first byte of a
# split character as U+FFFD, and "<a" + U+00A0 written that way must not slip through.
_LINK = re.compile(r"(?i)https?://|www\.|\]\(|<a[\s\ufffd]")
_LINK_TAIL = len("https://")
_NUMBER_PREFIX = re.compile(r"[01]|0\.\d{0,3}|1\.0{0,3}")
_NUMBER = re.compile(r"[01]|0\.\d{1,3}|1\.0{1,3}")
_FORBIDDEN_IN_TEXT = frozenset('\\]"\x7f') | frozenset(chr(i) for i in range(32))

# Literal nodes: their options, closing option first: (text, next node, condition).
# Conditions: "" always, "more" the current list has room, "owned" the answer already cites
# evidence of the root-cause service.
_LITERALS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "start": (('{"root_cause": {"service": "', "service", ""),),
    "after_service": (('", "fault_type": "', "fault", ""),),
    "after_fault": (('", "summary": "', "summary", ""),),
    "after_summary": (('"}, "confidence": ', "confidence", ""),),
    "after_confidence": ((', "evidence_ids": ["', "evidence", ""),),
    "after_evidence": (('"], "timeline": [', "timeline", "owned"), ('", "', "evidence", "more")),
    "timeline": (("]", "after_timeline", ""), ('{"evidence_id": "', "event_id", "more")),
    "after_event_id": (('", "text": "', "event_text", ""),),
    "after_event": (('"}]', "after_timeline", ""), ('"}, {"evidence_id": "', "event_id", "more")),
    "after_timeline": ((', "next_steps": [', "steps", ""),),
    "steps": (("]", "after_steps", ""), ('"', "step", "more")),
    "after_step": (('"]', "after_steps", ""), ('", "', "step", "more")),
    "after_steps": ((', "alternatives": [', "alternatives", ""),),
    "alternatives": (("]", "end", ""), ('"', "alternative", "more")),
    "after_alternative": (('"]', "end", ""), ('", "', "alternative", "more")),
    "end": (("}", "done", ""),),
}
# Value nodes and the literal node that follows each (it starts with the value's terminator).
_AFTER = {
    "service": "after_service",
    "fault": "after_fault",
    "summary": "after_summary",
    "confidence": "after_confidence",
    "evidence": "after_evidence",
    "event_id": "after_event_id",
    "event_text": "after_event",
    "step": "after_step",
    "alternative": "after_alternative",
}
_TEXTS = frozenset({"summary", "event_text", "step", "alternative"})
_LIST_OF = {
    "timeline": "timeline",
    "after_event": "timeline",
    "steps": "steps",
    "after_step": "steps",
    "alternatives": "alternatives",
    "after_alternative": "alternatives",
}
_ITEMS = frozenset({"event_id", "step", "alternative"})
_MAX_CLOSING = 100_000


class AnswerGrammar:
    """The answers one spec allows; :meth:`start` gives the state before the first character."""

    def __init__(self, spec: AnswerSpec) -> None:
        self.spec = spec
        self.ids = frozenset(spec.evidence_ids)
        self.id_prefixes = frozenset(i[:n] for i in spec.evidence_ids for n in range(1, len(i) + 1))
        self.owned = {s: frozenset(ids) for s, ids in spec.owned.items()}
        self.list_limits = {
            "timeline": spec.max_timeline,
            "steps": spec.max_next_steps,
            "alternatives": spec.max_alternatives,
        }
        self.shortest_ids = sorted(spec.evidence_ids, key=lambda i: (len(i), i))
        self.reserve = self._reserve()

    def start(self) -> AnswerState:
        return AnswerState(self)

    def accepts(self, text: str) -> bool:
        """Whether ``text`` is a whole answer this grammar allows."""
        state = self.start()
        return state.feed(text) and state.done

    def _reserve(self) -> int:
        """An upper bound, in UTF-8 bytes, of :meth:`AnswerState.closing` from any state.

        The closing from the start takes the shortest values; a state part-way through an
        item may need a longer value and the rest of that item's literals (under 64 bytes).
        """
        longest_id = max(len(i) for i in self.ids)
        longest = max(len(s.encode()) for s in self.spec.services)
        fault = max(len(f.encode()) for f in self.spec.fault_types)
        return len(self.start().closing().encode()) + longest + fault + 4 * longest_id + 64


class AnswerState:
    """How far one answer has got; :meth:`copy` is cheap, :meth:`feed` moves it on."""

    __slots__ = (
        "buf",
        "citing",
        "grammar",
        "items",
        "node",
        "service",
        "summary_ids",
        "tail",
        "text_len",
        "used",
    )

    def __init__(self, grammar: AnswerGrammar) -> None:
        self.grammar = grammar
        self.node = "start"
        self.buf = ""  # literal matched so far, enum or number prefix, or the citation's id
        self.service = ""
        self.summary_ids: frozenset[str] = frozenset()
        self.used: frozenset[str] = frozenset()  # evidence_ids items so far
        self.items = 0  # items started in the current timeline / next_steps / alternatives
        self.text_len = 0
        self.tail = ""  # the current text's last characters, for the link check
        self.citing = False

    @property
    def done(self) -> bool:
        """The object is closed: nothing more may follow."""
        return self.node == "done"

    def copy(self) -> AnswerState:
        twin = AnswerState.__new__(AnswerState)
        for name in AnswerState.__slots__:
            setattr(twin, name, getattr(self, name))
        return twin

    def feed(self, text: str) -> bool:
        """Advance by ``text``; False when no valid answer starts with what was fed.

        A False leaves the state half-advanced: feed a :meth:`copy` when the text may fail.
        """
        return all(self._step(char) for char in text)

    def closing(self) -> str:
        """The shortest text that completes the answer from here (empty when done).

        Deterministic, so the closing of the state after its first character is the rest of
        it: a decoder that keeps the closing inside its token budget can always finish.
        """
        probe = self.copy()
        out: list[str] = []
        while not probe.done:
            char = probe._forced()
            if not probe._step(char) or len(out) > _MAX_CLOSING:
                raise RuntimeError(f"answer grammar cannot close at {probe.node!r}")
            out.append(char)
        return "".join(out)

    # --- one character -------------------------------------------------------------------

    def _step(self, char: str) -> bool:
        node = self.node
        if node in _LITERALS:
            return self._literal(char)
        if node in _TEXTS:
            return self._text(char)
        if node == "confidence":
            return self._number(char)
        if node == "done":
            return False
        return self._enum(char)

    def _enter(self, node: str) -> None:
        self.node, self.buf = node, ""
        if node in _TEXTS:
            self.text_len, self.tail, self.citing = 0, "", False
        if node in self.grammar.list_limits:
            self.items = 0
        if node in _ITEMS:
            self.items += 1

    def _literal(self, char: str) -> bool:
        prefix = self.buf + char
        for text, target, _ in self._options():
            if text.startswith(prefix):
                if len(text) == len(prefix):
                    self._enter(target)
                else:
                    self.buf = prefix
                return True
        return False

    def _options(self) -> list[tuple[str, str, str]]:
        return [o for o in _LITERALS[self.node] if self._allows(o[2])]

    def _allows(self, condition: str) -> bool:
        if condition == "owned":
            return self._cites_own()
        if condition == "more":
            if self.node == "after_evidence":
                limit = min(self.grammar.spec.max_evidence_ids, len(self.grammar.ids))
                return len(self.used) < limit
            return self.items < self.grammar.list_limits[_LIST_OF[self.node]]
        return True

    def _cites_own(self) -> bool:
        own = self.grammar.owned[self.service]
        return not own.isdisjoint(self.summary_ids) or not own.isdisjoint(self.used)

    def _enum(self, char: str) -> bool:
        values = self._values()
        if char == '"':
            if self.buf not in values:
                return False
            if self.node == "service":
                self.service = self.buf
            elif self.node == "evidence":
                self.used = self.used | {self.buf}
            self._enter(_AFTER[self.node])
            return self._literal(char)
        prefix = self.buf + char
        if any(v.startswith(prefix) for v in values):
            self.buf = prefix
            return True
        return False

    def _values(self) -> tuple[str, ...] | frozenset[str]:
        spec = self.grammar.spec
        if self.node == "service":
            return spec.services
        if self.node == "fault":
            return spec.fault_types
        if self.node == "event_id":
            return self.grammar.ids
        unused = self.grammar.ids - self.used
        last = len(self.used) + 1 >= spec.max_evidence_ids or len(unused) == 1
        if last and not self._cites_own():
            return unused & self.grammar.owned[self.service]
        return unused

    def _number(self, char: str) -> bool:
        if char == ",":
            if not _NUMBER.fullmatch(self.buf):
                return False
            self._enter(_AFTER["confidence"])
            return self._literal(char)
        prefix = self.buf + char
        if _NUMBER_PREFIX.fullmatch(prefix):
            self.buf = prefix
            return True
        return False

    def _uncited_summary(self) -> bool:
        return self.node == "summary" and not self.summary_ids

    def _text(self, char: str) -> bool:
        if self.citing:
            if char == "]":
                if self.buf not in self.grammar.ids:
                    return False
                if self.node == "summary":
                    self.summary_ids = self.summary_ids | {self.buf}
                self.citing, self.buf = False, ""
            elif self.buf + char in self.grammar.id_prefixes:
                self.buf += char
            else:
                return False
            return self._extend(char)
        if char == '"':
            if self.text_len == 0 or self._uncited_summary():
                return False
            self._enter(_AFTER[self.node])
            return self._literal(char)
        spec = self.grammar.spec
        limit = spec.summary_chars if self.node == "summary" else spec.text_chars
        if char == "[":
            if self.text_len >= limit and not self._uncited_summary():
                return False
            self.citing = True
        elif self.text_len >= limit or char in _FORBIDDEN_IN_TEXT:
            return False
        return self._extend(char)

    def _extend(self, char: str) -> bool:
        self.text_len += 1
        self.tail = (self.tail + char)[-_LINK_TAIL:]
        return _LINK.search(self.tail) is None

    # --- the closing -----------------------------------------------------------------------

    def _forced(self) -> str:
        """The next character of the shortest completion."""
        node = self.node
        if node in _LITERALS:
            for text, _, _ in self._options():
                if text.startswith(self.buf):
                    return text[len(self.buf)]
            raise RuntimeError(f"answer grammar has no option at {node!r}")
        if node in _TEXTS:
            if self.citing:
                target = next(i for i in self.grammar.shortest_ids if i.startswith(self.buf))
                return "]" if target == self.buf else target[len(self.buf)]
            if self._uncited_summary():
                return "["
            return '"' if self.text_len else "."
        if node == "confidence":
            return "0" if self.buf in ("", "0.", "1.") else ","
        values = [v for v in self._values() if v.startswith(self.buf)]
        if node == "evidence" and not self._cites_own():
            values = [v for v in values if v in self.grammar.owned[self.service]] or values
        target = min(values, key=lambda v: (len(v), v))
        return '"' if target == self.buf else target[len(self.buf)]
