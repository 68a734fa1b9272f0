"""Fit the engine's confidence calibration on simulated incidents.

The plain simulator is kinder than production: every fault it injects shows in the culprit's
own telemetry at a fine resolution, and the engine names it about 9 times in 10, while on
real recorded incidents it is right about two times in five (docs/benchmarks.md). A
calibration fitted on such data alone says 0.9 to everything. So the calibration suite mixes
in the simulator's **realism profile** (``rca simulate --realism``: one-minute scrapes,
client-side delays, levels only in the log text, partial logs, an earlier fault on the same
pods), on which the engine is right about three times in four, and the ``samples`` feature
(how many samples the incident part holds) lets the fit tell the two kinds of data apart.
Optionally it also mixes in *blind spots*: incidents whose root cause's own series and logs
are removed, as when the culprit is unmonitored. Both shares are stated assumptions
(``--realism-share``, default 0.5, an even mix; ``--blind-share``, default 0), not fitted to
the real set; the real set only checks the result (``rca eval --suite
../shared/real/nezha-dev``). Example::

    python -m evals.calibrate --seeds 21000-21599 --out agent/engine/calibration.json
    python -m evals.calibrate --seeds 22000-22199 --check agent/engine/calibration.json
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Sequence
from pathlib import Path

import click
import numpy as np
from rich.console import Console

from agent.config import EngineSettings
from agent.engine.calibrate import FEATURES, Calibration
from agent.engine.pipeline import analyze
from agent.models import Analysis
from agent.snapshot import Snapshot
from evals.runner import (
    REAL_SUITE,
    Case,
    evaluate_case,
    parse_seed_range,
    run_suite,
    simulated_cases,
)

L2 = 1e-2  # a little ridge keeps the weights finite when a feature separates perfectly


def _draw(seed: int) -> float:
    """A uniform draw in [0, 1) fixed by the seed: a hash, so the choice does not follow the
    simulator's fault-type cycle (``seed % 9``)."""
    return (zlib.crc32(seed.to_bytes(8, "little")) % 1000) / 1000


def is_blind(seed: int, share: float) -> bool:
    """Whether ``seed`` is one of the blind spots."""
    return _draw(seed) < share


def is_realistic(seed: int, blind_share: float, share: float) -> bool:
    """Whether ``seed`` is simulated with the realism profile (never a blind spot too)."""
    return blind_share <= _draw(seed) < blind_share + share


def hide_root(snapshot: Snapshot) -> Snapshot:
    """The incident as seen when the root cause's own telemetry is missing."""
    truth = snapshot.ground_truth
    if truth is None:
        return snapshot
    return snapshot.model_copy(
        update={
            "signals": [s for s in snapshot.signals if s.service != truth.service],
            "logs": [r for r in snapshot.logs if r.service != truth.service],
        }
    )


def _blinded(case: Case) -> Snapshot:
    return hide_root(case.load())


def calibration_cases(seeds: range, blind_share: float, realism_share: float = 0.0) -> list[Case]:
    """Simulated cases: a ``blind_share`` of them with the root cause's telemetry removed,
    a ``realism_share`` simulated with the realism profile, the rest plain."""
    if blind_share + realism_share > 1.0:
        raise click.UsageError("--blind-share and --realism-share add up to more than 1")
    plain = simulated_cases(seeds)
    realistic = simulated_cases(seeds, suite=REAL_SUITE)
    cases = []
    for seed, case, real in zip(seeds, plain, realistic, strict=True):
        if is_blind(seed, blind_share):
            cases.append(Case(f"{case.name}-blind", functools.partial(_blinded, case)))
        elif is_realistic(seed, blind_share, realism_share):
            cases.append(real)
        else:
            cases.append(case)
    return cases


def fit(features: np.ndarray, right: np.ndarray, l2: float = L2) -> tuple[float, np.ndarray]:
    """Logistic regression by Newton's method: intercept and weights."""
    if len(features) == 0 or right.all() or not right.any():
        raise click.UsageError("calibration needs cases both right and wrong")
    x = np.c_[np.ones(len(features)), features]
    w = np.zeros(x.shape[1])
    penalty = l2 * np.eye(x.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-x @ w))
        gradient = x.T @ (p - right) / len(right) + penalty @ w
        hessian = (x.T * (p * (1 - p))) @ x / len(right) + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), w[1:]


def _features_and_truth(
    cases: Sequence[Case], engine: EngineSettings
) -> tuple[np.ndarray, np.ndarray]:
    rows, right = [], []
    seen: dict[str, dict[str, float]] = {}

    def analyzer(snapshot: Snapshot, settings: EngineSettings) -> Analysis:
        analysis = analyze(snapshot, settings)
        seen["basis"] = analysis.confidence_basis
        return analysis

    for case in cases:
        result = evaluate_case(case, engine, analyzer)
        rows.append([seen["basis"].get(name, 0.0) for name in FEATURES])
        right.append(result.rank == 1)
    return np.asarray(rows, dtype=float), np.asarray(right, dtype=float)


@click.command()
@click.option("--seeds", required=True, metavar="A-B", help="Simulator seeds to fit (or check) on.")
@click.option(
    "--realism-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help="Share of cases simulated with the realism profile (one-minute data, ...).",
)
@click.option(
    "--blind-share",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    show_default=True,
    help="Share of cases whose root cause's own telemetry is removed.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the fit here.")
@click.option(
    "--check",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Score this calibration on the seeds instead of fitting.",
)
def main(
    seeds: str, realism_share: float, blind_share: float, out: Path | None, check: Path | None
) -> None:
    """Fit (or check) the confidence calibration on plain and realistic simulated incidents
    (and blind spots, if asked)."""
    from evals.calibration import reliability_of
    from evals.report import reliability_table

    if (out is None) == (check is None):
        raise click.UsageError("give --out FILE to fit, or --check FILE to score a calibration")
    engine = EngineSettings()
    cases = calibration_cases(parse_seed_range(seeds), blind_share, realism_share)
    mix = f"realism share {realism_share:g}, blind-spot share {blind_share:g}"
    console = Console(stderr=True)
    if check is not None:
        # The shipped calibration is what analyze() uses; --check scores the current one.
        report = run_suite(f"sim {seeds}, {mix}", cases, engine, console=console)
        assert report.reliability is not None
        Console().print(reliability_table([(report.suite, report.reliability)]))
        return
    with console.status(f"analysing {len(cases)} simulated incidents"):
        features, right = _features_and_truth(cases, engine)
    intercept, weights = fit(features, right)
    calibration = Calibration(
        intercept=round(intercept, 4),
        weights={name: round(float(w), 4) for name, w in zip(FEATURES, weights, strict=True)},
        fitted_on=f"simulator seeds {seeds}, {mix}, "
        f"{len(right)} cases, {right.mean():.3f} right at rank 1",
    )
    rel = reliability_of(
        [
            (calibration.probability(dict(zip(FEATURES, row, strict=True))), bool(r))
            for row, r in zip(features, right, strict=True)
        ]
    )
    calibration = Calibration(
        intercept=calibration.intercept,
        weights=calibration.weights,
        fitted_on=calibration.fitted_on,
        checks={"fit_ece": round(rel.ece, 4)},
    )
    out = out or Path("calibration.json")
    out.write_text(calibration.to_json(), encoding="utf-8")
    Console().print(reliability_table([("fit", rel)]))
    click.echo(f"wrote {out}: {calibration.fitted_on}", err=True)


if __name__ == "__main__":
    main()
