"""Changes and versions as the telemetry carries them: pure functions over typed models.

Most incidents follow a change, and a rollout leaves traces even where nobody reported it:

- a **step in a deploy series** (``kube_deployment_metadata_generation``, an RCAEval
  ``version`` column, ``app_build_info``): a deploy at the step's time;
- a **new version appearing**: a ``version``/``image``/``pod_template_hash`` label value, or
  the ReplicaSet hash in the names of Kubernetes pods (``checkout-7d9f8c6b5-x2k4q``), that
  starts while another version of the same service was running: a deploy from the old to the
  new version.

:func:`changes_from_signals` turns both into :class:`~agent.models.Change` objects (a snapshot
without ``changes.jsonl`` gets them on load), :func:`pod_versions` says which version each
pod runs, so that the engine can compare a change's new pods with its old ones, and
:func:`merge_changes` folds the reports of one rollout from several sources into one change.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from statistics import median

from agent.models import Change, ChangeKind, Signal, SignalKind

# Labels that name the version a series' pod (or service) runs, most telling first.
VERSION_LABELS = ("version", "app_version", "service_version", "pod_template_hash", "image")

# Kubernetes renders a Deployment's pod-template-hash and the pod's own suffix with this
# alphabet (no vowels, no 0/1/3), so ``cart-gateway-x2k4q`` is not mistaken for a hash.
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_POD_NAME = re.compile(rf"^(?P<owner>.+)-(?P<hash>[{_SAFE}]{{6,10}})-[{_SAFE}]{{5}}$")

# What a stepping series says changed, by its name; restarts, OOM kills and uptime are
# things that happened to a service, not changes made to it, and are left to the detector.
_NOT_A_CHANGE = re.compile(r"restart|oom|kill|uptime|start_time|last_boot|created")
_SERIES_KINDS: tuple[tuple[ChangeKind, re.Pattern[str]], ...] = (
    (ChangeKind.CONFIG, re.compile(r"config_?(?:hash|version|generation|reload|checksum)")),
    (ChangeKind.FEATURE_FLAG, re.compile(r"feature_?flag|flag_?version")),
    (ChangeKind.SCALE, re.compile(r"spec_replicas|replicas_desired|desired_replicas")),
    (
        ChangeKind.DEPLOY,
        re.compile(r"version|generation|revision|image|build_info|release|rollout|deploy"),
    ),
)

# A rollout's traces in several series (generation, observed generation, the new pods) land
# within a few scrapes of each other; two changes of one service closer than this are one.
SAME_CHANGE = timedelta(minutes=5)
# How far a reported change's time may lie from its new pods' first sample (CI reports
# before ``kubectl apply`` returns, Argo CD after the sync).
REPORT_SLACK = timedelta(minutes=10)
# Sources that know more than telemetry does (author, link, the release's name) win a merge.
_PRECEDENCE = ("api", "snapshot", "prometheus", "signals")
# Sources that observed a change in telemetry, and name versions as the telemetry does.
_OBSERVED = frozenset({"prometheus", "signals"})


def replicaset_hash(pod: str) -> str | None:
    """The pod-template-hash in a Deployment pod's name: ``checkout-7d9f8c6b5-x2k4q`` ->
    ``7d9f8c6b5``; None for StatefulSet (``redis-0``), DaemonSet or bare pod names."""
    match = _POD_NAME.match(pod)
    return match["hash"] if match else None


def image_version(image: str) -> str:
    """The version part of an image reference: its tag (``ghcr.io/shop/cart:1.4.3`` ->
    ``1.4.3``), its digest (``cart@sha256:ab..`` -> ``sha256:ab..``), else ``latest``."""
    if "@" in image:
        return image.split("@", 1)[1]
    last = image.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


def _label_version(labels: dict[str, str]) -> str | None:
    for name in VERSION_LABELS:
        if value := labels.get(name):
            return image_version(value) if name == "image" else value
    return None


def _span(signal: Signal) -> tuple[float, float] | None:
    """First and last timestamp where the series has a value."""
    present = signal.points()
    return (present[0][0], present[-1][0]) if present else None


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- which version a pod runs ------------------------------------------------------------


def _raw_pod_versions(signals: Iterable[Signal]) -> dict[tuple[str, str], str]:
    """The version each pod's own series say, else its name's ReplicaSet hash."""
    labelled: dict[tuple[str, str], Counter[tuple[int, str]]] = defaultdict(Counter)
    pods: set[tuple[str, str]] = set()
    for signal in signals:
        if signal.pod is None:
            continue
        key = (signal.service, signal.pod)
        pods.add(key)
        for rank, name in enumerate(VERSION_LABELS):
            if value := signal.labels.get(name):
                labelled[key][(rank, image_version(value) if name == "image" else value)] += 1
                break
    versions: dict[tuple[str, str], str] = {}
    for key in pods:
        if votes := labelled.get(key):
            # The most telling label wins; among its values, the one most series carry.
            best_rank = min(rank for rank, _ in votes)
            versions[key] = max(
                (n, value) for (rank, value), n in votes.items() if rank == best_rank
            )[1]
        elif (found := replicaset_hash(key[1])) is not None:
            versions[key] = found
    return versions


def pod_versions(
    signals: Sequence[Signal], changes: Sequence[Change] = ()
) -> dict[tuple[str, str], str]:
    """Which version each ``(service, pod)`` runs; pods with no version are left out.

    A pod's version is what its own series carry: a ``version``, ``app_version``,
    ``service_version``, ``pod_template_hash`` or ``image`` label (an image counts by its
    tag), else the ReplicaSet hash in its Kubernetes name. Where a deploy in ``changes`` names
    its versions (``v1.4.2`` -> ``v1.4.3``) and the service's pods split cleanly into the
    group that ran before it and one group that first appears around its time, the groups
    take the change's names, so a report can say "checkout v1.4.3's pods fail, its v1.4.2
    pods do not" and the engine can match pods to the change.
    """
    versions = _raw_pod_versions(signals)
    if not changes:
        return versions
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for signal in signals:
        if signal.pod is not None and (span := _span(signal)) is not None:
            key = (signal.service, signal.pod)
            known = spans.get(key, span)
            spans[key] = (min(known[0], span[0]), max(known[1], span[1]))
    deploys = sorted(
        (c for c in changes if c.kind is ChangeKind.DEPLOY and c.to_version), key=lambda c: c.at
    )
    for change in deploys:
        renames = _renames(change, versions, spans)
        for key, version in versions.items():
            if key[0] == change.service and version in renames:
                versions[key] = renames[version]
    return versions


def _renames(
    change: Change,
    versions: dict[tuple[str, str], str],
    spans: dict[tuple[str, str], tuple[float, float]],
) -> dict[str, str]:
    """Telemetry version -> the change's name for it: the version whose pods first appear
    closest to the change's time (within :data:`REPORT_SLACK`) is its new version, and the
    one running last before that, its old version."""
    seen: dict[str, tuple[float, float]] = {}
    for key, version in versions.items():
        if key[0] == change.service and key in spans:
            first, last = spans[key]
            known = seen.get(version, (first, last))
            seen[version] = (min(known[0], first), max(known[1], last))
    if change.to_version in seen:
        return {}  # the telemetry already uses the change's names
    at = change.at.timestamp()
    near = [(abs(first - at), v) for v, (first, _) in seen.items()]
    near = [(d, v) for d, v in near if d <= REPORT_SLACK.total_seconds()]
    if not near:
        return {}
    new = min(near)[1]
    renames = {new: str(change.to_version)}
    before = [(last, v) for v, (first, last) in seen.items() if first < seen[new][0]]
    if before and change.from_version and change.from_version not in seen:
        renames[max(before)[1]] = change.from_version
    return renames


# --- changes from series -----------------------------------------------------------------


def series_change_kind(signal: Signal) -> ChangeKind | None:
    """What a step in this series means, by its name; None: not a change marker.

    Only ``change`` series (declared, or undeclared with a change-like name) count: a series
    the snapshot calls ``resource`` stays a measurement whatever its name.
    """
    if signal.kind not in (None, SignalKind.CHANGE):
        return None
    name = signal.name.lower().replace(".", "_").replace("-", "_")
    if _NOT_A_CHANGE.search(name):
        return None
    return next((kind for kind, pattern in _SERIES_KINDS if pattern.search(name)), None)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _steps(signal: Signal, kind: ChangeKind) -> list[Change]:
    """A change wherever the series' value differs from its previous value."""
    says_version = kind is not ChangeKind.DEPLOY or "version" in signal.name.lower()
    found: list[Change] = []
    previous: float | None = None
    for stamp, value in signal.points():
        if previous is not None and abs(value - previous) > 1e-9 * max(1.0, abs(previous)):
            found.append(
                Change(
                    service=signal.service,
                    kind=kind,
                    at=_at(stamp),
                    from_version=_number(previous) if says_version else None,
                    to_version=_number(value) if says_version else None,
                    link=signal.link,
                    source="signals",
                )
            )
        previous = value
    return found


def _presence(
    signals: Sequence[Signal],
) -> dict[str, tuple[dict[str, list[tuple[float, float]]], float]]:
    """service -> (version -> merged intervals in which a series of that version had data,
    the gap that still counts as one interval: three of the service's sampling steps)."""
    of_pod = _raw_pod_versions(signals)
    spans: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    steps: dict[str, list[float]] = defaultdict(list)
    for signal in signals:
        if signal.pod is not None:
            version = of_pod.get((signal.service, signal.pod))
        else:
            version = _label_version(signal.labels)
        if version is None or (span := _span(signal)) is None:
            continue
        spans[signal.service][version].append(span)
        if signal.resolution_s:
            steps[signal.service].append(signal.resolution_s)
        elif len(signal.timestamps) > 1:
            steps[signal.service].append(
                (signal.timestamps[-1] - signal.timestamps[0]) / (len(signal.timestamps) - 1)
            )
    merged: dict[str, tuple[dict[str, list[tuple[float, float]]], float]] = {}
    for service, by_version in spans.items():
        gap = 3 * median(steps[service]) if steps[service] else 180.0
        merged[service] = ({v: _merge(sorted(s), gap) for v, s in by_version.items()}, gap)
    return merged


def _merge(spans: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, end in spans:
        if out and start <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _appearances(
    service: str, by_version: dict[str, list[tuple[float, float]]], gap: float
) -> list[Change]:
    """A deploy wherever a version starts while another one had been running.

    A version seen from (about) the start of the service's data is not a change we saw, even
    when its first scrape came a little after another version's."""
    if len(by_version) < 2:
        return []
    first = min(s for spans in by_version.values() for s, _ in spans)
    found: list[Change] = []
    for version, intervals in by_version.items():
        for start, _ in intervals:
            if start <= first + gap:
                continue
            before = [
                (end, other)
                for other, spans in by_version.items()
                if other != version
                for s, end in spans
                if s < start
            ]
            if not before:
                continue  # the service's first version in the data
            _, previous = max(before)  # the version running last before this one started
            found.append(
                Change(
                    service=service,
                    at=_at(start),
                    from_version=previous,
                    to_version=version,
                    source="signals",
                )
            )
    return found


def changes_from_signals(signals: Sequence[Signal]) -> list[Change]:
    """The changes the telemetry shows, oldest first (see the module docstring).

    A step in a deploy, config, feature-flag or desired-replicas series is a change of that
    kind at the step's time (a ``version`` series names the versions, a generation does not);
    a new version label value or ReplicaSet hash that starts while another version of the
    service was running is a deploy between the two. Traces of one rollout in several series
    become one change (:func:`merge_changes`).
    """
    found: list[Change] = []
    for signal in signals:
        kind = series_change_kind(signal)
        if kind is not None and _label_version(signal.labels) is None:
            found += _steps(signal, kind)
    for service, (by_version, gap) in _presence(signals).items():
        found += _appearances(service, by_version, gap)
    return merge_changes(found)


# --- one change per rollout --------------------------------------------------------------


def _rank(change: Change) -> int:
    return _PRECEDENCE.index(change.source) if change.source in _PRECEDENCE else 1


def _same(a: Change, b: Change, within: timedelta) -> bool:
    """Whether ``a`` and ``b`` report one change. Two reports from the same side (reported by
    people or CI, or observed in telemetry) name versions alike, so different versions mean
    different changes; across sides a release name and a ReplicaSet hash may name one. Two
    known namespaces that differ are two Deployments; an unknown one matches either."""
    if a.service != b.service or a.kind != b.kind or abs(a.at - b.at) > within:
        return False
    if a.namespace and b.namespace and a.namespace != b.namespace:
        return False  # one name, two Deployments
    if a.id and b.id:
        return a.id == b.id
    alike = (a.source in _OBSERVED) == (b.source in _OBSERVED)
    return not (alike and a.to_version and b.to_version and a.to_version != b.to_version)


def _fold(kept: Change, other: Change) -> Change:
    """``kept`` with what it lacks taken from ``other``, at the earlier of the two times.

    Versions come as a pair, so that one change never mixes two namings
    (``7d9f8c6b5 -> v1.4.3``)."""
    update: dict[str, object] = {
        name: getattr(other, name)
        for name in ("namespace", "author", "link", "id")
        if getattr(kept, name) is None and getattr(other, name) is not None
    }
    if kept.to_version is None and kept.from_version is None:
        update.update(from_version=other.from_version, to_version=other.to_version)
    elif kept.from_version is None and kept.to_version == other.to_version:
        update["from_version"] = other.from_version
    update["at"] = min(kept.at, other.at)
    return kept.model_copy(update=update)


def _a_scale(change: Change, merged: Sequence[Change], within: timedelta) -> bool:
    """A deploy that names no version, observed next to a scale of the same service, is that
    scale: Kubernetes bumps a Deployment's generation on every spec change, replicas too."""
    if change.kind is not ChangeKind.DEPLOY or change.source not in _OBSERVED:
        return False
    if change.from_version or change.to_version:
        return False
    return any(
        m.kind is ChangeKind.SCALE
        and m.service == change.service
        and abs(m.at - change.at) <= within
        for m in merged
    )


def merge_changes(*groups: Iterable[Change], within: timedelta = SAME_CHANGE) -> list[Change]:
    """Every change once, oldest first: reports of one change (same service and kind, times
    within ``within``, versions and namespaces that do not contradict, the same ``id`` when
    both have one) become one, keeping the fields of the most knowing source (api, snapshot,
    prometheus, signals) and filling its gaps from the others. A generation step that is a
    scale (:func:`_a_scale`) is not a deploy."""
    pool = sorted((c for group in groups for c in group), key=lambda c: (_rank(c), c.at))
    merged: list[Change] = []
    for change in pool:
        match = next((i for i, m in enumerate(merged) if _same(m, change, within)), None)
        if match is None:
            merged.append(change)
        else:
            merged[match] = _fold(merged[match], change)
    kept = [c for c in merged if not _a_scale(c, merged, within)]
    return sorted(kept, key=lambda c: (c.at, c.service))


__all__ = [
    "REPORT_SLACK",
    "SAME_CHANGE",
    "VERSION_LABELS",
    "changes_from_signals",
    "image_version",
    "merge_changes",
    "pod_versions",
    "replicaset_hash",
    "series_change_kind",
]
