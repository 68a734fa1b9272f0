"""Ranking metrics on hand-made rankings, and the eval runner with a scripted analyzer."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from conftest import build_analysis, build_snapshot
from rich.console import Console

from agent.config import EngineSettings
from agent.errors import UsageError
from agent.models import Analysis, FaultType
from agent.snapshot import Snapshot, write_snapshot
from evals.metrics import (
    CaseResult,
    accuracy_at_k,
    avg_at_k,
    fault_type_accuracy,
    per_fault_type,
    percentile,
    rank_of,
    shared_hit,
    summarize,
)
from evals.report import metrics_table, write_comparison_png
from evals.runner import (
    Case,
    directory_cases,
    evaluate_case,
    parse_seed_range,
    run_suite,
    write_report_json,
)


def _result(
    truth: str, predicted: list[str], fault: str = "memory_leak", **kw: object
) -> CaseResult:
    return CaseResult(
        case=kw.get("case", "c"),  # type: ignore[arg-type]
        truth_service=truth,
        truth_fault=fault,
        predicted=predicted,
        predicted_fault=kw.get("predicted_fault", fault),  # type: ignore[arg-type]
        rank=rank_of(truth, predicted),
        latency_s=kw.get("latency_s", 0.1),  # type: ignore[arg-type]
        confidence=0.5,
    )


def test_rank_of() -> None:
    assert rank_of("b", ["a", "b", "c"]) == 2
    assert rank_of("z", ["a", "b"]) is None


def test_accuracy_at_k_on_hand_made_ranks() -> None:
    ranks = [1, 2, 3, None, 5]
    assert accuracy_at_k(ranks, 1) == pytest.approx(0.2)
    assert accuracy_at_k(ranks, 3) == pytest.approx(0.6)
    assert accuracy_at_k(ranks, 5) == pytest.approx(0.8)
    # Avg@5 = mean(0.2, 0.4, 0.6, 0.6, 0.8)
    assert avg_at_k(ranks, 5) == pytest.approx(0.52)


def test_accuracy_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        accuracy_at_k([1], 0)
    with pytest.raises(ValueError, match="zero cases"):
        accuracy_at_k([], 1)


def test_fault_type_accuracy_counts_all_cases() -> None:
    results = [
        _result("a", ["a"], "cpu_saturation", predicted_fault="cpu_saturation"),
        _result("a", ["b"], "cpu_saturation", predicted_fault="cpu_saturation"),  # wrong service
        _result("a", ["a"], "disk_full", predicted_fault="memory_leak"),
        _result("a", [], "disk_full", predicted_fault=None),
    ]
    assert fault_type_accuracy(results) == pytest.approx(0.5)


def test_summarize_and_per_fault_type() -> None:
    results = [
        _result("a", ["a", "b"], "cpu_saturation", latency_s=0.1),
        _result("a", ["b", "a"], "cpu_saturation", latency_s=0.3),
        _result("x", ["b", "c", "d"], "disk_full", latency_s=0.2),
    ]
    overall = summarize(results)
    assert overall.n_cases == 3
    assert overall.ac_at_1 == pytest.approx(1 / 3)
    assert overall.ac_at_3 == pytest.approx(2 / 3)
    assert overall.latency_p50_s == pytest.approx(0.2)
    by_fault = per_fault_type(results)
    assert list(by_fault) == ["cpu_saturation", "disk_full"]
    assert by_fault["cpu_saturation"].ac_at_1 == pytest.approx(0.5)
    assert by_fault["disk_full"].ac_at_3 == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)


@pytest.mark.parametrize(("text", "expected"), [("1-3", range(1, 4)), ("7", range(7, 8))])
def test_parse_seed_range(text: str, expected: range) -> None:
    assert parse_seed_range(text) == expected


@pytest.mark.parametrize("text", ["5-2", "abc", "1-", "-3", "1-2-3", ""])
def test_parse_seed_range_rejects_malformed(text: str) -> None:
    with pytest.raises(UsageError):
        parse_seed_range(text)


def _scripted(analysis: Analysis) -> object:
    def analyzer(snapshot: Snapshot, engine: EngineSettings) -> Analysis:
        assert snapshot.ground_truth is None, "the engine must not see the ground truth"
        return analysis

    return analyzer


def test_evaluate_case_is_blind_and_scores(analysis: Analysis) -> None:
    case = Case("hand-1", build_snapshot)
    result = evaluate_case(case, EngineSettings(), _scripted(analysis))  # type: ignore[arg-type]
    assert result.predicted == ["payments", "checkout", "frontend"]
    assert result.rank == 1
    assert result.predicted_fault == FaultType.MEMORY_LEAK.value
    assert result.truth_fault == "memory_leak"
    assert result.latency_s >= 0


def _tied(analysis: Analysis, scores: list[float]) -> Analysis:
    candidates = [
        c.model_copy(update={"score": score})
        for c, score in zip(analysis.candidates, scores, strict=True)
    ]
    return analysis.model_copy(update={"candidates": candidates})


def test_a_tie_at_the_truth_s_score_is_counted_and_shared(analysis: Analysis) -> None:
    # payments leads by the alphabet only: a three-way tie, summed in another order.
    case = Case("hand-1", build_snapshot)
    scripted = _scripted(_tied(analysis, [0.7, 0.7 + 1e-12, 0.7]))
    result = evaluate_case(case, EngineSettings(), scripted)  # type: ignore[arg-type]
    assert (result.rank, result.tied_before, result.tied_after) == (1, 0, 2)
    assert shared_hit(result, 1) == pytest.approx(1 / 3)
    assert shared_hit(result, 3) == 1.0
    clear = evaluate_case(case, EngineSettings(), _scripted(analysis))  # type: ignore[arg-type]
    assert (clear.tied_before, clear.tied_after) == (0, 0) and shared_hit(clear, 1) == 1.0


def test_ties_shared_across_a_suite() -> None:
    second_of_two = _result("b", ["a", "b", "c"]).model_copy(update={"tied_before": 1})
    third_of_tie_at_two = _result("d", ["a", "b", "d", "c"]).model_copy(
        update={"tied_before": 1, "tied_after": 1}
    )  # b, d, c tied for places 2-4
    missed = _result("z", ["a"])
    metrics = summarize([second_of_two, third_of_tie_at_two, missed])
    assert metrics.ac_at_1 == 0.0
    assert metrics.ac_at_1_ties_shared == pytest.approx((0.5 + 0 + 0) / 3)
    assert metrics.ac_at_3_ties_shared == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_directory_suite_skips_cases_without_truth(tmp_path: Path, analysis: Analysis) -> None:
    write_snapshot(build_snapshot(), tmp_path / "suite" / "with-truth")
    write_snapshot(build_snapshot(with_truth=False), tmp_path / "suite" / "no-truth")
    cases, skipped = directory_cases(tmp_path / "suite")
    assert [c.name for c in cases] == ["with-truth"]
    assert [(s.case, s.reason) for s in skipped] == [("no-truth", "no ground_truth.json")]

    report = run_suite(
        str(tmp_path / "suite"),
        cases,
        EngineSettings(),
        skipped=skipped,
        analyzer=_scripted(analysis),  # type: ignore[arg-type]
    )
    assert report.metrics.ac_at_1 == 1.0
    assert report.skipped[0].case == "no-truth"
    data = json.loads(write_report_json(report, tmp_path / "eval.json").read_text())
    assert set(data["metrics"]) >= {"ac_at_1", "ac_at_3", "avg_at_5", "n_cases", "latency_p95_s"}
    assert data["cases"][0]["truth_service"] == "payments"


def test_directory_suite_without_usable_cases(tmp_path: Path) -> None:
    write_snapshot(build_snapshot(with_truth=False), tmp_path / "suite" / "no-truth")
    with pytest.raises(UsageError, match="no usable cases"):
        directory_cases(tmp_path / "suite")
    with pytest.raises(UsageError, match="neither"):
        directory_cases(tmp_path / "missing")


def test_eval_table_and_png(tmp_path: Path) -> None:
    wrong = build_analysis().model_copy(
        update={"candidates": list(reversed(build_analysis().candidates))}
    )
    cases = [Case("good", build_snapshot), Case("bad", build_snapshot)]
    answers = iter([build_analysis(), wrong])
    report = run_suite(
        "sim",
        cases,
        EngineSettings(),
        seeds="1-2",
        analyzer=lambda _s, _e: next(answers),
    )
    assert report.metrics.ac_at_1 == 0.5
    assert report.metrics.ac_at_3 == 1.0
    assert report.metrics.fault_type_accuracy == 0.5  # the wrong one ranks "unknown" first
    assert [c.rank for c in report.cases] == [1, 3]
    assert metrics_table(report).row_count == 2  # overall + memory_leak
    png = write_comparison_png(report, tmp_path / "eval.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")


def test_eval_logs_plain_progress_lines_when_not_on_a_terminal(analysis: Analysis) -> None:
    log = Console(file=io.StringIO(), width=200)  # a log file, as under nohup or in CI
    cases = [Case(f"case-{i}", build_snapshot) for i in range(12)]
    run_suite("sim", cases, EngineSettings(), console=log, analyzer=lambda _s, _e: analysis)
    lines = re.findall(r"eval sim (\d+)/12 elapsed \S+ ETA \S+", log.file.getvalue())  # type: ignore[attr-defined]
    assert [int(n) for n in lines] == list(range(1, 13))  # 12 cases: a line per tenth, at least 1


def test_bench_snapshot_has_the_documented_shape() -> None:
    from evals.bench import build_snapshot as bench_snapshot
    from evals.bench import measure_memory

    snapshot, fault = bench_snapshot(3)
    assert len(snapshot.signals) == 3 * 12
    assert {len(s.timestamps) for s in snapshot.signals} == {480}
    assert len(snapshot.logs) == 3 * 1000
    assert len({r.message for r in snapshot.logs}) > 2500  # parameters vary, not 6 fixed lines
    assert fault in snapshot.services()
    window = snapshot.window()
    assert window.start < window.incident_start < window.end
    peak, _rss = measure_memory(lambda: [0] * 1_000_000)
    assert peak > 7  # a list of a million pointers is ~7.6 MiB
