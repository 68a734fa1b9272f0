"""Changes judged canary style, on small synthetic rollouts: new pods against old pods."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from agent.engine.canary import judge, judge_changes
from agent.engine.mannwhitney import mann_whitney_greater
from agent.engine.pipeline import analyze
from agent.models import Change, FaultType, Signal
from agent.snapshot import Snapshot, SnapshotMeta, WindowSpec

T0 = 1_700_000_000.0
STEP = 60.0
MINUTES = 60
CHANGE_AT = T0 + 40 * STEP  # rollouts land at minute 40; the incident is split at minute 38
SPLIT = T0 + 38 * STEP


def _series(
    rng: np.random.Generator,
    service: str,
    pod: str,
    name: str,
    level: float,
    start: int = 0,
    after_change: float | None = None,
) -> Signal:
    ts = [T0 + i * STEP for i in range(start, MINUTES)]
    values = [
        float(
            abs(
                rng.normal(
                    (after_change if (after_change and t >= CHANGE_AT) else level), level * 0.1
                )
            )
        )
        for t in ts
    ]
    return Signal(service=service, pod=pod, name=name, timestamps=ts, values=values)


def _rollout(
    rng: np.random.Generator, service: str, bad: float | None, keep_old: bool = True
) -> list[Signal]:
    """Two old pods all along (or until the change), two new pods from the change on."""
    signals = []
    for n in (1, 2):
        old = _series(rng, service, f"{service}-6f7d9c-{n}", "http_requests_errors:ratio", 0.01)
        if not keep_old:
            cut = int((CHANGE_AT - T0) / STEP)
            old = old.model_copy(
                update={"timestamps": old.timestamps[:cut], "values": old.values[:cut]}
            )
        signals.append(old)
        signals.append(
            _series(
                rng,
                service,
                f"{service}-8b4c1e-{n}",
                "http_requests_errors:ratio",
                bad if bad is not None else 0.01,
                start=40,
            )
        )
    return signals


def _change(service: str) -> Change:
    return Change(
        service=service,
        at=datetime.fromtimestamp(CHANGE_AT, tz=UTC),
        from_version="v1",
        to_version="v2",
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_mann_whitney_tells_a_shift_from_noise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    same = mann_whitney_greater(rng.normal(0, 1, 20), rng.normal(0, 1, 20))
    shifted = mann_whitney_greater(rng.normal(3, 1, 20), rng.normal(0, 1, 20))
    assert same > 0.001
    assert shifted < 1e-5
    assert mann_whitney_greater(np.zeros(5), np.zeros(5)) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_new_pods_worse_than_old_pods_make_the_change_suspect(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bad = judge(_change("checkout"), _rollout(rng, "checkout", 0.2), {}, T0 + MINUTES * STEP)
    assert bad.verdict == "suspect"
    assert bad.worst is not None and "v1 pods over the same minutes" in bad.worst.versus
    healthy = judge(_change("catalog"), _rollout(rng, "catalog", None), {}, T0 + MINUTES * STEP)
    assert healthy.verdict == "cleared"
    assert "cleared" in healthy.reasons[0]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_finished_rollout_is_compared_with_the_pods_before_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    signals = _rollout(rng, "checkout", 0.2, keep_old=False)
    judged = judge(_change("checkout"), signals, {}, T0 + MINUTES * STEP)
    assert judged.verdict == "suspect"
    assert (
        judged.worst is not None and judged.worst.versus == "the service's pods before the change"
    )


def test_a_change_without_new_pods_in_the_data_is_unknown() -> None:
    rng = np.random.default_rng(0)
    old_only = [_series(rng, "cart", "cart-6f7d9c-1", "http_requests_errors:ratio", 0.01)]
    assert judge(_change("cart"), old_only, {}, T0 + MINUTES * STEP).verdict == "unknown"


def test_changes_long_before_the_incident_are_not_judged() -> None:
    early = _change("cart").model_copy(update={"at": datetime.fromtimestamp(T0, tz=UTC)})
    assert judge_changes([early], [], {}, T0, T0 + 70 * STEP, T0 + 80 * STEP) == []


def _two_rollouts(seed: int) -> Snapshot:
    """checkout's rollout is defective, catalog's healthy, in the same minute."""
    rng = np.random.default_rng(seed)
    signals = _rollout(rng, "checkout", 0.2) + _rollout(rng, "catalog", None)
    # Both deploys show as a version step, which alone reads as a cause for either service.
    for service in ("checkout", "catalog"):
        ts = [T0 + i * STEP for i in range(MINUTES)]
        version = [1.0 if t < CHANGE_AT else 2.0 for t in ts]
        signals.append(
            Signal(service=service, name="deployment_version", timestamps=ts, values=version)
        )
    return Snapshot(
        meta=SnapshotMeta(
            id="rollouts",
            window=WindowSpec(
                start=datetime.fromtimestamp(T0, tz=UTC),
                incident_start=datetime.fromtimestamp(SPLIT, tz=UTC),
                end=datetime.fromtimestamp(T0 + (MINUTES - 1) * STEP, tz=UTC),
            ),
        ),
        signals=signals,
        changes=[
            _change("checkout"),
            _change("catalog").model_copy(update={"link": "https://ci/42"}),
        ],
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_defective_rollout_is_named_and_the_healthy_one_cleared(seed: int) -> None:
    snapshot = _two_rollouts(seed)
    analysis = analyze(snapshot)
    assert analysis.candidates[0].service == "checkout"
    assert analysis.candidates[0].fault_type is FaultType.BAD_DEPLOY
    verdicts = {v.change.service: v for v in analysis.changes}
    assert verdicts["checkout"].verdict == "suspect"
    assert verdicts["catalog"].verdict == "cleared"
    (cited,) = verdicts["checkout"].evidence_ids
    evidence = analysis.evidence_by_id(cited)
    assert evidence is not None and evidence.pattern == "canary"
    assert "Mann-Whitney" in evidence.description
    assert all(c.service != "catalog" or c.score < 0.5 for c in analysis.candidates)


def test_reports_and_slack_name_the_suspect_change_and_suggest_a_rollback() -> None:
    from agent.report import markdown_report, report_text
    from agent.slack.blocks import incident_blocks

    analysis = analyze(_two_rollouts(5))
    text = report_text(analysis)
    assert "Changes in the window" in text
    assert "suspect: checkout v1 → v2" in text and "cleared: catalog v1 → v2" in text
    markdown = markdown_report(analysis)
    assert "## Changes in the window" in markdown and "https://ci/42" in markdown
    assert analysis.next_steps[0].startswith("Consider rolling back checkout (back from v2 to v1)")
    assert "kubectl rollout undo deployment/checkout" in analysis.next_steps[0]
    blocks = incident_blocks(analysis)
    changes = [b for b in blocks if "Changes in the window" in str(b.get("text", ""))]
    assert len(changes) == 1
    section = changes[0]["text"]["text"]
    assert section.index("suspect: checkout") < section.index("cleared: catalog")
    assert "<https://ci/42|change>" in section
    # The snapshot's changes name no namespace: the command says it holds a placeholder.
    assert "`kubectl rollout undo deployment/checkout -n <namespace>`" in analysis.next_steps[0]
    assert "`<namespace>` is a placeholder" in analysis.next_steps[0]


def test_the_rollback_and_the_reports_name_the_changes_namespace() -> None:
    from agent.report import markdown_report
    from agent.slack.blocks import incident_blocks

    snapshot = _two_rollouts(5)
    placed = [c.model_copy(update={"namespace": "shop"}) for c in snapshot.changes]
    analysis = analyze(snapshot.model_copy(update={"changes": placed}))
    step = analysis.next_steps[0]
    assert "`kubectl rollout undo deployment/checkout -n shop`" in step
    assert "placeholder" not in step and "<namespace>" not in step
    markdown = markdown_report(analysis)
    assert "suspect: checkout v1 → v2 (deploy at" in markdown
    assert ", namespace shop)" in markdown
    assert "-n shop" in str(incident_blocks(analysis))


def test_the_rollback_step_names_the_namespace_or_says_it_is_unknown() -> None:
    from agent.summarize.extractive import rollback_step

    change = Change(service="checkout", at=datetime(2024, 5, 14, tzinfo=UTC), from_version="v1")
    unknown = rollback_step(change.model_copy(update={"to_version": "v2"}))
    assert unknown.startswith("Consider rolling back checkout (back from v2 to v1): ")
    assert "`kubectl rollout undo deployment/checkout -n <namespace>`" in unknown
    assert "the change's namespace is not known" in unknown
    known = rollback_step(change.model_copy(update={"namespace": "prod-eu"}))
    assert "`kubectl rollout undo deployment/checkout -n prod-eu`" in known
    assert "<namespace>" not in known and "not known" not in known


@pytest.mark.parametrize("seed", [1, 2])
def test_without_per_pod_serving_series_the_services_own_errors_decide(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cpu = [
        _series(rng, "cart", "cart-6f7d9c-1", "container_cpu_usage_seconds:rate", 0.2),
        _series(rng, "cart", "cart-8b4c1e-1", "container_cpu_usage_seconds:rate", 0.2, start=40),
    ]
    assert judge(_change("cart"), cpu, {}, T0 + MINUTES * STEP).verdict == "unknown"
    errors = _series(rng, "cart", "", "http_requests_errors:ratio", 0.01, after_change=0.3)
    broken = judge(
        _change("cart"), [*cpu, errors.model_copy(update={"pod": None})], {}, T0 + MINUTES * STEP
    )
    assert broken.verdict == "suspect"
    assert broken.worst is not None and not broken.worst.same_minutes
    assert broken.worst.weight < 1.0
    steady = _series(rng, "cart", "", "http_requests_errors:ratio", 0.01)
    healthy = judge(
        _change("cart"), [*cpu, steady.model_copy(update={"pod": None})], {}, T0 + MINUTES * STEP
    )
    assert healthy.verdict == "cleared"


def test_pod_versions_from_labels_pick_the_new_pods() -> None:
    rng = np.random.default_rng(7)
    signals = _rollout(rng, "checkout", 0.2)
    # Pod names that carry no ReplicaSet hash: only the version label tells old from new.
    relabelled = [
        s.model_copy(
            update={
                "pod": s.pod.replace("6f7d9c", "a").replace("8b4c1e", "b") if s.pod else None,
                "labels": {"version": "v2" if s.pod and "8b4c1e" in s.pod else "v1"},
            }
        )
        for s in signals
    ]
    snapshot = Snapshot(
        meta=SnapshotMeta(
            id="labels",
            window=WindowSpec(
                start=datetime.fromtimestamp(T0, tz=UTC),
                incident_start=datetime.fromtimestamp(SPLIT, tz=UTC),
                end=datetime.fromtimestamp(T0 + (MINUTES - 1) * STEP, tz=UTC),
            ),
        ),
        signals=relabelled,
        changes=[_change("checkout")],
    )
    (verdict,) = analyze(snapshot).changes
    assert verdict.verdict == "suspect"
