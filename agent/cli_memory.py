"""``rca similar ID|SNAPSHOT``: the past analyses in the service's store most like one.

An analysis id is looked up in the store (its stored fingerprint); a snapshot directory is
analysed first and fingerprinted the same way the service does. Examples::

    rca similar an-3f9c2a1b7d
    rca similar incidents/checkout-2026-11-02 -k 5 --json
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from agent.clikit import JsonOut, cli_state, json_options
from agent.config import Settings
from agent.errors import ConfigError, UsageError
from agent.memory.fingerprint import Fingerprint, fingerprint_of
from agent.memory.recall import PastIncident
from agent.models import Analysis
from agent.summarize.redact import Redactor


def _store_url(settings: Settings) -> str:
    from agent.store.db import database_url

    url = database_url(settings.database_url, settings.data_dir)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ConfigError(
            f"no service database at {url}: set database_url (RCA_DATABASE_URL) or data_dir"
        )
    return url


def _snapshot_fingerprint(path: Path, settings: Settings) -> Fingerprint:
    from agent.engine.pipeline import analyze
    from agent.snapshot import load_snapshot

    snapshot = load_snapshot(path)
    analysis = analyze(snapshot.model_copy(update={"ground_truth": None}), settings.engine)
    alert = snapshot.alert
    labels = {**alert.groupLabels, **alert.commonLabels} if alert is not None else {}
    redact = Redactor(settings.summarizer.redact_patterns)
    return fingerprint_of(analysis, snapshot.topology, labels, redact)


def find_similar(target: str, k: int, settings: Settings) -> list[PastIncident]:
    """The ``k`` past analyses most like ``target`` (an analysis id or a snapshot dir)."""
    from agent.memory.embed import build_embedder
    from agent.store import queries
    from agent.store.db import make_engine
    from agent.store.memory import Memory

    path = Path(target)
    fp = _snapshot_fingerprint(path, settings) if path.is_dir() else None
    exclude = None if fp is not None else target
    engine = make_engine(_store_url(settings), pool_size=1)
    sessions = sessionmaker(engine, expire_on_commit=False)
    memory = Memory(
        sessions,
        settings.memory.retention_days,
        lambda: datetime.now(UTC),
        0.0,
        build_embedder(settings.memory),
        settings.memory.embeddings_weight,
    )
    try:
        if fp is None:
            with sessions.begin() as session:
                record = queries.get_analysis(session, target)
            if record is None or record.result is None:
                raise UsageError(
                    f"{target!r} is neither a snapshot directory nor a finished analysis "
                    "in the store"
                )
            fp = memory.fingerprint_of(target) or fingerprint_of(
                Analysis.model_validate_json(record.result)
            )
        # A stored analysis's text embedding counts; a snapshot is compared by fingerprint.
        embedding = memory.embedding_of(target) if exclude is not None else None
        return memory.similar(fp, k, exclude=exclude, embedding=embedding)
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ConfigError(
            f"cannot read incident memory: {first} (is it the service's database, migrated "
            "by `rca serve`?)"
        ) from None
    finally:
        engine.dispose()


@click.command(short_help="Show the past analyses most like an analysis or a snapshot.")
@click.argument("target", metavar="ID|SNAPSHOT")
@click.option(
    "-k",
    "k",
    type=click.IntRange(1, 50),
    default=5,
    show_default=True,
    help="How many past analyses to show.",
)
@json_options("the similar analyses")
@click.pass_context
def similar(ctx: click.Context, target: str, k: int, json_out: JsonOut) -> None:
    """The past analyses in the service's store (database_url, else data_dir's SQLite) most
    like ID (a stored analysis) or SNAPSHOT (a snapshot directory, analysed first): each
    with its similarity, why it matches, its verdict and what fixed it."""
    found = find_similar(target, k, cli_state(ctx).settings)
    if json_out:
        json_out.write("[" + ",".join(p.model_dump_json() for p in found) + "]")
    console = json_out.console()
    if not found:
        console.print("Nothing similar in incident memory.")
        return
    table = Table("analysis", "when", "similarity", "root cause", "verdict", "fixed by", "why")
    for p in found:
        cause = p.confirmed_service or p.root_service or "-"
        fault = p.confirmed_fault_type or p.fault_type
        table.add_row(
            p.analysis_id,
            f"{p.created_at:%Y-%m-%d %H:%M}",
            f"{p.similarity:.2f}",
            f"{cause} ({fault})" if fault else cause,
            p.verdict or "not rated",
            " ".join(x for x in (p.resolution, p.resolution_url) if x) or "-",
            "; ".join(p.reasons),
        )
    console.print(table)
