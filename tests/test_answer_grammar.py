"""The answer spec and grammar, pure (no model): what they accept is what the guard accepts,
what they reject could not have passed it, and every state they allow can still close."""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pytest
from conftest import build_analysis
from summarize_support import answer

from agent.engine.pipeline import analyze
from agent.models import Analysis
from agent.summarize.grammar import AnswerGrammar, AnswerState
from agent.summarize.guard import AnswerRejected, check_answer
from agent.summarize.prompt import build_prompt
from agent.summarize.spec import AnswerSpec, answer_spec
from evals.simulator import simulate
from finetune.examples import Truth, target_answer


def canonical(data: dict[str, Any]) -> str:
    """The training targets' form (finetune.examples.build_example)."""
    return json.dumps(data, ensure_ascii=False)


def spec_of(draft: Analysis, **limits: int) -> AnswerSpec:
    spec = answer_spec(draft, build_prompt(draft, budget=3000))
    assert spec is not None
    return dataclasses.replace(spec, **limits)


@pytest.fixture(scope="module")
def grammar() -> AnswerGrammar:
    return AnswerGrammar(spec_of(build_analysis()))


def rejects_at(grammar: AnswerGrammar, text: str) -> int | None:
    """Index of the first character no valid answer can have there (None: all accepted)."""
    state = grammar.start()
    for i, char in enumerate(text):
        if not state.feed(char):
            return i
    return None


def test_spec_keeps_candidates_with_citable_evidence_of_their_own() -> None:
    draft = build_analysis()
    spec = answer_spec(draft, build_prompt(draft, budget=3000))
    assert spec is not None
    assert spec.services == ("payments", "checkout")  # frontend has no evidence: left out
    assert spec.owned == {"payments": ("M1", "L1"), "checkout": ("M2",)}
    assert set(spec.evidence_ids) == {"M1", "L1", "M2"}
    assert "memory_leak" in spec.fault_types


def test_spec_prefers_the_ids_the_prompt_showed() -> None:
    draft = build_analysis()
    prompt = build_prompt(draft, budget=3000)
    shown = dataclasses.replace(prompt, evidence_ids=["M1"])
    spec = answer_spec(draft, shown)
    assert spec is not None and spec.evidence_ids == ("M1",) and spec.services == ("payments",)
    no_evidence = draft.model_copy(update={"evidence": []})
    assert answer_spec(no_evidence, prompt) is None


def test_accepts_the_shared_test_answer(grammar: AnswerGrammar) -> None:
    assert grammar.accepts(canonical(answer()))


# 8023's root cause cites a JSON log template: its quotes must not reach the target text.
@pytest.mark.parametrize("seed", [30000, 30002, 8023])
def test_accepts_a_real_training_target(seed: int) -> None:
    snapshot = simulate(seed).snapshot
    truth = snapshot.ground_truth
    assert truth is not None
    draft = analyze(snapshot.model_copy(update={"ground_truth": None}))
    prompt = build_prompt(draft, budget=3000)
    target = target_answer(draft, Truth(truth.service, truth.fault_type), prompt.evidence_ids)
    text = canonical(target.model_dump(mode="json"))
    spec = answer_spec(draft, prompt)
    assert spec is not None
    assert rejects_at(AnswerGrammar(spec), text) is None and AnswerGrammar(spec).accepts(text)
    assert "…" in text or text.isascii()  # the targets' unicode passes as it is


def _with_root(**root: str) -> dict[str, Any]:
    data = answer()
    data["root_cause"] = {**data["root_cause"], **root}
    return data


@pytest.mark.parametrize(
    ("data", "bad", "guard_rejects"),
    [
        pytest.param(_with_root(service="billing"), '"b', True, id="unknown service"),
        pytest.param(_with_root(service="paymnets"), '"paymn', True, id="misspelled service"),
        pytest.param(_with_root(fault_type="oom"), '"o', True, id="unknown fault type"),
        pytest.param(_with_root(summary="leaks memory [M9]."), "[M9", True, id="unknown cited id"),
        pytest.param(
            _with_root(summary="payments leaks memory."), '."', True, id="summary uncited"
        ),
        pytest.param(_with_root(summary="see https://x.io [M1]"), "https://", True, id="link"),
        pytest.param(_with_root(summary="see www.x.io [M1]"), "www.", True, id="www link"),
        pytest.param(_with_root(summary="[M1](x)"), "](", True, id="markdown link"),
        pytest.param(_with_root(summary="one\ntwo [M1]"), "one\\", False, id="escaped newline"),
        pytest.param(_with_root(summary='say "hi" [M1]'), "say \\", False, id="escaped quote"),
        pytest.param(
            _with_root(summary="x" * 401 + " [M1]"), "x" * 401, False, id="over-long text"
        ),
        pytest.param(answer(evidence_ids=["M1", "M1"]), '"M1", "M1', False, id="repeated id"),
        pytest.param(answer(confidence=1.5), "1.5", True, id="confidence 1.5"),
        pytest.param(answer(confidence=0.1234), "0.1234", False, id="four decimals"),
        pytest.param(
            answer(timeline=[{"evidence_id": "M1", "text": "t"}] * 13),
            '"t"},',
            True,
            id="13th timeline item",
        ),
        pytest.param(answer(next_steps=["s"] * 7), '"s",', True, id="7th next step"),
        pytest.param(answer(next_steps=[""]), '[""', False, id="empty text"),
    ],
)
def test_rejects_an_invalid_answer_where_it_goes_wrong(
    grammar: AnswerGrammar, data: dict[str, Any], bad: str, guard_rejects: bool
) -> None:
    """``bad`` ends at the first character that cannot be right; the others break only the
    grammar's own stricter rules (limits, no escapes, no repeats), not the guard's."""
    text = canonical(data)
    at = rejects_at(grammar, text)
    assert at is not None and text[: at + 1].endswith(bad)
    try:
        check_answer(text, build_analysis())
    except (AnswerRejected, ValueError):
        assert guard_rejects
    else:
        assert not guard_rejects


def test_control_characters_never_enter_a_string(grammar: AnswerGrammar) -> None:
    head = '{"root_cause": {"service": "payments", "fault_type": "memory_leak", "summary": "a'
    for char in "\n\t\r\x00\x1f\x7f":
        state = grammar.start()
        assert state.feed(head) and not state.feed(char)


def test_evidence_of_another_service_only_is_rejected(grammar: AnswerGrammar) -> None:
    # payments blamed, but only checkout's M2 is cited anywhere
    data = _with_root(summary="checkout slows down [M2].")
    data["evidence_ids"] = ["M2"]
    text = canonical(data)
    at = rejects_at(grammar, text)
    assert at is not None and text[: at + 1].endswith('"M2"]')
    # the same answer citing an own id in the list is fine, and so is the guard
    data["evidence_ids"] = ["M2", "L1"]
    assert grammar.accepts(canonical(data))
    check_answer(canonical(data), build_analysis())


def test_whitespace_is_exactly_json_dumps(grammar: AnswerGrammar) -> None:
    compact = json.dumps(answer(), separators=(",", ":"))
    assert rejects_at(grammar, compact) == len('{"root_cause":')


def _random_walk(state: AnswerState, rng: random.Random, steps: int, alphabet: str) -> str:
    """Up to ``steps`` random characters the grammar accepts (closing characters favoured)."""
    out = []
    for _ in range(steps):
        if state.done:
            break
        shuffled = rng.sample(alphabet, len(alphabet))
        char = next((c for c in shuffled if state.copy().feed(c)), None)
        if char is None or rng.random() < 0.15:
            char = state.closing()[0]
        assert state.feed(char)
        out.append(char)
    return "".join(out)


ALPHABET = 'abcpmentsouk_ML12[]" ,.:{}0-9héw/(<'


def test_every_allowed_prefix_closes_into_an_answer_the_guard_accepts() -> None:
    draft = build_analysis()
    grammar = AnswerGrammar(spec_of(draft, summary_chars=40, text_chars=12))
    rng = random.Random(7)
    for _ in range(60):
        state = grammar.start()
        prefix = _random_walk(state, rng, rng.randrange(1, 400), ALPHABET)
        closing = state.closing()
        assert len(closing.encode()) <= grammar.reserve
        text = prefix + closing
        assert grammar.accepts(text)
        check_answer(text, draft)  # raises on any rule the grammar let through


def test_budgeted_decoding_always_finishes_inside_the_budget() -> None:
    """A decoder that keeps the closing inside its remaining budget always ends on time."""
    draft = build_analysis()
    grammar = AnswerGrammar(spec_of(draft))
    floor = len(grammar.start().closing())
    rng = random.Random(11)

    def fits(state: AnswerState, char: str, left: int) -> bool:
        after = state.copy()
        return after.feed(char) and len(after.closing()) <= left

    for budget in (floor, floor + 1, floor + 30, 400):
        state, written = grammar.start(), ""
        while not state.done:
            left = budget - len(written) - 1
            shuffled = rng.sample(ALPHABET, len(ALPHABET))
            char = next((c for c in shuffled if fits(state, c, left)), state.closing()[0])
            assert state.feed(char)
            written += char
        assert len(written) <= budget
        check_answer(written, draft)


def test_spec_refuses_what_no_answer_could_satisfy() -> None:
    with pytest.raises(ValueError, match="citable evidence of its own"):
        AnswerSpec(services=("payments",), fault_types=("unknown",), evidence_ids=("M1",))
    with pytest.raises(ValueError, match="like M1 or L2"):
        AnswerSpec(
            services=("payments",),
            fault_types=("unknown",),
            evidence_ids=("m-1",),
            owned={"payments": ("m-1",)},
        )
