"""``rca eval --backend`` and ``--compare``: summarizer metrics next to the ranking metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import build_analysis
from openai_double import OpenAIDouble, Reply

from agent.cli import cli
from agent.summarize.extractive import ExtractiveSummarizer
from evals.metrics import SummaryCase, summarize_backend
from evals.runner import summary_case

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = {
    "backend", "n_cases", "valid_output_rate", "citation_validity", "top1_agreement",
    "root_cause_accuracy", "fallback_rate", "latency_p50_s", "latency_p95_s",
    "tokens_in_mean", "tokens_out_mean", "tokens_in_p95", "cost_usd_total",
}  # fmt: skip


def rca(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


@pytest.fixture
def api() -> Iterator[OpenAIDouble]:
    with OpenAIDouble([Reply.answer("The root cause is probably the database.")]) as double:
        yield double


def _row(**kw: object) -> SummaryCase:
    values: dict[str, object] = {
        "case": "c", "backend": "hf", "answers": 1, "answers_valid": 1, "cited": 2,
        "cited_valid": 2, "fallback": None, "agrees_top1": True, "root_cause_correct": True,
        "latency_s": 1.0, "tokens_in": 1000, "tokens_out": 100, "cost_usd": 0.0,
    }  # fmt: skip
    values.update(kw)
    return SummaryCase.model_validate(values)


def test_summarize_backend_on_hand_made_rows() -> None:
    rows = [
        _row(),
        _row(answers=2, answers_valid=1, cited=3, cited_valid=1, latency_s=3.0),
        _row(answers=2, answers_valid=0, cited=0, cited_valid=0, fallback="rejected",
             agrees_top1=True, root_cause_correct=False, tokens_in=3000),
        _row(answers=0, answers_valid=0, cited=0, cited_valid=0, agrees_top1=None,
             root_cause_correct=None),
    ]  # fmt: skip
    m = summarize_backend("hf", rows)
    assert m.n_cases == 4
    assert m.valid_output_rate == pytest.approx(2 / 5)
    assert m.citation_validity == pytest.approx(3 / 5)
    assert m.fallback_rate == pytest.approx(1 / 4)
    assert m.top1_agreement == pytest.approx(3 / 4)  # no root cause counts as no agreement
    assert m.root_cause_accuracy == pytest.approx(2 / 4)
    assert m.tokens_in_mean == pytest.approx(1500)
    none_cited = summarize_backend("x", [_row(cited=0, cited_valid=0)])
    assert none_cited.citation_validity is None


def test_eval_backend_extractive_reports_summarizer_metrics(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = rca("eval", "--suite", "sim", "--seeds", "1-2", "--backend", "extractive",
                 "--json-file", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "summarizer backends" in result.stdout
    data = json.loads(out.read_text())
    assert data["backend"] == "extractive"
    assert set(data["summarizer"]) == SUMMARY_KEYS
    assert data["summarizer"]["fallback_rate"] == 0.0
    assert data["summarizer"]["citation_validity"] == 1.0
    assert [s["case"] for s in data["summaries"]] == ["sim-1", "sim-2"]
    assert all(s["tokens_in"] == 0 for s in data["summaries"])


def test_eval_backend_openai_counts_fallbacks_and_tokens(api: OpenAIDouble, tmp_path: Path) -> None:
    env = {"RCA_SUMMARIZER__BASE_URL": api.base_url, "RCA_SUMMARIZER__API_KEY": "k"}
    out = tmp_path / "eval.json"
    result = rca("eval", "--suite", "sim", "--seeds", "1-2", "--backend", "openai",
                 "--json-file", out, env=env)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(out.read_text())["summarizer"]
    assert summary["backend"] == "openai"
    assert summary["valid_output_rate"] == 0.0 and summary["fallback_rate"] == 1.0
    assert summary["tokens_in_mean"] > 0
    assert len(api.requests) == 4  # two cases, each an answer and one repair


def test_eval_compare_writes_one_json_and_one_png(api: OpenAIDouble, tmp_path: Path) -> None:
    env = {"RCA_SUMMARIZER__BASE_URL": api.base_url, "RCA_SUMMARIZER__API_KEY": "k"}
    out, png = tmp_path / "compare.json", tmp_path / "compare.png"
    result = rca("eval", "--suite", "sim", "--seeds", "1", "--json-file", out, "--png", png,
                 "--compare", "extractive", "openai:gpt-4o", env=env)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text())
    assert [r["backend"] for r in data["reports"]] == ["extractive", "openai"]
    assert [r["summarizer"]["fallback_rate"] for r in data["reports"]] == [0.0, 1.0]
    assert api.requests[0].body["model"] == "gpt-4o"
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    table = result.stdout[result.stdout.rindex("summarizer backends") :]
    assert "extractive" in table and "openai" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--compare", "extractive"], "two or more backends"),
        (["extractive", "hf"], "need --compare"),
        (["--backend", "claude"], "unknown summarizer backend 'claude'"),
    ],
)
def test_eval_backend_usage_errors(args: list[str], message: str) -> None:
    result = rca("eval", "--suite", "sim", "--seeds", "1", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_summary_case_counts_only_answers_a_model_gave() -> None:
    draft = build_analysis()
    own = ExtractiveSummarizer().summarize(draft)
    row = summary_case("c", "extractive", draft, own, 0.01, "payments")
    assert (row.answers, row.answers_valid, row.cited, row.cited_valid) == (1, 1, 2, 2)
    assert row.agrees_top1 and row.root_cause_correct
    skipped = own.model_copy(update={"backend": "extractive"})
    llm_row = summary_case("c", "hf:smollm2", draft, skipped, 0.01, "checkout")
    assert (llm_row.answers, llm_row.cited) == (0, 0)
    assert llm_row.root_cause_correct is False
