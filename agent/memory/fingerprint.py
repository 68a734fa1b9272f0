"""The fingerprint of an analysis, and how alike two fingerprints are.

Deterministic and model-free, so the same analysis always gets the same fingerprint and a
match can always say why it matched. What it holds, for each of which a recurring incident
tends to repeat itself even when the noise, the topology and the timing differ:

- the leading hypotheses (the top three ``service|fault type``), each weighted by its score
  over the leader's: an incident the engine misread by a hair still shares its true cause
  with a twin it read right, nearly as much as the conclusion would;
- the root cause a person confirmed or named when rating it, if any: it then leads the
  hypotheses in place of a leader they said was wrong, so the next incident with that cause,
  read right, matches the corrected analysis by its cause;
- what was observed, whoever was blamed: every metric and log finding as (service, signal
  kind, direction), weighted by the finding's strength;
- for the root cause's own evidence, the role of its service relative to the root cause
  (``root``, ``caller`` upstream of it, ``callee`` downstream of it, ``bystander``), the
  signal kind and the direction, names left out;
- the masked log templates (every word with a digit masked, secrets redacted);
- the alert name and its stable labels (volatile ones such as ``pod`` or ``instance``, and
  values with ids in them, are left out: they differ every time).

Similarity is a weighted Jaccard over these features: the weight of the features both share
over the weight of all the features either has, in [0, 1]. Nothing here knows any system's
service or metric names; features are built from whatever names the analysis holds.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import Field

from agent.models import Analysis, Evidence, Strict, Topology

FINGERPRINT_VERSION = 2
MAX_TEMPLATES = 20
MAX_TEMPLATE_CHARS = 200
MAX_LABELS = 12
# The leading candidates whose evidence a fingerprint holds, and the weight of each rank in
# fingerprints stored before version 2 (which carry no candidate weights).
RANK_WEIGHTS = (1.0, 0.5, 0.35)
# An evidence item's score at which it counts fully as an observed signal (the engine caps
# scores at 50); weaker items count in proportion.
FULL_EVIDENCE_SCORE = 50.0

# Labels that name one replica, one scrape target or one firing: different each time.
VOLATILE_LABELS = frozenset(
    {
        "alertname",
        "pod",
        "pod_name",
        "instance",
        "container",
        "container_id",
        "endpoint",
        "ip",
        "host",
        "hostname",
        "node",
        "uid",
        "id",
        "replica",
        "prometheus_replica",
        "__name__",
    }
)
_ID_LIKE = re.compile(r"\d")
_PARAM = re.compile(r"\b[\w.\-]*\d[\w.\-]*")
_SPACES = re.compile(r"\s+")

# Feature weights: what a match on each says about "the same incident again".
WEIGHTS = {
    # Per leading hypothesis, times its score over the leader's: a close runner-up counts
    # nearly as much as the leader, so a misread recurrence still shares its true cause.
    "cause": 4.0,  # the same service and fault type
    "service": 2.0,  # the same service, whatever its fault
    "fault": 1.0,  # the same fault type
    "alert": 1.0,  # same alert name: one alert fires for many causes
    "label": 0.5,  # each stable alert label
    "role": 0.5,  # each (role, kind, direction) of the root cause's evidence, names left out
    # Of all metric and log evidence, whoever was blamed, times the item's strength.
    "ev": 1.0,  # each (service, kind, direction)
    "log": 1.5,  # each masked log template
}


class Fingerprint(Strict):
    """What an analysis looked like, as stored with it (plain JSON, redacted text).

    ``roles``, ``signals`` and ``templates`` map each feature to its weight: 1 for the
    evidence of the leading candidate, less for the runners-up's (:data:`RANK_WEIGHTS`), so
    a recurrence the engine ranked differently this time still shares most of them.
    """

    version: int = FINGERPRINT_VERSION
    root_service: str | None = None
    fault_type: str | None = None
    candidates: list[str] = Field(default_factory=list, description="service|fault, best first")
    candidate_weights: list[float] = Field(
        default_factory=list,
        description="each candidate's score over the leader's, in (0, 1]; empty in version 1",
    )
    confirmed: str | None = Field(
        None,
        exclude=True,  # the store keeps it beside the JSON (fingerprints.confirmed)
        description="service|fault a person confirmed or named in the latest rating (the "
        "fault may be empty); None: unrated, or a rating that confirms nothing",
    )
    alert_name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    roles: dict[str, float] = Field(default_factory=dict, description="role|kind|direction")
    signals: dict[str, float] = Field(default_factory=dict, description="service|kind|direction")
    templates: dict[str, float] = Field(default_factory=dict, description="masked log templates")

    def hypotheses(self) -> list[tuple[str, float]]:
        """The leading ``service|fault`` causes with their weights, the leader first: as the
        engine ranked them, or, once a person confirmed another cause, that cause at weight 1
        in place of the leader they said was wrong."""
        candidates = self.candidates or (
            [f"{self.root_service}|{self.fault_type}"] if self.root_service else []
        )
        said = list(zip(candidates, self.candidate_weights or RANK_WEIGHTS, strict=False))
        if self.confirmed is None or (said and said[0][0] == self.confirmed):
            return said
        return [(self.confirmed, 1.0)] + [(c, w) for c, w in said[1:] if c != self.confirmed]

    def confirmed_as(self, service: str | None, fault: str | None) -> Fingerprint:
        """This fingerprint with the root cause a rating confirmed (None: it confirms none)."""
        return self.model_copy(update={"confirmed": confirmed_token(service, fault)})

    def features(self) -> dict[str, float]:
        """Feature token -> weight: what :func:`similarity` and the index compare."""
        out: dict[str, float] = {}
        for candidate, rank in self.hypotheses():
            service, _, fault = candidate.partition("|")
            tokens = [
                (f"cand:{candidate}", WEIGHTS["cause"] * rank),
                (f"svc:{service}", WEIGHTS["service"] * rank),
                (f"fault:{fault}", WEIGHTS["fault"] * rank),
            ]
            for token, weight in tokens if fault else tokens[1:2]:  # a service named alone
                out[token] = max(out.get(token, 0.0), weight)
        if self.alert_name:
            out[f"alert:{self.alert_name}"] = WEIGHTS["alert"]
        for key, value in self.labels.items():
            out[f"label:{key}={value}"] = WEIGHTS["label"]
        for prefix, table in (("role", self.roles), ("ev", self.signals)):
            for token, weight in table.items():
                out[f"{prefix}:{token}"] = WEIGHTS[prefix] * weight
        for template, weight in self.templates.items():
            out[f"log:{template_key(template)}"] = WEIGHTS["log"] * weight
        return out


def confirmed_token(service: str | None, fault: str | None) -> str | None:
    """A confirmed cause as stored (``service|fault``, the fault maybe empty); None when the
    rating names no service."""
    return f"{service}|{fault or ''}" if service else None


def template_key(template: str) -> str:
    """A short stable key of a masked template (the index holds keys, not text)."""
    return hashlib.sha1(template.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


def mask_template(text: str, redact: Callable[[str], str] | None = None) -> str:
    """A log template with every word that holds a digit masked, secrets redacted,
    whitespace collapsed and clipped: two firings of one template mask alike."""
    if redact is not None:
        text = redact(text)
    masked = _SPACES.sub(" ", _PARAM.sub("<*>", text)).strip()
    return masked[:MAX_TEMPLATE_CHARS]


def stable_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Alert labels that stay the same each time the incident recurs."""
    kept = {
        k: v
        for k, v in sorted(labels.items())
        if k not in VOLATILE_LABELS and v and not _ID_LIKE.search(v) and len(v) <= 100
    }
    return dict(list(kept.items())[:MAX_LABELS])


def _reach(start: str, step: Callable[[str], list[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in step(todo.pop()):
            if nxt not in seen and nxt != start:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _role(service: str, root: str | None, upstream: set[str], downstream: set[str]) -> str:
    if root is None:
        return "bystander"
    if service == root:
        return "root"
    if service in upstream:
        return "caller"
    if service in downstream:
        return "callee"
    return "bystander"


def _direction(evidence: Evidence) -> str:
    return evidence.pattern.replace("|", "/")


def _strength(evidence: Evidence) -> float:
    return min(1.0, max(evidence.score, 0.0) / FULL_EVIDENCE_SCORE)


def _hypotheses(analysis: Analysis) -> list[tuple[str, float]]:
    """The leading candidates as ``service|fault`` with their score over the leader's."""
    if analysis.insufficient_evidence or not analysis.candidates:
        return []
    leading = analysis.candidates[: len(RANK_WEIGHTS)]
    top = leading[0].score
    return [
        (
            f"{c.service}|{c.fault_type.value}",
            round(min(1.0, max(c.score, 0.0) / top) if top > 0 else 1.0, 4),
        )
        for c in leading
    ]


def fingerprint_of(
    analysis: Analysis,
    topology: Topology | None = None,
    labels: Mapping[str, str] | None = None,
    redact: Callable[[str], str] | None = None,
) -> Fingerprint:
    """The fingerprint of ``analysis``: its root cause (or else its top candidate), its
    leading hypotheses, and what it observed (every metric and log finding, by strength)."""
    root = analysis.root_cause.service if analysis.root_cause else None
    fault = analysis.root_cause.fault_type.value if analysis.root_cause else None
    if root is None and analysis.candidates and not analysis.insufficient_evidence:
        root, fault = analysis.candidates[0].service, analysis.candidates[0].fault_type.value
    upstream = _reach(root, topology.callers) if root and topology else set()
    downstream = _reach(root, topology.callees) if root and topology else set()
    own = next((c for c in analysis.candidates if c.service == root), None)
    root_ids = set(own.evidence_ids) if own is not None else set()
    roles: dict[str, float] = {}
    signals: dict[str, float] = {}
    templates: dict[str, float] = {}
    for e in analysis.evidence:
        weight = _strength(e)
        if e.source not in ("metric", "log") or weight <= 0:  # not memory's own P1
            continue
        kind = e.signal_kind.value if e.signal_kind else e.source
        if e.id in root_ids:
            role = f"{_role(e.service, root, upstream, downstream)}|{kind}|{_direction(e)}"
            roles[role] = 1.0
        signal = f"{e.service}|{kind}|{_direction(e)}"
        signals[signal] = max(signals.get(signal, 0.0), round(weight, 4))
        if e.template and len(templates) < MAX_TEMPLATES:
            masked = mask_template(e.template, redact)
            templates[masked] = max(templates.get(masked, 0.0), round(weight, 4))
    alert = analysis.trigger.alert_name
    hypotheses = _hypotheses(analysis)
    return Fingerprint(
        root_service=root,
        fault_type=fault,
        candidates=[c for c, _ in hypotheses],
        candidate_weights=[w for _, w in hypotheses],
        alert_name=redact(alert) if alert and redact else alert,
        labels=stable_labels(labels or {}),
        roles=dict(sorted(roles.items())),
        signals=dict(sorted(signals.items())),
        templates=templates,
    )


def weighted_jaccard(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """The weighted Jaccard (Ruzicka) similarity: the sum of the smaller weight of each
    token over the sum of the larger, in [0, 1]."""
    shared = sum(min(w, b[token]) for token, w in a.items() if token in b)
    union = sum(a.values()) + sum(b.values()) - shared
    return shared / union if union > 0 else 0.0


@dataclass(frozen=True)
class Similarity:
    score: float
    reasons: list[str]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _lead(fp: Fingerprint) -> tuple[str | None, str | None]:
    """The root cause as (service, fault): the one a person confirmed, else the analysis's."""
    if fp.confirmed is None:
        return fp.root_service, fp.fault_type
    service, _, fault = fp.confirmed.partition("|")
    return service, fault or None


def _cause_reasons(a: Fingerprint, b: Fingerprint) -> list[str]:
    """How ``b``'s root cause compares with ``a``'s. As in the features, the cause a person
    confirmed stands in for what the engine concluded, and a leader they said was wrong is
    not one of ``b``'s candidates any more."""
    service, fault = _lead(a)
    theirs, their_fault = _lead(b)
    if service is None:
        return []
    if service == theirs:
        if fault and fault == their_fault:
            if b.confirmed is not None:
                return [f"confirmed root cause {service} ({fault}), the same as this one's leader"]
            return [f"same service and fault type ({service}, {fault})"]
        return [f"same root-cause service ({service})"]
    out = []
    if fault and f"{service}|{fault}" in [c for c, _ in b.hypotheses()]:
        out.append(f"{service} ({fault}) was among its leading candidates")
    if fault and fault == their_fault:
        out.append(f"same fault type ({fault})")
    return out


def reasons(a: Fingerprint, b: Fingerprint) -> list[str]:
    """Why ``b`` resembles ``a``, strongest first, in words a person checks quickly."""
    out: list[str] = []
    if a.alert_name and a.alert_name == b.alert_name:
        out.append(f"same alert {a.alert_name}")
    out.extend(_cause_reasons(a, b))
    shared_logs = [t for t in a.templates if t in b.templates]
    if shared_logs:
        first = shared_logs[0][:80]
        more = f" and {len(shared_logs) - 1} more" if len(shared_logs) > 1 else ""
        out.append(f'shared log template "{first}"{more}')
    shared_signals = set(a.signals) & set(b.signals)
    if shared_signals:
        out.append(f"{_plural(len(shared_signals), 'shared anomalous signal')}")
    shared_labels = [f"{k}={v}" for k, v in a.labels.items() if b.labels.get(k) == v]
    if shared_labels:
        out.append("same labels " + ", ".join(shared_labels[:4]))
    return out


def similarity(a: Fingerprint, b: Fingerprint) -> Similarity:
    """How alike two fingerprints are (0..1), and why."""
    return Similarity(round(weighted_jaccard(a.features(), b.features()), 4), reasons(a, b))
