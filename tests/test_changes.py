"""Changes and pod versions from telemetry (agent/changes.py), on small synthetic cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.changes import (
    changes_from_signals,
    image_version,
    merge_changes,
    pod_versions,
    replicaset_hash,
    series_change_kind,
)
from agent.models import Change, ChangeKind, Signal, SignalKind

T0 = 1_715_680_800.0  # 2024-05-14T10:00:00Z
STEP = 60.0


def at(minute: float) -> datetime:
    return datetime.fromtimestamp(T0 + minute * STEP, UTC)


def series(
    service: str,
    name: str,
    values: list[float | None],
    *,
    pod: str | None = None,
    first: int = 0,
    kind: SignalKind | None = None,
    labels: dict[str, str] | None = None,
) -> Signal:
    return Signal(
        service=service,
        name=name,
        kind=kind,
        pod=pod,
        resolution_s=STEP,
        timestamps=[T0 + (first + i) * STEP for i in range(len(values))],
        values=values,
        labels=labels or {},
    )


def cpu(service: str, pod: str, first: int, last: int, **labels: str) -> Signal:
    """A pod's CPU series from minute ``first`` to ``last`` inclusive."""
    return series(service, "cpu", [0.2] * (last - first + 1), pod=pod, first=first, labels=labels)


# --- pod names and image references ------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ("checkout-7d9f8c6b5-x2k4q", "7d9f8c6b5"),
        ("cart-service-5d8f7c9b6-x2k4q", "5d8f7c9b6"),
        ("api-gateway-6b7c9d8f4f-9zz2w", "6b7c9d8f4f"),
        ("redis-0", None),  # StatefulSet
        ("node-exporter-x2k4q", None),  # DaemonSet: no template hash
        ("cart-gateway-x2k4q", None),  # vowels: a word, not a hash
        ("checkout", None),
    ],
)
def test_replicaset_hash_from_pod_names(pod: str, expected: str | None) -> None:
    assert replicaset_hash(pod) == expected


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/shop/checkout:1.4.3", "1.4.3"),
        ("registry:5000/shop/checkout:v2", "v2"),  # a registry port is not a tag
        ("registry:5000/shop/checkout", "latest"),
        ("checkout@sha256:abc123", "sha256:abc123"),
        ("checkout", "latest"),
    ],
)
def test_image_version(image: str, expected: str) -> None:
    assert image_version(image) == expected


# --- pod_versions ------------------------------------------------------------------------


def test_pod_version_from_labels_before_the_pod_name() -> None:
    signals = [
        cpu("checkout", "checkout-7d9f8c6b5-x2k4q", 0, 9, version="v2"),
        cpu("checkout", "checkout-5d8f7c9b6-b2c4d", 0, 9, app_version="1.4.2"),
        cpu("checkout", "checkout-5d8f7c9b6-q2k4z", 0, 9, image="ghcr.io/shop/checkout:1.4.3"),
        cpu("checkout", "checkout-5d8f7c9b6-zzzzz", 0, 9, pod_template_hash="6b7c9d8f4f"),
        cpu("checkout", "checkout-5d8f7c9b6-wwwww", 0, 9),
        cpu("redis", "redis-0", 0, 9),
    ]
    assert pod_versions(signals) == {
        ("checkout", "checkout-7d9f8c6b5-x2k4q"): "v2",
        ("checkout", "checkout-5d8f7c9b6-b2c4d"): "1.4.2",
        ("checkout", "checkout-5d8f7c9b6-q2k4z"): "1.4.3",
        ("checkout", "checkout-5d8f7c9b6-zzzzz"): "6b7c9d8f4f",
        ("checkout", "checkout-5d8f7c9b6-wwwww"): "5d8f7c9b6",
    }


def test_the_most_telling_label_of_a_pod_wins_across_its_series() -> None:
    pod = "checkout-7d9f8c6b5-x2k4q"
    signals = [
        cpu("checkout", pod, 0, 9, image="shop/checkout:1.4.3"),
        series("checkout", "info", [1.0] * 10, pod=pod, labels={"version": "v1.4.3"}),
    ]
    assert pod_versions(signals) == {("checkout", pod): "v1.4.3"}


def test_a_reported_deploy_names_the_pod_groups_of_its_rollout() -> None:
    old = ["checkout-5d8f7c9b6-b2c4d", "checkout-5d8f7c9b6-q2k4z"]
    new = ["checkout-7d9f8c6b5-x2k4q", "checkout-7d9f8c6b5-z9z9z"]
    signals = [cpu("checkout", p, 0, 21) for p in old] + [cpu("checkout", p, 20, 39) for p in new]
    signals.append(cpu("cart", "cart-6b7c9d8f4f-x2k4q", 0, 39))
    deploy = Change(service="checkout", at=at(22), from_version="v1.4.2", to_version="v1.4.3")
    versions = pod_versions(signals, [deploy])
    assert {versions[("checkout", p)] for p in old} == {"v1.4.2"}
    assert {versions[("checkout", p)] for p in new} == {"v1.4.3"}
    assert versions[("cart", "cart-6b7c9d8f4f-x2k4q")] == "6b7c9d8f4f"  # another service
    far = deploy.model_copy(update={"at": at(20) + timedelta(hours=1)})
    assert pod_versions(signals, [far])[("checkout", new[0])] == "7d9f8c6b5"  # nothing near


# --- changes_from_signals ----------------------------------------------------------------


def test_a_generation_step_is_a_deploy_without_versions() -> None:
    generation = series("checkout", "kube_deployment_metadata_generation", [4.0] * 10 + [5.0] * 10)
    (change,) = changes_from_signals([generation])
    assert (change.service, change.kind, change.at) == ("checkout", ChangeKind.DEPLOY, at(10))
    assert (change.from_version, change.to_version, change.source) == (None, None, "signals")


def test_a_version_series_names_its_versions() -> None:
    (change,) = changes_from_signals([series("cart", "version", [3.0] * 5 + [None, 4.0, 4.0])])
    assert (change.at, change.from_version, change.to_version) == (at(6), "3", "4")


@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("kube_deployment_status_observed_generation", None, ChangeKind.DEPLOY),
        ("app_build_info", SignalKind.CHANGE, ChangeKind.DEPLOY),
        ("configmap_config_hash", None, ChangeKind.CONFIG),
        ("feature_flag_version", None, ChangeKind.FEATURE_FLAG),
        ("kube_deployment_spec_replicas", None, ChangeKind.SCALE),
        ("kube_pod_container_status_restarts_total", None, None),  # happened to it
        ("process_start_time_seconds", None, None),
        ("version", SignalKind.RESOURCE, None),  # declared a measurement
        ("cpu", None, None),
    ],
)
def test_which_series_mark_changes(name: str, kind: SignalKind | None, expected: object) -> None:
    assert series_change_kind(series("x", name, [1.0], kind=kind)) == expected


def test_restarts_and_steady_series_are_not_changes() -> None:
    signals = [
        series("cart", "kube_pod_container_status_restarts_total", [0.0] * 5 + [3.0] * 5),
        series("cart", "kube_deployment_metadata_generation", [7.0] * 10),
        cpu("cart", "cart-6b7c9d8f4f-x2k4q", 0, 9),
    ]
    assert changes_from_signals(signals) == []


def test_a_new_replicaset_in_pod_names_is_a_deploy_between_the_hashes() -> None:
    signals = [
        cpu("checkout", "checkout-5d8f7c9b6-b2c4d", 0, 21),
        cpu("checkout", "checkout-5d8f7c9b6-q2k4z", 0, 22),
        cpu("checkout", "checkout-7d9f8c6b5-x2k4q", 20, 39),
        cpu("checkout", "checkout-7d9f8c6b5-z9z9z", 21, 39),
        # a scale-up and a replaced pod in the same ReplicaSet are not deploys
        cpu("cart", "cart-6b7c9d8f4f-x2k4q", 0, 39),
        cpu("cart", "cart-6b7c9d8f4f-bbbbb", 25, 39),
        cpu("redis", "redis-0", 0, 39),
    ]
    (change,) = changes_from_signals(signals)
    assert (change.service, change.at) == ("checkout", at(20))
    assert (change.from_version, change.to_version) == ("5d8f7c9b6", "7d9f8c6b5")


def test_two_versions_from_the_start_are_no_change() -> None:
    """A canary that ran all along, whose first scrape came a minute late."""
    signals = [
        cpu("checkout", "checkout-5d8f7c9b6-b2c4d", 0, 39),
        cpu("checkout", "checkout-7d9f8c6b5-x2k4q", 1, 39),
    ]
    assert changes_from_signals(signals) == []


def test_generation_and_new_pods_of_one_rollout_are_one_change() -> None:
    signals = [
        series("checkout", "kube_deployment_metadata_generation", [4.0] * 20 + [5.0] * 20),
        series("checkout", "kube_deployment_status_observed_generation", [4.0] * 21 + [5.0] * 19),
        cpu("checkout", "checkout-5d8f7c9b6-b2c4d", 0, 22),
        cpu("checkout", "checkout-7d9f8c6b5-x2k4q", 21, 39),
    ]
    (change,) = changes_from_signals(signals)
    assert change.at == at(20)
    assert (change.from_version, change.to_version) == ("5d8f7c9b6", "7d9f8c6b5")


def test_a_rollback_is_a_second_deploy() -> None:
    signals = [
        cpu("checkout", "checkout-5d8f7c9b6-b2c4d", 0, 11),
        cpu("checkout", "checkout-7d9f8c6b5-x2k4q", 10, 19),
        cpu("checkout", "checkout-5d8f7c9b6-q2k4z", 18, 39),
    ]
    found = [(c.at, c.from_version, c.to_version) for c in changes_from_signals(signals)]
    assert found == [(at(10), "5d8f7c9b6", "7d9f8c6b5"), (at(18), "7d9f8c6b5", "5d8f7c9b6")]


def test_a_version_label_appearing_is_a_deploy() -> None:
    """Service-level info series, one per version (``app_build_info{version=...}``)."""
    signals = [
        series("search", "app_build_info", [1.0] * 15, labels={"version": "2.0.1"}),
        series("search", "app_build_info", [1.0] * 25, first=15, labels={"version": "2.1.0"}),
    ]
    (change,) = changes_from_signals(signals)
    assert (change.at, change.from_version, change.to_version) == (at(15), "2.0.1", "2.1.0")


# --- merge_changes -----------------------------------------------------------------------


def test_reports_of_one_rollout_merge_and_keep_the_reporters_fields() -> None:
    reported = Change(
        service="checkout",
        at=at(22),
        to_version="v1.4.3",
        author="ci",
        link="https://ci/run/7",
        id="run-7",
    )
    observed = Change(
        service="checkout",
        at=at(20),
        from_version="5d8f7c9b6",
        to_version="7d9f8c6b5",
        source="prometheus",
    )
    (merged,) = merge_changes([observed], [reported])
    assert merged.source == "api" and merged.id == "run-7" and merged.author == "ci"
    assert merged.at == at(20)  # the rollout began when its first new pod did
    assert (merged.from_version, merged.to_version) == (None, "v1.4.3")  # never mixed


def test_distinct_changes_stay_apart() -> None:
    base = Change(service="checkout", at=at(0), to_version="v2", source="api")
    others = [
        base.model_copy(update={"at": at(10)}),  # later than SAME_CHANGE
        base.model_copy(update={"to_version": "v3"}),  # another release, same side
        base.model_copy(update={"service": "cart"}),
        base.model_copy(update={"kind": ChangeKind.CONFIG}),
    ]
    assert len(merge_changes([base], others)) == 5
    first, second = (base.model_copy(update={"id": name}) for name in ("a", "b"))
    assert len(merge_changes([first], [second])) == 2  # two ids, two changes
    assert merge_changes([base], [first]) == [first]  # one without an id is the same one
    assert len(merge_changes([base], [base])) == 1


def test_one_service_in_two_namespaces_is_two_changes_and_a_known_namespace_is_kept() -> None:
    prod = Change(service="checkout", namespace="prod", at=at(0), to_version="v2", id="run-7")
    staging = prod.model_copy(update={"namespace": "staging"})
    assert merge_changes([prod], [staging]) == [prod, staging]  # one CI run, two Deployments
    observed = Change(
        service="checkout",
        namespace="prod",
        at=at(1),
        from_version="5d8f7c9b6",
        to_version="7d9f8c6b5",
        source="prometheus",
    )
    unplaced = prod.model_copy(update={"namespace": None})
    (merged,) = merge_changes([unplaced], [observed])
    assert merged.source == "api" and merged.namespace == "prod"  # filled from the telemetry


def test_a_generation_step_with_a_scale_is_that_scale() -> None:
    """Scaling bumps a Deployment's generation: one change, a scale, not a deploy too."""
    signals = [
        series("cart", "kube_deployment_status_observed_generation", [7.0] * 10 + [8.0] * 10),
        series("cart", "kube_deployment_spec_replicas", [3.0] * 10 + [1.0] * 10),
    ]
    (change,) = changes_from_signals(signals)
    assert (change.kind, change.at) == (ChangeKind.SCALE, at(10))
    assert (change.from_version, change.to_version) == ("3", "1")
