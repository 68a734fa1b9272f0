"""The fine-tuning dataset builder: serving prompt, grounded targets, feedback rows, split
without leakage, deterministic content hash. Tokens are counted with a tiny tokenizer built
here (no downloads). Skipped without the ``[finetune]`` extra.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import build_analysis, build_snapshot

pytest.importorskip("transformers")
datasets = pytest.importorskip("datasets")

from sqlalchemy.orm import sessionmaker  # noqa: E402 - after the importorskips

from agent.config import Settings  # noqa: E402
from agent.errors import ConfigError  # noqa: E402
from agent.models import FaultType, Trigger  # noqa: E402
from agent.snapshot import write_snapshot  # noqa: E402
from agent.store import queue  # noqa: E402
from agent.store.db import make_engine, migrate  # noqa: E402
from agent.store.intake import NewJob, enqueue  # noqa: E402
from agent.store.queries import add_feedback  # noqa: E402
from agent.summarize.guard import check_answer  # noqa: E402
from agent.summarize.prompt import build_prompt  # noqa: E402
from finetune.config import TrainConfig, load_config, parse_overrides  # noqa: E402
from finetune.dataset import (  # noqa: E402
    DatasetRequest,
    build_dataset,
    read_card,
    split_by_incident,
)
from finetune.examples import Example, NoExample, Truth, build_example  # noqa: E402
from finetune.tiny import build_tiny_model  # noqa: E402

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def _store_with_feedback(url: str) -> None:
    """One finished analysis (payments blamed) that a person corrected to checkout."""
    engine = make_engine(url)
    migrate(engine)
    analysis = build_analysis().model_copy(
        update={"trigger": Trigger(kind="alert", alert_name="X", group_key="{}:{alert=X}")}
    )
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        job = NewJob(analysis.id, analysis.trigger, NOW - timedelta(minutes=30), NOW)
        enqueue(session, job, NOW)
    with sessions.begin() as session:
        claimed = queue.claim(session, "w1", timedelta(minutes=5), NOW)
        assert claimed is not None
        queue.finish(session, claimed.id, "w1", analysis.model_dump_json(), NOW)
        add_feedback(
            session,
            analysis.id,
            verdict="wrong",
            actual_service="checkout",
            actual_fault_type=None,
            note="it was the network",
            author="oncall",
            now=NOW,
        )
    engine.dispose()


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path
) -> tuple[Path, dict[str, object], Path]:
    root = tmp_path_factory.mktemp("sources")
    write_snapshot(build_snapshot(), root / "snapshots" / "payments-leak")
    url = f"sqlite:///{root / 'rca.db'}"
    _store_with_feedback(url)
    request = DatasetRequest(
        out=root / "ds",
        model=str(tokenizer_dir),
        prompt_tokens=3000,
        seeds="20000-20005",
        snapshots=(root / "snapshots",),
        feedback_url=url,
        val_fraction=0.3,
    )
    card = build_dataset(request, Settings())
    return root, card, tokenizer_dir


def _rows(directory: Path) -> dict[str, list[dict[str, object]]]:
    loaded = datasets.load_from_disk(str(directory))
    return {name: list(loaded[name]) for name in loaded}


def test_every_source_lands_and_the_feedback_correction_is_the_target(
    built: tuple[Path, dict[str, object], Path],
) -> None:
    root, card, _ = built
    rows = [r for split in _rows(root / "ds").values() for r in split]
    sources = {r["source"] for r in rows}
    assert sources == {"sim", "snapshot", "feedback"}
    feedback = [r for r in rows if r["source"] == "feedback"]
    assert len(feedback) == 1
    answer = json.loads(feedback[0]["messages"][-1]["content"])
    assert answer["root_cause"]["service"] == "checkout"
    assert answer["root_cause"]["fault_type"] == FaultType.NETWORK_LATENCY.value
    assert answer["evidence_ids"] == ["M2"]
    assert [m["role"] for m in feedback[0]["messages"]] == ["system", "user", "assistant"]
    splits = card["splits"]
    assert isinstance(splits, dict)
    total = sum(s["by_source"].get("feedback", 0) for s in splits.values())
    assert total == 1


def test_train_and_validation_share_no_incident_seed_or_prompt(
    built: tuple[Path, dict[str, object], Path],
) -> None:
    root, _, _ = built
    rows = _rows(root / "ds")
    assert rows["train"] and rows["validation"]
    incidents = [{r["incident"] for r in rows[name]} for name in ("train", "validation")]
    assert not incidents[0] & incidents[1]
    prompts = [{json.dumps(r["messages"][:-1]) for r in rows[n]} for n in ("train", "validation")]
    assert not prompts[0] & prompts[1]


def test_the_same_inputs_give_the_same_hash(
    built: tuple[Path, dict[str, object], Path], tmp_path: Path
) -> None:
    root, card, tokenizer_dir = built
    again = DatasetRequest(
        out=tmp_path / "again",
        model=str(tokenizer_dir),
        prompt_tokens=3000,
        seeds="20000-20005",
        snapshots=(root / "snapshots",),
        feedback_url=f"sqlite:///{root / 'rca.db'}",
        val_fraction=0.3,
    )
    assert build_dataset(again, Settings())["content_hash"] == card["content_hash"]
    assert read_card(tmp_path / "again")["content_hash"] == card["content_hash"]
    fewer = DatasetRequest(
        out=tmp_path / "fewer", model=str(tokenizer_dir), prompt_tokens=3000, seeds="20000-20002"
    )
    assert build_dataset(fewer, Settings())["content_hash"] != card["content_hash"]


def test_prompt_is_the_serving_prompt_and_target_passes_the_guard() -> None:
    draft = build_analysis()
    prompt = build_prompt(draft, budget=3000)
    example = build_example(
        draft,
        Truth("payments", FaultType.MEMORY_LEAK),
        prompt=lambda d: build_prompt(d, budget=3000),
        source="sim",
        incident="sim-1",
    )
    assert example.messages[:-1] == prompt.messages
    check_answer(example.messages[-1]["content"], draft)  # raises if serving would reject it


def test_a_truth_outside_the_candidates_yields_no_example() -> None:
    with pytest.raises(NoExample, match="not among the candidates"):
        build_example(
            build_analysis(),
            Truth("inventory", FaultType.DISK_FULL),
            prompt=lambda d: build_prompt(d, budget=3000),
            source="sim",
            incident="sim-2",
        )


def _example(incident: str, n: int) -> Example:
    return Example(f"x:{incident}:{n}", incident, "sim", "a", "disk_full", [], 1)


def test_split_keeps_each_incident_on_one_side() -> None:
    examples = [_example(f"inc-{i % 7}", i) for i in range(40)]
    splits = split_by_incident(examples, 0.3)
    sides = {name: {e.incident for e in rows} for name, rows in splits.items()}
    assert sides["validation"] and not sides["train"] & sides["validation"]
    assert sum(len(rows) for rows in splits.values()) == 40


def test_config_validation_names_every_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"lora_r must be at least 1.*set epochs or max_steps"):
        TrainConfig(dataset="d", output_dir="o", lora_r=0)
    path = tmp_path / "c.yaml"
    path.write_text("dataset: d\noutput_dir: o\nmax_steps: 5\nlora_rank: 4\n")
    with pytest.raises(ConfigError, match="unknown training config keys: lora_rank"):
        load_config(path)
    path.write_text("dataset: d\noutput_dir: o\nmax_steps: 5\n")
    cfg = load_config(path, parse_overrides(["target_modules=[q_proj]", "lora-r=4"]))
    assert cfg.target_modules == ["q_proj"] and cfg.lora_r == 4 and cfg.max_steps == 5
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["nonsense"])


def test_cli_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from agent.cli import cli

    monkeypatch.setenv("RCA_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    bad_key = runner.invoke(cli, ["finetune", "train", "--set", "lora_rank=4"])
    assert bad_key.exit_code == 2
    assert bad_key.stderr.strip() == (
        "rca: error: --set 'lora_rank=4': expected KEY=VALUE with KEY one of the config keys"
    )
    no_db = runner.invoke(cli, ["finetune", "dataset", "--out", str(tmp_path / "o"), "--feedback"])
    assert no_db.exit_code == 2
    assert no_db.stderr.startswith("rca: error: no service database at sqlite:///")
    assert not (tmp_path / "rca.db").exists()
