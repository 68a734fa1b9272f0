"""``rca finetune dataset``: a chat-format Hugging Face dataset from incidents with known causes.

Sources, in order of authority (a later source never overrides an earlier one's prompt):

1. analyses rated by people in the service database (``analyses_with_feedback``): a rating
   ``correct`` confirms the analysis' root cause, ``wrong``/``partially`` with a corrected
   service (from Slack or the API) makes the correction the target; newest rating first;
2. snapshot folders with ``ground_truth.json`` (recorded or hand-made incidents);
3. simulated incidents from the *train* seed range (keep it disjoint from eval seeds).

Rows are deduplicated by prompt, then split into train/validation *by incident* (a hash of the
incident key), so a seed, a snapshot or an alert group is never on both sides. ``card.json``
and ``README.md`` record counts per split, source and fault type, what was skipped and why, the
prompt format version and budget, and a content hash that is the same whenever the same rows
come out. Examples::

    rca finetune dataset --out out/ds --seeds 20000-20599 --prompt-tokens 1024
    rca finetune dataset --out out/ds --seeds 20000-20199 --snapshots incidents/ --feedback
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from agent.config import EngineSettings, Settings
from agent.engine.pipeline import analyze
from agent.errors import ConfigError, UsageError
from agent.models import Analysis, FaultType
from agent.snapshot import Snapshot
from agent.store.queries import FeedbackRecord
from agent.summarize.prompt import PROMPT_FORMAT_VERSION, build_prompt
from agent.summarize.redact import Redactor
from evals.runner import directory_cases, parse_seed_range
from finetune.examples import Example, NoExample, PromptBuilder, Truth, build_example

CARD_FILE = "card.json"
SPLITS = ("train", "validation")


@dataclass(frozen=True)
class Incident:
    """One analysed incident with its truth, before it becomes an example."""

    key: str
    source: str
    draft: Analysis
    truth: Truth
    resolution: str | None = None  # what fixed it, when a rating says (with its link)


@dataclass
class Collected:
    examples: list[Example] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0


def _blind(snapshot: Snapshot, engine: EngineSettings) -> tuple[Analysis, Truth] | None:
    truth = snapshot.ground_truth
    if truth is None:
        return None
    draft = analyze(snapshot.model_copy(update={"ground_truth": None}), engine)
    return draft, Truth(truth.service, truth.fault_type)


def simulated(seeds: range, services: int | None, engine: EngineSettings) -> Iterator[Incident]:
    """Scenarios of the train seed range, analysed blind like ``rca eval`` does."""
    from evals.simulator import simulate

    for seed in seeds:
        found = _blind(simulate(seed, services=services).snapshot, engine)
        if found is not None:
            yield Incident(f"sim-{seed}", "sim", *found)


def snapshot_folders(root: Path, engine: EngineSettings) -> Iterator[Incident]:
    """Every snapshot directory with ground truth under ``root`` (or ``root`` itself)."""
    cases, _skipped = directory_cases(root)
    for case in cases:
        snapshot = case.load()
        found = _blind(snapshot, engine)
        if found is not None:
            yield Incident(f"snapshot-{snapshot.meta.id}", "snapshot", *found)


def feedback_incidents(
    rated: Iterable[tuple[Analysis, FeedbackRecord]],
) -> Iterator[Incident | str]:
    """Rated analyses (newest rating first) as incidents, or the reason a rating is unusable.

    ``rated`` is what :func:`agent.store.queries.analyses_with_feedback` yields. The incident
    key is the alert group when there is one: re-fired episodes of one group stay in one split.
    """
    for analysis, rating in reversed(list(rated)):
        key = "feedback-" + (analysis.trigger.group_key or analysis.id)
        root = analysis.root_cause
        if rating.verdict == "correct" and root is not None:
            truth = Truth(root.service, root.fault_type)
        elif rating.actual_service:
            fault = rating.actual_fault_type or next(
                (c.fault_type for c in analysis.candidates if c.service == rating.actual_service),
                root.fault_type if root else None,
            )
            if fault is None:
                yield "feedback without a fault type for the corrected service"
                continue
            truth = Truth(rating.actual_service, _fault_type(fault))
        else:
            yield f"feedback '{rating.verdict}' without a corrected service"
            continue
        fixed = " ".join(p for p in (rating.resolution, rating.resolution_url) if p) or None
        yield Incident(key, "feedback", analysis, truth, fixed)


def _fault_type(value: str) -> FaultType:
    """People type fault types by hand (Slack, API): an unknown one is kept as unknown."""
    try:
        return FaultType(value)
    except ValueError:
        return FaultType.UNKNOWN


def read_feedback(url: str) -> list[tuple[Analysis, FeedbackRecord]]:
    """Rated analyses from the service database at ``url`` (read only, never migrated)."""
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.orm import Session

    from agent.store.db import make_engine
    from agent.store.queries import analyses_with_feedback

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"no service database at {url}: set database_url or drop --feedback")
    engine = make_engine(url, pool_size=1)
    try:
        with Session(engine) as session:
            return list(analyses_with_feedback(session))
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ConfigError(
            f"cannot read feedback from {engine.url.render_as_string()}: {first} "
            "(is it the service's database, migrated by `rca serve`?)"
        ) from None
    finally:
        engine.dispose()


def collect(
    incidents: Iterable[Incident | str], prompt: PromptBuilder, progress: Callable[[], None]
) -> Collected:
    """Examples from incidents in order of authority; the first of equal prompts wins."""
    out = Collected()
    seen: set[str] = set()
    for item in incidents:
        progress()
        if isinstance(item, str):
            out.skipped[item] += 1
            continue
        try:
            example = build_example(
                item.draft, item.truth, prompt=prompt, source=item.source, incident=item.key
            )
        except NoExample as why:
            out.skipped[f"{item.source}: {why}"] += 1
            continue
        if item.resolution:
            example = replace(example, resolution=item.resolution)
        if example.prompt_hash in seen:
            out.duplicates += 1
            continue
        seen.add(example.prompt_hash)
        out.examples.append(example)
    return out


def _bucket(incident: str) -> float:
    return int(hashlib.sha256(incident.encode()).hexdigest()[:12], 16) / float(1 << 48)


def split_by_incident(examples: list[Example], val_fraction: float) -> dict[str, list[Example]]:
    """Train/validation by a hash of the incident key: stable across runs and sources, and
    never one incident on both sides. With two or more incidents validation gets at least one.
    """
    incidents = sorted({e.incident for e in examples}, key=_bucket)
    held = {i for i in incidents if _bucket(i) < val_fraction}
    if not held and len(incidents) > 1 and val_fraction > 0:
        held = {incidents[0]}
    splits: dict[str, list[Example]] = {name: [] for name in SPLITS}
    for example in sorted(examples, key=lambda e: e.id):
        splits["validation" if example.incident in held else "train"].append(example)
    return splits


def content_hash(splits: dict[str, list[Example]]) -> str:
    """sha256 of the rows as canonical JSON: equal for equal data, whatever wrote it."""
    digest = hashlib.sha256()
    for name in SPLITS:
        for example in splits[name]:
            row = json.dumps([name, example.row()], sort_keys=True, ensure_ascii=False)
            digest.update(row.encode() + b"\n")
    return digest.hexdigest()


def dataset_card(
    splits: dict[str, list[Example]], collected: Collected, provenance: dict[str, Any]
) -> dict[str, Any]:
    counts = {
        name: {
            "examples": len(rows),
            "incidents": len({e.incident for e in rows}),
            "by_source": dict(sorted(Counter(e.source for e in rows).items())),
            "by_fault_type": dict(sorted(Counter(e.fault_type for e in rows).items())),
            "prompt_tokens_max": max((e.prompt_tokens for e in rows), default=0),
        }
        for name, rows in splits.items()
    }
    return {
        "format": "rca-finetune-dataset",
        "content_hash": content_hash(splits),
        "prompt_format_version": PROMPT_FORMAT_VERSION,
        **provenance,
        "splits": counts,
        "duplicates_dropped": collected.duplicates,
        "skipped": dict(sorted(collected.skipped.items())),
    }


def _readme(card: dict[str, Any]) -> str:
    lines = [
        "# rca-agent fine-tuning dataset",
        "",
        "Chat messages (system, user = the evidence bundle, assistant = the JSON answer).",
        f"Prompt format version {card['prompt_format_version']}, prompt budget "
        f"{card['prompt_tokens_budget']} tokens ({card['tokenizer']}).",
        f"Content hash `{card['content_hash']}`.",
        "",
        "| split | examples | incidents | by source | by fault type |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, c in card["splits"].items():
        sources = ", ".join(f"{k} {v}" for k, v in c["by_source"].items())
        faults = ", ".join(f"{k} {v}" for k, v in c["by_fault_type"].items())
        lines.append(f"| {name} | {c['examples']} | {c['incidents']} | {sources} | {faults} |")
    lines += ["", f"Duplicates dropped: {card['duplicates_dropped']}.", "", "Skipped:"]
    lines += [f"- {why}: {n}" for why, n in card["skipped"].items()] or ["- nothing"]
    return "\n".join(lines) + "\n"


def write_dataset(out: Path, splits: dict[str, list[Example]], card: dict[str, Any]) -> Path:
    """Save as a ``datasets.DatasetDict`` plus ``card.json`` and ``README.md``."""
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "building a dataset needs the finetune extra: pip install 'rca-agent[finetune]'"
        ) from None
    if not splits["train"]:
        raise UsageError("no training examples: see the skipped reasons, widen --seeds")
    datasets.disable_progress_bars()  # our own bar already covered the slow part
    features = {name: [e.row() for e in rows] for name, rows in splits.items()}
    dataset = datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in features.items() if rows}
    )
    out.mkdir(parents=True, exist_ok=True)
    dataset.save_to_disk(str(out))
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(card), encoding="utf-8")
    return out


def read_card(directory: Path) -> dict[str, Any]:
    path = directory / CARD_FILE
    if not path.is_file():
        raise UsageError(f"{directory} is not a dataset from `rca finetune dataset` (no card)")
    card: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return card


def serving_prompt(settings: Settings, model: str, budget: int) -> PromptBuilder:
    """The prompt exactly as the ``hf`` backend builds it for ``model``: its tokenizer counts
    the budget, the configured redaction applies (see :mod:`agent.summarize.factory`)."""
    from agent.summarize.hf_backend import HfBackend, resolve_model

    cfg = settings.summarizer
    counter = HfBackend(resolve_model(model, cfg.resolved_models_dir()), device="cpu")
    redact = Redactor(cfg.redact_patterns) if cfg.hf_redact else None
    return functools.partial(
        build_prompt, budget=budget, count_tokens=counter.count_tokens, redact=redact
    )


@dataclass(frozen=True)
class DatasetRequest:
    """What ``rca finetune dataset`` was asked for (also recorded in the card)."""

    out: Path
    model: str
    prompt_tokens: int
    seeds: str | None = None
    services: int | None = None
    snapshots: tuple[Path, ...] = ()
    feedback_url: str | None = None
    val_fraction: float = 0.1


def build_dataset(
    request: DatasetRequest, settings: Settings, console: Console | None = None
) -> dict[str, Any]:
    """Collect, deduplicate, split and write; returns the card."""
    if not 0 <= request.val_fraction < 1:
        raise UsageError(f"--val-fraction must be in [0, 1), got {request.val_fraction}")
    seeds = parse_seed_range(request.seeds) if request.seeds else range(0)
    rated = read_feedback(request.feedback_url) if request.feedback_url else []
    prompt = serving_prompt(settings, request.model, request.prompt_tokens)
    engine = settings.engine
    sources: list[Iterable[Incident | str]] = [feedback_incidents(rated)]
    sources += [snapshot_folders(root, engine) for root in request.snapshots]
    sources.append(simulated(seeds, request.services, engine))
    with progress_bar(console) as bar:
        task = bar.add_task("incidents", total=len(rated) + len(seeds) or None)
        collected = collect(itertools.chain(*sources), prompt, lambda: bar.advance(task))
    splits = split_by_incident(collected.examples, request.val_fraction)
    provenance = {
        "tokenizer": request.model,
        "prompt_tokens_budget": request.prompt_tokens,
        "redaction": settings.summarizer.hf_redact,
        "train_seeds": request.seeds,
        "simulated_services": request.services,
        "snapshot_folders": [str(p) for p in request.snapshots],
        "feedback": bool(request.feedback_url),
        "val_fraction": request.val_fraction,
    }
    card = dataset_card(splits, collected, provenance)
    write_dataset(request.out, splits, card)
    return card


def progress_bar(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]dataset[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
