"""Greedy decoding that can only write answers the grammar allows (the ``hf`` backend's guide).

:class:`AnswerGuide` is a transformers logits processor: at each step it keeps the one token
greedy decoding should pick, the highest-scoring token whose text keeps the
:class:`~agent.summarize.grammar.AnswerGrammar` valid, masks the rest, and forces EOS once the
object is closed. So with a spec the answer is valid by construction, and where the model's
own first choice is valid (nearly always, for a tuned model) the output is exactly what it
would have written unconstrained.

Cost per step: candidates are tried in descending score order, so the common case feeds one
or two token texts to a copied state. When none of the top :data:`TOP_K` fits (a base model
writing prose where a key must come), every token the grammar allows is found by walking the
sorted vocabulary as a character trie, pruned wherever the grammar rejects a prefix: cheap
exactly where the grammar is strict.

The token budget: once fewer tokens remain than the grammar's reserve, a token is kept only
if the shortest closing after it (:meth:`~agent.summarize.grammar.AnswerState.closing`, one
token per UTF-8 byte at worst) still fits, so the answer always closes inside
``max_new_tokens``. If even that fails (a cap too small for any answer), the closing's next
character is written, which is the shortest way to end.

No torch import: the tensors come in as arguments.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from agent.errors import ConfigError
from agent.summarize.grammar import AnswerGrammar, AnswerState

TOP_K = 32
BUDGET_CHECKS = 64


class TokenTable:
    """The text each token adds to a generated answer, and the vocabulary as a sorted trie.

    Text is measured against an anchor (decode ``[anchor, id]`` minus decode ``[anchor]``), so
    SentencePiece tokens keep their leading space. Special tokens and tokens that add no text
    are never allowed; a byte token of a split UTF-8 character reads as U+FFFD, which only free
    text accepts.
    """

    def __init__(self, texts: Sequence[str | None], eos_id: int) -> None:
        self.texts = [text or None for text in texts]  # "" would be an endless free step
        self.eos_id = eos_id
        by_text: dict[str, list[int]] = {}
        for token, text in enumerate(self.texts):
            if text is not None:
                by_text.setdefault(text, []).append(token)
        self.keys = sorted(by_text)
        self.ids = [by_text[k] for k in self.keys]
        self.single = {k: v[0] for k, v in by_text.items() if len(k) == 1}

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> TokenTable:
        if tokenizer.eos_token_id is None:
            raise ConfigError(
                "the model's tokenizer has no EOS token, so a constrained answer cannot end: "
                "set summarizer.hf_constrained to false"
            )
        anchor = tokenizer.encode("a", add_special_tokens=False)[-1]
        options = {"skip_special_tokens": True, "clean_up_tokenization_spaces": False}
        head = tokenizer.decode([anchor], **options)
        special = set(tokenizer.all_special_ids)
        pairs = tokenizer.batch_decode([[anchor, t] for t in range(len(tokenizer))], **options)
        texts = [
            text[len(head) :] if t not in special and text.startswith(head) else None
            for t, text in enumerate(pairs)
        ]
        return cls(texts, int(tokenizer.eos_token_id))

    def text(self, token: int) -> str | None:
        return self.texts[token] if 0 <= token < len(self.texts) else None

    def continuations(self, state: AnswerState) -> list[int]:
        """Every token whose whole text the grammar accepts from ``state``."""
        found: list[int] = []
        if self.keys:
            self._walk(0, len(self.keys), 0, state, found)
        return found

    def _walk(self, lo: int, hi: int, depth: int, state: AnswerState, found: list[int]) -> None:
        """Keys in ``[lo, hi)`` share their first ``depth`` characters, already fed to state."""
        keys = self.keys
        if len(keys[lo]) == depth:
            found.extend(self.ids[lo])
            lo += 1
        while lo < hi:
            prefix = keys[lo][: depth + 1]
            end = bisect.bisect_right(keys, prefix, lo, hi, key=lambda k: k[: depth + 1])
            child = state.copy()
            if child.feed(prefix[depth]):
                self._walk(lo, end, depth + 1, child, found)
            lo = end


class AnswerGuide:
    """Logits processor for one ``generate`` call of batch size 1 (see the module docstring)."""

    def __init__(
        self,
        grammar: AnswerGrammar,
        table: TokenTable,
        *,
        prompt_len: int,
        max_new_tokens: int,
    ) -> None:
        self.grammar = grammar
        self.table = table
        self.prompt_len = prompt_len
        self.max_new_tokens = max_new_tokens
        self.state = grammar.start()
        self.pending: tuple[int, AnswerState] | None = None
        self.fallbacks = 0  # steps where no top-K token fitted (for tests and tuning)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        if input_ids.shape[0] != 1:
            raise ValueError("constrained decoding runs one answer at a time (batch size 1)")
        if self.pending is not None:
            token, state = self.pending
            if int(input_ids[0, -1]) != token:
                raise RuntimeError("the generated token is not the one the answer guide chose")
            self.state = state
        left = self.max_new_tokens - (int(input_ids.shape[-1]) - self.prompt_len) - 1
        choice = self._choose(scores[0], left)
        masked = scores.new_full(scores.shape, float("-inf"))
        masked[0, choice] = 0.0
        return masked

    def _choose(self, row: Any, left: int) -> int:
        """The best-scoring admissible token; ``left`` tokens remain after it."""
        self.pending = None
        if self.state.done:
            return self.table.eos_id
        for token in row.topk(min(TOP_K, row.shape[-1])).indices.tolist():
            state = self._admit(token, left)
            if state is not None:
                self.pending = (token, state)
                return token
        self.fallbacks += 1
        allowed = self.table.continuations(self.state)
        if allowed:
            values = row.tolist()
            ranked = sorted(allowed, key=lambda t: -values[t])
            for token in ranked[:BUDGET_CHECKS]:
                state = self._admit(token, left)
                if state is not None:
                    self.pending = (token, state)
                    return token
        return self._closing_token()

    def _admit(self, token: int, left: int) -> AnswerState | None:
        text = self.table.text(token)
        if text is None:
            return None
        state = self.state.copy()
        if not state.feed(text):
            return None
        if state.done or left >= self.grammar.reserve:
            return state
        return state if len(state.closing().encode()) <= left else None

    def _closing_token(self) -> int:
        """The closing's next character as a token: the shortest way to finish."""
        char = self.state.closing()[0]
        token = self.table.single.get(char)
        if token is None:
            return self.table.eos_id  # the tokenizer cannot write it; the guard will reject
        state = self.state.copy()
        state.feed(char)
        self.pending = (token, state)
        return token
