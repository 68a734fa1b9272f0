"""Confidence as the probability that the named root cause is right.

The ranking's scores say which service leads and by how much, not how often such a lead is
right. This stage maps the leader's margin features to a probability with a logistic model
(Platt scaling over several features) fitted offline on simulated incidents by
:mod:`evals.calibrate` and checked on real recorded ones, on which it is never fitted. The
fitted weights ship with the package (``calibration.json``) together with what they were
fitted on, so a report's 0.8 means "right about four times in five" on data like that.

Features, all computed from the ranked candidates alone:

* ``share``: the leader's part of the summed scores of the candidates shown, a spread-out
  ranking (many services moved about as much) is a guess among them;
* ``margin``: the leader's lead over the runner-up, as a share of its own score;
* ``strength``: ``log1p`` of the leader's evidence strength, how far its own findings are
  from noise;
* ``cause``: 1 when the leader's own series show a cause (a saturated resource, a change
  rising), 0 when it is named by symptoms alone (latency, errors, callers' waits, logs), which
  neighbours of the real cause show as well;
* ``samples``: ``log1p`` of how many samples the incident part of the window holds (its length
  over the sampling interval). Five one-minute samples cannot date an onset or tell a step
  from noise the way a hundred can: on the simulator, one-minute data alone costs a quarter
  of the right answers (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from agent.engine.detect.kinds import CAUSE_KINDS
from agent.engine.service_score import ServiceScore
from agent.errors import ConfigError

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
FEATURES = ("share", "margin", "strength", "cause", "samples")


def margin_features(ranked: Sequence[ServiceScore], samples: float) -> dict[str, float]:
    """The leader's standing among the ranked candidates, and the ``samples`` the incident
    part holds (see the module docstring)."""
    if not ranked or ranked[0].score <= 0:
        return dict.fromkeys(FEATURES, 0.0)
    first = ranked[0].score
    second = ranked[1].score if len(ranked) > 1 else 0.0
    total = sum(max(s.score, 0.0) for s in ranked)
    return {
        "share": round(first / total, 4),
        "margin": round((first - second) / first, 4),
        "strength": round(math.log1p(max(ranked[0].strength, 0.0)), 4),
        "cause": float(any(f.kind in CAUSE_KINDS and f.direction > 0 for f in ranked[0].metrics)),
        "samples": round(math.log1p(max(samples, 0.0)), 4),
    }


@dataclass(frozen=True)
class Calibration:
    """A logistic map from margin features to P(root cause right), with its provenance."""

    intercept: float
    weights: Mapping[str, float]
    fitted_on: str = ""
    checks: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FEATURES)
        if unknown:
            raise ValueError(f"calibration weights for unknown features: {sorted(unknown)}")

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.intercept + sum(w * features.get(name, 0.0) for name, w in self.weights.items())
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def to_json(self) -> str:
        data = {
            "intercept": self.intercept,
            "weights": dict(self.weights),
            "fitted_on": self.fitted_on,
            "checks": dict(self.checks),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "calibration") -> Calibration:
        try:
            data = json.loads(text)
            return cls(
                intercept=float(data["intercept"]),
                weights={str(k): float(v) for k, v in data["weights"].items()},
                fitted_on=str(data.get("fitted_on", "")),
                checks={str(k): float(v) for k, v in data.get("checks", {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{source}: not a calibration file ({err})") from None


@cache
def shipped() -> Calibration:
    """The calibration that ships with the package."""
    return Calibration.from_json(
        CALIBRATION_FILE.read_text(encoding="utf-8"), str(CALIBRATION_FILE)
    )


@cache
def load_calibration(path: Path | None) -> Calibration:
    """The calibration in ``path`` (``engine.calibration``), the shipped one for ``None``."""
    if path is None:
        return shipped()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"engine.calibration: cannot read {path}: {err.strerror}") from None
    try:
        return Calibration.from_json(text, str(path))
    except ValueError as err:
        raise ConfigError(f"engine.calibration: {err}") from None
