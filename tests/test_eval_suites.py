"""``rca eval`` with several suites: expanding a parent folder, the summary, the JSON shapes and
the errors. Suites are built in ``tmp_path`` from the conftest snapshot, so nothing here needs
the real data set."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import build_analysis, build_snapshot

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.errors import UsageError
from agent.snapshot import load_snapshot, write_snapshot
from evals.alert_delay import alert_moved
from evals.report import suites_table, write_suites_png
from evals.runner import (
    MultiSuiteReport,
    Suite,
    directory_cases,
    expand_suites,
    run_suite,
    write_report_json,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REPORT_KEYS = {
    "suite", "seeds", "metrics", "per_fault_type", "cases", "skipped",
    "backend", "summarizer", "summaries", "reliability",
}  # fmt: skip
ROW_KEYS = {
    "suite", "seeds", "n_cases", "n_skipped",
    "ac_at_1", "ac_at_3", "avg_at_5", "fault_type_accuracy", "ac_at_1_ties_shared",
    "ece", "high_n", "high_precision",
}  # fmt: skip


def rca(*args: str | Path) -> Result:
    from agent.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {result.stderr!r}"
    assert result.stdout == ""
    return lines[0]


def _suite(directory: Path, *cases: str) -> Path:
    for case in cases:
        write_snapshot(build_snapshot(), directory / case)
    return directory


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A data set laid out like real/nezha-dev: {oracle,alert}/{ob,tt}/<case>, with clutter."""
    root = tmp_path / "data"
    _suite(root / "oracle" / "ob", "ob-1", "ob-2")
    _suite(root / "oracle" / "tt", "tt-1")
    _suite(root / "alert" / "ob", "ob-1")
    _suite(root / "alert" / "deeper" / "tt", "tt-1")
    (root / "alert" / "notes").mkdir()  # an empty folder: no suite, no error
    _suite(root / ".cache" / "old", "x")  # hidden: not a suite
    return root


# --- expansion ------------------------------------------------------------------------------


def test_parent_folder_expands_to_each_leaf_suite_at_any_depth(tree: Path) -> None:
    suites = expand_suites([str(tree)])
    assert [s.name for s in suites] == ["alert/deeper/tt", "alert/ob", "oracle/ob", "oracle/tt"]
    assert suites[2].path == tree / "oracle" / "ob"
    cases, skipped = directory_cases(suites[2].path)  # type: ignore[arg-type]
    assert [c.name for c in cases] == ["ob-1", "ob-2"] and skipped == []


def test_a_suite_given_directly_keeps_its_name_as_typed(tree: Path) -> None:
    leaf = str(tree / "oracle" / "ob")
    assert expand_suites([leaf]) == [Suite(leaf, tree / "oracle" / "ob")]
    one_case = str(tree / "oracle" / "ob" / "ob-1")  # a snapshot directory is a suite of one
    assert expand_suites([one_case]) == [Suite(one_case, Path(one_case))]


def test_a_folder_with_snapshot_dirs_is_a_suite_not_a_parent(tree: Path) -> None:
    """As before: its other sub-folders are its skipped cases, not suites of their own."""
    _suite(tree / "oracle" / "ob" / "extra" / "inner", "c")
    assert [s.name for s in expand_suites([str(tree / "oracle")])] == ["ob", "tt"]


def test_sim_mixes_with_folders_in_the_order_given(tree: Path) -> None:
    suites = expand_suites(["sim", str(tree / "oracle"), str(tree / "alert" / "ob")])
    assert [(s.name, s.path) for s in suites] == [
        ("sim", None),
        ("ob", tree / "oracle" / "ob"),
        ("tt", tree / "oracle" / "tt"),
        (str(tree / "alert" / "ob"), tree / "alert" / "ob"),
    ]


def test_same_names_under_two_parents_are_qualified(tmp_path: Path) -> None:
    _suite(tmp_path / "a" / "ob", "c")
    _suite(tmp_path / "b" / "ob", "c")
    _suite(tmp_path / "b" / "tt", "c")
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    assert [s.name for s in expand_suites([a, b])] == [f"{a}/ob", f"{b}/ob", "tt"]


@pytest.mark.parametrize(
    "specs",
    [["sim", "sim"], ["{tree}/oracle/ob", "{tree}/oracle"], ["{tree}", "{tree}/alert/"]],
)
def test_a_suite_given_twice_is_refused(tree: Path, specs: list[str]) -> None:
    with pytest.raises(UsageError, match="given more than once"):
        expand_suites([s.format(tree=tree) for s in specs])


def test_missing_path_and_folder_without_snapshots_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"--suite {tmp_path / 'missing'}: not a directory"):
        expand_suites([str(tmp_path / "missing")])
    (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
    with pytest.raises(UsageError, match=f"--suite {tmp_path / 'empty'}: no snapshot directories"):
        expand_suites([str(tmp_path / "empty")])


# --- summary ----------------------------------------------------------------------------------


def test_summary_has_one_row_per_suite_and_each_report_its_usual_shape(tmp_path: Path) -> None:
    right = build_analysis()
    wrong = right.model_copy(update={"candidates": list(reversed(right.candidates))})
    reports = [
        run_suite(name, cases, EngineSettings(), analyzer=lambda _s, _e, a=answer: a)
        for name, cases, answer in [
            ("ob", directory_cases(_suite(tmp_path / "ob", "c1", "c2"))[0], right),
            ("tt", directory_cases(_suite(tmp_path / "tt", "c1"))[0], wrong),
        ]
    ]
    data = json.loads(
        write_report_json(MultiSuiteReport.of(reports), tmp_path / "all.json").read_text()
    )
    assert set(data) == {"suites", "summary", "reliability"}
    assert data["reliability"]["n_cases"] == 3
    assert [set(report) for report in data["suites"]] == [REPORT_KEYS] * 2
    assert [set(row) for row in data["summary"]] == [ROW_KEYS] * 2
    assert [(r["suite"], r["n_cases"], r["ac_at_1"]) for r in data["summary"]] == [
        ("ob", 2, 1.0),
        ("tt", 1, 0.0),
    ]
    assert data["summary"][1]["ac_at_3"] == 1.0  # the wrong ranking still has it third
    assert suites_table(MultiSuiteReport.of(reports).summary).row_count == 2
    png = write_suites_png(MultiSuiteReport.of(reports).summary, tmp_path / "all.png")
    assert png.read_bytes().startswith(PNG_SIGNATURE)


# --- the command ------------------------------------------------------------------------------


def test_eval_parent_folder_writes_suites_and_summary(tree: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "all.json", tmp_path / "all.png"
    result = rca("eval", "--suite", tree / "oracle", "--json-file", out, "--png", png)
    assert result.exit_code == 0, result.stderr
    assert "suite ob" in result.stdout and "suite tt" in result.stdout
    assert result.stdout.rindex("suites") > result.stdout.rindex("suite tt")  # summary last
    data = json.loads(out.read_text())
    assert [r["suite"] for r in data["suites"]] == ["ob", "tt"]
    assert [set(report) for report in data["suites"]] == [REPORT_KEYS] * 2
    assert [(row["suite"], row["n_cases"]) for row in data["summary"]] == [("ob", 2), ("tt", 1)]
    assert png.read_bytes().startswith(PNG_SIGNATURE)


def test_eval_one_suite_json_is_unchanged(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.json"
    result = rca("eval", "--suite", tree / "oracle" / "ob", "--json-file", out)
    assert result.exit_code == 0, result.stderr
    assert "suites" not in result.stdout  # no summary table for one suite
    data = json.loads(out.read_text())
    assert set(data) == REPORT_KEYS
    assert data["suite"] == str(tree / "oracle" / "ob")
    assert data["metrics"]["n_cases"] == 2
    assert {"confidence", "rank"} <= set(data["cases"][0])


def test_eval_seeds_apply_to_sim_among_folders(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "mix.json"
    leaf = tree / "oracle" / "tt"
    result = rca("eval", "--suite", "sim", "--seeds", "1-2", "--suite", leaf, "--json-file", out)
    assert result.exit_code == 0, result.stderr
    rows = json.loads(out.read_text())["summary"]
    assert [(r["suite"], r["seeds"], r["n_cases"]) for r in rows] == [
        ("sim", "1-2", 2),
        (str(leaf), None, 1),
    ]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--suite", "{tmp}/missing"], "--suite {tmp}/missing: not a directory"),
        (["--suite", "{tmp}/empty"], "--suite {tmp}/empty: no snapshot directories"),
        (["--suite", "{tree}/oracle", "--compare", "extractive", "extractive"], "--compare"),
        (["--suite", "{tree}", "--suite", "{tree}/oracle"], "given more than once"),
    ],
)
def test_eval_errors_are_one_line_with_exit_2(
    tree: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    (tmp_path / "empty" / "nothing").mkdir(parents=True)
    result = rca("eval", *(a.format(tmp=tmp_path, tree=tree) for a in args))
    line = one_error_line(result)
    assert line.startswith("rca: error: ")
    assert expected.format(tmp=tmp_path) in line


def test_eval_compare_still_works_on_one_suite(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "compare.json"
    leaf = tree / "oracle" / "ob"
    result = rca(
        "eval", "--suite", leaf, "--compare", "extractive", "extractive", "--json-file", out
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(out.read_text())
    assert set(data) == {"suite", "seeds", "reports"} and len(data["reports"]) == 2


# --- how soon the alert fires ------------------------------------------------------------------

REAL = Path(__file__).parent / "fixtures" / "real"


def test_an_alert_moved_later_moves_only_the_alert() -> None:
    snapshot = load_snapshot(next(REAL.glob("alert-ob-2022-08-22-044416*")))
    assert snapshot.alert is not None
    later = alert_moved(snapshot, 90)
    assert later.alert is not None
    moved = zip(later.alert.alerts, snapshot.alert.alerts, strict=True)
    assert [a.startsAt - b.startsAt for a, b in moved] == [timedelta(seconds=90)]
    assert later.signals is snapshot.signals and later.meta == snapshot.meta
    assert "the alert fired at 04:46:46" in analyze(later).notes[0]
    oracle = load_snapshot(next(REAL.glob("oracle-ob-2022-08-22-042703*")))
    assert alert_moved(oracle, 90) is oracle  # an incident start given: nothing to move
    assert alert_moved(snapshot, 0) is snapshot


def test_eval_alert_delay_names_the_suite_with_it(tmp_path: Path) -> None:
    out = tmp_path / "late.json"
    suite = next(REAL.glob("alert-ob-2022-08-22-044416*"))
    result = rca("eval", "--suite", suite, "--alert-delay", "-30", "--json-file", out)
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["suite"] == f"{suite} (alert -30 s)"
    bad = rca("eval", "--suite", suite, "--alert-delay", "soon")
    assert bad.exit_code == 2 and "--alert-delay" in bad.stderr
