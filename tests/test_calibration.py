"""Confidence calibration: the margin features, the logistic map, its fit, and its report."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pytest
from test_eval_suites import PNG_SIGNATURE, rca

from agent.engine.calibrate import FEATURES, Calibration, margin_features, shipped
from agent.engine.service_score import ServiceScore
from evals.calibrate import calibration_cases, fit, hide_root, is_blind, is_realistic
from evals.calibration import reliability_of
from evals.runner import parse_seed_range, simulated_cases

FIXTURES = Path(__file__).parent / "fixtures" / "real"


def _ranked(*scores: float) -> list[ServiceScore]:
    return [ServiceScore(f"s{i}", score=s, strength=s) for i, s in enumerate(scores)]


def test_margin_features_describe_the_leaders_standing() -> None:
    alone = margin_features(_ranked(2.0), 10)
    assert alone["share"] == 1.0 and alone["margin"] == 1.0
    tie = margin_features(_ranked(2.0, 2.0, 1.0), 10)
    assert tie["margin"] == 0.0 and tie["share"] == pytest.approx(0.4)
    assert margin_features([], 10) == dict.fromkeys(FEATURES, 0.0)


def test_fewer_samples_in_the_incident_lower_the_confidence() -> None:
    few, many = margin_features(_ranked(2.0, 1.0), 5), margin_features(_ranked(2.0, 1.0), 120)
    assert few["samples"] == pytest.approx(np.log1p(5), abs=1e-4)
    assert many["samples"] > few["samples"]
    # Five one-minute samples date an onset less surely than 120 five-second ones.
    calibration = shipped()
    assert calibration.probability(few) < calibration.probability(many)


def test_the_cause_feature_says_whether_the_leader_shows_a_cause_itself() -> None:
    from findings_support import metric

    from agent.models import SignalKind

    saturated = ServiceScore("db", score=2.0, strength=2.0, metrics=[metric("db", "cpu_usage", 9)])
    slow = ServiceScore(
        "api", score=2.0, strength=2.0, metrics=[metric("api", "p99", 9, kind=SignalKind.LATENCY)]
    )
    freed = ServiceScore(
        "db", score=2.0, strength=2.0, metrics=[metric("db", "cpu_usage", 9, direction=-1)]
    )
    assert margin_features([saturated], 10)["cause"] == 1.0
    assert margin_features([slow], 10)["cause"] == 0.0
    assert margin_features([freed], 10)["cause"] == 0.0  # a resource that fell is no cause
    # All else equal, a leader that shows a cause itself is likelier right.
    calibration = shipped()
    base = {"share": 0.5, "margin": 0.3, "strength": 1.0, "samples": 3.0}
    assert calibration.probability({**base, "cause": 1.0}) > calibration.probability(base)


def test_the_shipped_calibration_never_lowers_confidence_for_a_wider_lead() -> None:
    calibration = shipped()
    assert calibration.fitted_on.startswith("simulator seeds")
    close = calibration.probability({"share": 0.3, "margin": 0.05, "strength": 1.0})
    clear = calibration.probability({"share": 0.8, "margin": 0.7, "strength": 1.0})
    strong = calibration.probability({"share": 0.8, "margin": 0.7, "strength": 3.0})
    assert 0.0 < close < clear <= strong < 1.0


def test_a_broken_calibration_file_is_named_in_the_error() -> None:
    with pytest.raises(ValueError, match=r"my\.json: not a calibration file"):
        Calibration.from_json('{"weights": {}}', "my.json")
    with pytest.raises(ValueError, match="unknown features"):
        Calibration(intercept=0.0, weights={"luck": 1.0})


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fit_recovers_a_known_logistic_map(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(4000, 3))
    truth = np.array([1.5, -2.0, 3.0])
    p = 1 / (1 + np.exp(-(-1.0 + x @ truth)))
    right = (rng.uniform(size=4000) < p).astype(float)
    intercept, weights = fit(x, right, l2=0.0)
    assert intercept == pytest.approx(-1.0, abs=0.35)
    assert weights == pytest.approx(truth, abs=0.45)


def test_reliability_measures_the_gap_between_confidence_and_accuracy() -> None:
    honest = [(0.75, True)] * 3 + [(0.75, False)] + [(0.25, True)] + [(0.25, False)] * 3
    assert reliability_of(honest).ece == pytest.approx(0.0)
    boastful = [(0.95, True)] * 5 + [(0.95, False)] * 5
    rel = reliability_of(boastful)
    assert rel.ece == pytest.approx(0.45)
    assert (rel.label("high").n_cases, rel.label("high").n_right) == (10, 5)
    assert rel.label("low").precision is None


def test_blind_spots_remove_the_root_causes_own_telemetry() -> None:
    seeds = parse_seed_range("500-599")
    blind = [s for s in seeds if is_blind(s, 0.5)]
    assert 30 < len(blind) < 70  # about half
    assert set(blind) != {s for s in seeds if s % 2}
    assert {s % 9 for s in blind} == set(range(9))  # every simulated fault type has blind spots
    snapshot = simulated_cases(parse_seed_range("500"))[0].load()
    root = snapshot.ground_truth.service if snapshot.ground_truth else ""
    hidden = hide_root(snapshot)
    assert any(s.service == root for s in snapshot.signals)
    assert not any(s.service == root for s in hidden.signals + hidden.logs)  # type: ignore[operator]
    names = [c.name for c in calibration_cases(parse_seed_range("500-509"), 1.0)]
    assert all(name.endswith("-blind") for name in names)


def test_the_calibration_suite_mixes_plain_realistic_and_blind_cases() -> None:
    seeds = parse_seed_range("500-699")
    names = [c.name for c in calibration_cases(seeds, 0.2, 0.5)]
    blind = sum(n.endswith("-blind") for n in names)
    real = sum(n.startswith("sim-real-") for n in names)
    assert 20 < blind < 60 and 70 < real < 130 and 200 - blind - real > 30
    # The same seed is never both: a blind spot is cut out of a plain case.
    assert not any(is_blind(s, 0.2) and is_realistic(s, 0.2, 0.5) for s in seeds)
    with pytest.raises(click.UsageError, match="more than 1"):
        calibration_cases(seeds, 0.6, 0.5)


def test_eval_reports_ece_precision_per_label_and_a_reliability_diagram(tmp_path: Path) -> None:
    png, out = tmp_path / "reliability.png", tmp_path / "eval.json"
    result = rca("eval", "--suite", FIXTURES, "--json-file", out, "--reliability-png", png)
    assert result.exit_code == 0, result.stderr
    assert "ECE" in result.stdout and "high ≥ 0.7 right" in result.stdout
    assert png.read_bytes().startswith(PNG_SIGNATURE)
    data = json.loads(out.read_text())
    assert data["reliability"]["n_cases"] == data["metrics"]["n_cases"]
    assert {label["label"] for label in data["reliability"]["labels"]} == {"high", "medium", "low"}


def test_a_team_can_point_the_engine_at_its_own_calibration(tmp_path: Path) -> None:
    from agent.config import EngineSettings
    from agent.engine.pipeline import analyze
    from agent.errors import ConfigError
    from agent.snapshot import load_snapshot

    snapshot = load_snapshot(next(p for p in sorted(FIXTURES.iterdir()) if p.is_dir()))
    sure = Calibration(intercept=10.0, weights={"margin": 0.0}, fitted_on="test")
    path = tmp_path / "sure.json"
    path.write_text(sure.to_json())
    shipped_conf = analyze(snapshot).confidence
    own = analyze(snapshot, EngineSettings(calibration=path))
    # P(right) ~ 1 under this calibration: only the close-call and weak-evidence caps hold it.
    assert own.confidence in (1.0, 0.35, 0.2)
    assert own.confidence >= shipped_conf
    broken = tmp_path / "broken.json"
    broken.write_text("{}")
    with pytest.raises(ConfigError, match=r"engine\.calibration: .*broken\.json"):
        analyze(snapshot, EngineSettings(calibration=broken))
