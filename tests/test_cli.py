"""The ``rca`` command line, end to end: real snapshots on disk, the real engine and simulator.

Error paths assert the contract: one line on stderr, nothing on stdout, the documented exit
code (2 for anything the user can fix by changing the command or the input).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import build_snapshot

import agent.engine.pipeline
from agent.cli import cli
from agent.clikit import FAULT_CHOICES
from agent.snapshot import write_snapshot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIXTURE = Path(__file__).parent / "fixtures" / "snapshots" / "minimal"


def rca(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_error_line(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {result.stderr!r}"
    assert result.stdout == ""
    return lines[0]


# --- global ---------------------------------------------------------------------------------


def test_version_and_help() -> None:
    assert rca("--version").stdout.strip() == "rca 0.1.0"
    help_text = rca("--help").stdout
    for command in ("analyze", "simulate", "demo", "eval"):
        assert command in help_text


def test_console_script_reports_errors_in_one_line() -> None:
    script = Path(sys.executable).parent / "rca"
    proc = subprocess.run(
        [str(script), "analyze", "/no/such/snapshot"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert (
        proc.stderr == "rca: error: invalid snapshot: /no/such/snapshot: directory does not exist\n"
    )
    assert "Traceback" not in proc.stderr


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    result = rca("--config", tmp_path / "nope.yaml", "analyze", FIXTURE)
    assert result.exit_code == 2
    assert "nope.yaml does not exist" in one_error_line(result)


def test_invalid_setting_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "rca.yaml"
    config.write_text("engine:\n  z_threshold: -1\n")
    result = rca("--config", config, "analyze", FIXTURE)
    assert result.exit_code == 2
    assert one_error_line(result).startswith("rca: error: invalid setting engine.z_threshold")


def test_unexpected_exception_is_one_line_unless_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(agent.engine.pipeline, "analyze", broken)
    result = rca("analyze", FIXTURE)
    assert result.exit_code == 1
    assert one_error_line(result) == (
        "rca: internal error: RuntimeError: boom (re-run with --debug for the traceback)"
    )
    debug = rca("--debug", "analyze", FIXTURE)
    assert debug.exit_code == 1
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().endswith("rca: internal error: RuntimeError: boom")


# --- analyze --------------------------------------------------------------------------------


def test_analyze_missing_directory_names_it(tmp_path: Path) -> None:
    result = rca("analyze", tmp_path / "absent")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert line.startswith("rca: error: invalid snapshot:")
    assert "absent" in line


def test_analyze_bad_json_names_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(FIXTURE, broken)
    with (broken / "signals.jsonl").open("a") as fh:
        fh.write("{not json\n")
    result = rca("analyze", broken)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "signals.jsonl" in line and "line 6" in line


def test_analyze_rejects_bad_flags() -> None:
    assert rca("analyze", FIXTURE, "--bogus").exit_code == 2
    assert rca("analyze", FIXTURE, "--lookback", "0").exit_code == 2
    assert rca("analyze").exit_code == 2


def test_analyze_json_is_machine_readable(snapshot_dir: Path) -> None:
    result = rca("analyze", snapshot_dir, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)  # nothing but JSON on stdout
    assert data["root_cause"]["service"] == "payments"
    assert data["root_cause"]["fault_type"] in FAULT_CHOICES
    assert 0.0 <= data["confidence"] <= 1.0
    assert data["candidates"][0]["service"] == "payments"
    ids = {e["id"] for e in data["evidence"]}
    assert ids and all(i in ids for c in data["candidates"] for i in c["evidence_ids"])


def test_json_file_writes_the_analysis_and_keeps_the_report_on_stdout(
    snapshot_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "analysis.json"
    result = rca("analyze", snapshot_dir, "--json-file", out)
    assert result.exit_code == 0, result.stderr
    assert "Root cause" in result.stdout and result.stderr == f"wrote {out}\n"
    assert json.loads(out.read_text())["root_cause"]["service"] == "payments"
    both = rca("analyze", "--json", snapshot_dir, "--json-file", out)  # --json before the dir
    assert json.loads(both.stdout) == json.loads(out.read_text())


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", FIXTURE],
        ["eval", "--suite", "sim", "--seeds", "1-2"],
        ["check-sources"],
        ["models", "list"],
        ["finetune", "eval", FIXTURE, "--suite", "sim"],
    ],
    ids=lambda c: " ".join(map(str, c[:2])),
)
def test_every_json_command_has_the_same_two_options(command: list[str | Path]) -> None:
    """One meaning for --json (stdout) and one flag for a file, in every command."""
    path = command[: 2 if command[0] in ("models", "finetune") else 1]
    help_text = " ".join(rca(*path, "--help").stdout.split())
    assert re.search(r"--json Print [^-]* as JSON on stdout", help_text), help_text
    assert re.search(r"--json-file FILE Write [^-]* as JSON to FILE", help_text), help_text


def test_eval_json_goes_to_stdout_and_its_tables_to_stderr() -> None:
    result = rca("eval", "--suite", "sim", "--seeds", "1-2", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["suite"] == "sim" and data["metrics"]["n_cases"] == 2
    assert "AC@1" in result.stderr


def test_eval_json_with_a_file_still_writes_it_with_a_deprecation_note(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = rca("eval", "--suite", "sim", "--seeds", "1", "--json", out)
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["seeds"] == "1"
    assert "AC@1" in result.stdout
    assert (
        f"rca: warning: --json FILE is deprecated: use --json-file {out} (--json alone prints "
        "the JSON on stdout)" in result.stderr
    )


@pytest.mark.parametrize(
    ("args", "level"),
    [(["-v"], logging.INFO), (["-vv"], logging.DEBUG), (["--log-level", "ERROR"], logging.ERROR)],
)
def test_log_level_on_the_root_command(args: list[str], level: int) -> None:
    root = logging.getLogger()
    before = root.level, list(root.handlers)
    try:
        assert rca(*args, "models", "list").exit_code == 0
        assert root.level == level
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]


def test_analyze_prints_report_and_writes_markdown_and_chart(tmp_path: Path) -> None:
    md, png = tmp_path / "out" / "report.md", tmp_path / "out" / "evidence.png"
    result = rca("analyze", FIXTURE, "--markdown", md, "--chart", png, "--lookback", "5")
    assert result.exit_code == 0, result.stderr
    assert "Root cause: cartservice" in result.stdout
    assert "Ranked candidates" in result.stdout
    text = md.read_text()
    assert "# Root cause analysis" in text and "**M1**" in text
    assert "![evidence chart](evidence.png)" in text
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    assert f"wrote {md}" in result.stderr


# --- simulate -------------------------------------------------------------------------------


def test_simulate_unknown_fault_lists_choices(tmp_path: Path) -> None:
    result = rca("simulate", "--seed", "1", "--fault", "gremlins", "--out", tmp_path)
    assert result.exit_code == 2
    assert "gremlins" in result.stderr and "memory_leak" in result.stderr


def test_simulate_requires_seed_and_out(tmp_path: Path) -> None:
    assert rca("simulate", "--out", tmp_path).exit_code == 2
    assert rca("simulate", "--seed", "1").exit_code == 2


def test_simulate_writes_a_loadable_snapshot_with_truth(tmp_path: Path) -> None:
    out = tmp_path / "incident"
    result = rca("simulate", "--seed", "3", "--fault", "memory_leak", "--out", out)
    assert result.exit_code == 0, result.stderr
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["fault_type"] == "memory_leak"
    assert rca("analyze", out, "--json").exit_code == 0


# --- demo -----------------------------------------------------------------------------------


def test_demo_writes_report_and_png(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = rca("demo", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "Root cause:" in result.stdout
    assert "report.md" in result.stdout
    report = (out / "report.md").read_text()
    assert re.search(r"\*\*[ML]\d+\*\*", report), "the report cites no evidence id"
    assert (out / "evidence.png").read_bytes().startswith(PNG_SIGNATURE)
    assert (out / "snapshot" / "snapshot.json").is_file()


# --- eval -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seeds", ["5-2", "abc", "1-x"])
def test_eval_rejects_malformed_seed_range(seeds: str) -> None:
    result = rca("eval", "--suite", "sim", "--seeds", seeds)
    assert result.exit_code == 2
    assert "--seeds" in result.stderr


def test_eval_sim_needs_seeds_and_dir_suite_refuses_them(tmp_path: Path) -> None:
    assert rca("eval", "--suite", "sim").exit_code == 2
    assert rca("eval", "--suite", FIXTURE.parent, "--seeds", "1-2").exit_code == 2
    assert rca("eval", "--suite", "sim", "--seeds", "1-2", "--fault", "nope").exit_code == 2


def test_eval_directory_without_usable_cases(tmp_path: Path) -> None:
    write_snapshot(build_snapshot(with_truth=False), tmp_path / "suite" / "unlabelled")
    result = rca("eval", "--suite", tmp_path / "suite")
    assert result.exit_code == 2
    assert "no usable cases" in one_error_line(result)
    assert rca("eval", "--suite", tmp_path / "missing").exit_code == 2


def test_eval_directory_suite(tmp_path: Path) -> None:
    suite = tmp_path / "suite"
    write_snapshot(build_snapshot(), suite / "payments-leak")
    shutil.copytree(FIXTURE, suite / "cart-cpu")
    write_snapshot(build_snapshot(with_truth=False), suite / "unlabelled")
    out = tmp_path / "eval.json"
    result = rca("eval", "--suite", suite, "--json-file", out, "--png", tmp_path / "eval.png")
    assert result.exit_code == 0, result.stderr
    assert "skipped unlabelled: no ground_truth.json" in result.stderr
    data = json.loads(out.read_text())
    assert data["metrics"]["n_cases"] == 2
    assert {c["case"] for c in data["cases"]} == {"payments-leak", "cart-cpu"}
    assert (tmp_path / "eval.png").read_bytes().startswith(PNG_SIGNATURE)


def test_eval_sim_writes_documented_json(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    result = rca("eval", "--suite", "sim", "--seeds", "1-3", "--json-file", out)
    assert result.exit_code == 0, result.stderr
    assert "AC@1" in result.stdout
    data = json.loads(out.read_text())
    assert data["suite"] == "sim" and data["seeds"] == "1-3"
    metric_keys = {
        "ac_at_1", "ac_at_3", "avg_at_5", "fault_type_accuracy",
        "n_cases", "latency_p50_s", "latency_p95_s",
        "ac_at_1_ties_shared", "ac_at_3_ties_shared",
    }  # fmt: skip
    assert set(data["metrics"]) == metric_keys
    assert data["metrics"]["n_cases"] == 3
    for metrics in data["per_fault_type"].values():
        assert set(metrics) == metric_keys
    case_keys = {
        "case", "truth_service", "truth_fault", "predicted", "predicted_fault",
        "rank", "latency_s", "confidence", "tied_before", "tied_after",
    }  # fmt: skip
    assert [set(c) for c in data["cases"]] == [case_keys] * 3
    assert all(c["latency_s"] > 0 for c in data["cases"])
