"""Does the answer depend on what it should not? Names, the clock and the order of the input.

The real dev set is two systems on one day each; the engine is also judged on other days and
other systems. A rule that keys on a service's name, on the time of day, or on the order a
recorder happened to write its lines would score here and fail there. This check analyses each
case of a suite as recorded and again after a transform that must not change the answer, and
reports every case whose answer moved:

- ``names``: every service gets a neutral name drawn by seed (``svc-qkzmr``, ``svc-ab``: 2 to
  16 letters, so that a cut by length shows up), the same everywhere it is written: signals,
  pods, log records and their text, the call graph, the alert, changes and the ground truth.
  The order of the names changes too, so an answer that rests on a tie broken by name shows
  up;
- ``clock``: every time in the snapshot moves by ``--shift`` (another day, another hour);
- ``order``: signals and log records are shuffled by seed.

An answer is its candidate list (services mapped back to the recorded names), the leader's
fault type, the confidence (to three decimals) and whether the evidence sufficed. Example::

    python -m evals.invariance --suite ../shared/real/nezha-dev --json-file out/invariance.json

Exit status 1 when any answer moved, so it can gate a change; 2 when the check could not run
(a folder without snapshots, a bad option).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from agent.config import EngineSettings
from agent.engine.pipeline import analyze
from agent.errors import RcaError, UsageError
from agent.models import Analysis, Signal
from agent.snapshot import Snapshot
from evals.runner import directory_cases, expand_suites

TRANSFORMS = ("names", "clock", "order")
_SHIFT = re.compile(r"^([+-])?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def neutral_names(services: Sequence[str], seed: int) -> dict[str, str]:
    """A new name for each service: 2 to 16 random letters, none equal to a recorded name."""
    rng = random.Random(seed)
    taken = set(services)
    names: dict[str, str] = {}
    for service in services:
        name = ""
        while not name or name in taken:
            length = rng.randint(2, 16)  # unlike the recorded ones', to catch a cut by length
            name = "svc-" + "".join(rng.choices(string.ascii_lowercase, k=length))
        taken.add(name)
        names[service] = name
    return names


def renamed(snapshot: Snapshot, names: dict[str, str]) -> Snapshot:
    """The snapshot with every service name replaced wherever it is written.

    A name is replaced where no letter or digit touches it, longest name first, so that a pod
    (``cart-7d9f-x2``) follows its service and ``order`` does not match inside ``order-other``.
    """
    if not names:
        return snapshot
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    pattern = re.compile(rf"(?<![A-Za-z0-9])(?:{alternatives})(?![A-Za-z0-9])")
    text = pattern.sub(lambda match: names[match.group(0)], snapshot.model_dump_json())
    return Snapshot.model_validate_json(text)


def _shifted_value(value: Any, by: timedelta) -> Any:
    if isinstance(value, datetime):
        return value + by
    if isinstance(value, Signal):
        moved = [t + by.total_seconds() for t in value.timestamps]
        return value.model_copy(update={"timestamps": moved})
    if isinstance(value, BaseModel):
        update = {}
        for field in type(value).model_fields:
            old = getattr(value, field)
            new = _shifted_value(old, by)
            if new is not old:
                update[field] = new
        return value.model_copy(update=update) if update else value
    if isinstance(value, list):
        moved_items = [_shifted_value(item, by) for item in value]
        changed = any(a is not b for a, b in zip(moved_items, value, strict=True))
        return moved_items if changed else value
    return value


def shifted(snapshot: Snapshot, by: timedelta) -> Snapshot:
    """The snapshot with every time in it (window, samples, log records, alert, changes,
    ground truth) moved by ``by``."""
    moved = _shifted_value(snapshot, by)
    assert isinstance(moved, Snapshot)
    return moved


def shuffled(snapshot: Snapshot, seed: int) -> Snapshot:
    """The snapshot with its signals and log records in another order."""
    rng = random.Random(seed)
    signals, logs = list(snapshot.signals), list(snapshot.logs)
    rng.shuffle(signals)
    rng.shuffle(logs)
    return snapshot.model_copy(update={"signals": signals, "logs": logs})


def parse_shift(text: str) -> timedelta:
    """``+37d``, ``-3h``, ``1d5h17m``: a signed offset in days, hours, minutes, seconds."""
    match = _SHIFT.match(text.strip())
    if not match or not any(match.groups()[1:]):
        raise UsageError(f"{text!r} is not an offset; give one such as +37d, -3h or 1d5h17m")
    sign, days, hours, minutes, seconds = match.groups()
    offset = timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
    )
    return -offset if sign == "-" else offset


def answer(
    analysis: Analysis, back: dict[str, str] | None = None, *, cap: int | None = None
) -> dict[str, Any]:
    """What must not move: the ranking (in recorded names, candidates of equal score as one
    rank), the leader's fault type, the confidence and whether the evidence sufficed; and the
    order of the list, where only a tie's order may differ. A list as long as ``cap`` (the
    engine's ``max_candidates``) may end inside a tie, so its last rank keeps its score only."""
    back = back or {}
    ranking: list[tuple[float, list[str]]] = []
    for candidate in analysis.candidates:
        service = back.get(candidate.service, candidate.service)
        score = round(candidate.score, 6)  # sums in another order differ in the last bits
        if ranking and ranking[-1][0] == score:
            ranking[-1][1].append(service)
        else:
            ranking.append((score, [service]))
    ranks = [(score, sorted(services)) for score, services in ranking]
    if cap is not None and len(analysis.candidates) >= cap and ranks:
        ranks[-1] = (ranks[-1][0], ["…"])
    return {
        "ranking": ranks,
        "fault_type": analysis.candidates[0].fault_type.value if analysis.candidates else None,
        "confidence": round(analysis.confidence, 3),
        "insufficient_evidence": analysis.insufficient_evidence,
        "order": [back.get(c.service, c.service) for c in analysis.candidates],
    }


def difference(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """The first thing that moved, in words, or None."""
    if before["ranking"] != after["ranking"]:
        pairs = zip(before["ranking"], after["ranking"], strict=False)
        at = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        if at is None:  # one ranking is the other's beginning
            return f"ranking {len(before['ranking'])} -> {len(after['ranking'])} places"
        was, now = before["ranking"][at], after["ranking"][at]
        return f"place {at + 1}: {', '.join(was[1])} {was[0]:g} -> {', '.join(now[1])} {now[0]:g}"
    for key in ("fault_type", "confidence", "insufficient_evidence"):
        if before[key] != after[key]:
            return f"{key} {before[key]} -> {after[key]}"
    return None


def tie_order(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """Where the ranking held, the first tie listed in another order, or None."""
    if before["ranking"] != after["ranking"] or before["order"] == after["order"]:
        return None
    for score, services in before["ranking"]:
        if len(services) > 1:
            first = [s for s in before["order"] if s in services]
            second = [s for s in after["order"] if s in services]
            if first != second:
                return f"tie at {score:g}: {first} -> {second}"
    return f"tie at {before['ranking'][-1][0]:g}, cut at the list's end"


def check_case(
    snapshot: Snapshot,
    transforms: Sequence[str],
    *,
    seed: int = 0,
    shift: timedelta = timedelta(days=37, hours=5),
    engine: EngineSettings | None = None,
) -> dict[str, Any]:
    """The services tied for first place as recorded (None: one leader), and for each
    transform what moved in the answer and which tie was listed in another order (None:
    nothing)."""
    blind = snapshot.model_copy(update={"ground_truth": None})
    settings = engine or EngineSettings()
    cap = settings.max_candidates
    recorded = answer(analyze(blind, settings), cap=cap)
    found: dict[str, dict[str, str | None]] = {}
    for name in transforms:
        back: dict[str, str] = {}
        if name == "names":
            names = neutral_names(blind.services(), seed)
            back = {new: old for old, new in names.items()}
            variant = renamed(blind, names)
        elif name == "clock":
            variant = shifted(blind, shift)
        elif name == "order":
            variant = shuffled(blind, seed)
        else:
            raise UsageError(f"unknown transform {name!r}; choose from {', '.join(TRANSFORMS)}")
        result = answer(analyze(variant, settings), back, cap=cap)
        found[name] = {
            "moved": difference(recorded, result),
            "tie_order": tie_order(recorded, result),
        }
    first = recorded["ranking"][0][1] if recorded["ranking"] else []
    return {"tie_for_first": first if len(first) > 1 else None, "transforms": found}


def check_suites(
    specs: Sequence[str],
    transforms: Sequence[str],
    *,
    seed: int,
    shift: timedelta,
    progress: Callable[[str], None] = lambda _: None,
) -> list[dict[str, Any]]:
    """One row per case of every suite: its name, suite and what each transform moved."""
    rows: list[dict[str, Any]] = []
    for suite in expand_suites(specs):
        if suite.path is None:
            raise UsageError(f"--suite {suite.name}: give a folder of recorded snapshots")
        cases, _ = directory_cases(suite.path)
        for case in cases:
            progress(f"{suite.name}/{case.name}")
            try:
                found = check_case(case.load(), transforms, seed=seed, shift=shift)
            except RcaError:
                raise
            except Exception as exc:  # one line naming the case, not a traceback
                raise RuntimeError(f"case {case.name}: {type(exc).__name__}: {exc}") from exc
            rows.append({"suite": suite.name, "case": case.name, **found})
    return rows


def _shift_option(value: str) -> timedelta:
    try:
        return parse_shift(value)
    except UsageError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command()
@click.option("--suite", "suites", required=True, multiple=True, metavar="DIR")
@click.option(
    "--transform",
    "transforms",
    multiple=True,
    type=click.Choice(TRANSFORMS),
    help="Repeat for several; all three when left out.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Draws names and orders.")
@click.option(
    "--shift",
    default="+37d5h",
    show_default=True,
    callback=lambda _ctx, _param, value: _shift_option(value),
    help="The clock transform's offset: +37d, -3h, 1d5h17m.",
)
@click.option("--json-file", type=click.Path(dir_okay=False, path_type=Path))
def main(
    suites: tuple[str, ...],
    transforms: tuple[str, ...],
    seed: int,
    shift: timedelta,
    json_file: Path | None,
) -> None:
    """Analyse each case as recorded and transformed; list every answer that moved."""
    console = Console(stderr=True)
    chosen = transforms or TRANSFORMS
    try:
        rows = check_suites(
            suites, chosen, seed=seed, shift=shift, progress=lambda name: console.log(name)
        )
    except (RcaError, RuntimeError) as exc:
        failure = click.ClickException(str(exc))
        failure.exit_code = 2  # as diff does: 1 says answers moved, 2 that the check failed
        raise failure from exc
    title = f"answers that moved ({len(rows)} cases, seed {seed}, clock shift {shift})"
    table = Table(title=title)
    for column in ("transform", "moved", "ties reordered", "what moved"):
        table.add_column(
            column, justify="right" if column in ("moved", "ties reordered") else "left"
        )
    for name in chosen:
        moved = [r for r in rows if r["transforms"][name]["moved"]]
        ties = [r for r in rows if r["transforms"][name]["tie_order"]]
        what = "; ".join(f"{r['case']}: {r['transforms'][name]['moved']}" for r in moved)
        table.add_row(name, str(len(moved)), str(len(ties)), what)
    Console().print(table)
    tied = [r for r in rows if r["tie_for_first"]]
    if tied:
        Console().print(
            f"{len(tied)} of {len(rows)} cases have a tie for first place, listed by name "
            "(an AC@1 hit there is the name's luck): "
            + "; ".join(f"{r['case']}: {', '.join(r['tie_for_first'])}" for r in tied)
        )
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "seed": seed,
            "shift_s": shift.total_seconds(),
            "transforms": list(chosen),
            "cases": rows,
        }
        json_file.write_text(json.dumps(payload, indent=2) + "\n")
    if any(t["moved"] for row in rows for t in row["transforms"].values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
