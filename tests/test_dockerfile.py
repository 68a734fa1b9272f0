"""The Dockerfile, checked without a Docker engine: what it copies exists and survives
.dockerignore, the copied tree builds a wheel with the `rca` console script, both targets
exist, the final stages run as the chart's non-root UID with no build tools, and the
HEALTHCHECK command really answers against a running agent.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from deploy_support import ROOT, Pod, dockerfile_instructions, render, split_words
from service_support import free_port

BUILD_TOOLS = {"gcc", "g++", "cc", "clang", "make", "build-essential", "cmake", "rustc", "cargo"}
FINAL_TARGETS = ("core", "local")


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, FROM first. Unnamed stages are keyed by index."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for keyword, arguments in dockerfile_instructions():
        if keyword == "FROM":
            words = split_words(arguments)
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))
            current = stages[name] = []
        if current is not None:
            current.append((keyword, arguments))
    return stages


def _lineage(stages: dict[str, list[tuple[str, str]]], name: str) -> list[str]:
    """``name`` and the stages it is built FROM, nearest first."""
    chain = [name]
    while True:
        base = split_words(stages[chain[-1]][0][1])[0]
        if base not in stages:
            return chain
        chain.append(base)


def _final_instructions(name: str) -> list[tuple[str, str]]:
    stages = _stages()
    return [i for stage in reversed(_lineage(stages, name)) for i in stages[stage]]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, enough for our patterns: a path is out when it or a parent matches."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        for candidate in candidates:
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(candidate.split("/")[-1], bare)
            ):
                return True
    return False


def _copies() -> list[list[str]]:
    """Arguments of every COPY that reads the build context (no --from)."""
    return [
        words
        for keyword, arguments in dockerfile_instructions()
        if keyword == "COPY" and not (words := split_words(arguments))[0].startswith("--from")
    ]


def test_both_targets_exist_and_core_is_the_default() -> None:
    stages = _stages()
    assert set(FINAL_TARGETS) <= set(stages)
    assert list(stages)[-1] == "core", "a plain `docker build .` must build the core image"
    local = "\n".join(arguments for _, arguments in _final_instructions("build-local"))
    assert "torch==2.13.0" in local and "'.[local]'" in local
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "torch==2.13.0" in extras["optional-dependencies"]["local"]


def test_every_copied_source_exists_and_is_in_the_context() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = _copies()
    assert copies
    for words in copies:
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not _ignored(source, patterns), f"COPY {source} is excluded by .dockerignore"
    assert _ignored("tests/test_dockerfile.py", patterns) and _ignored(".venv/bin/rca", patterns)
    assert not _ignored("connectors/catalog.yaml", patterns)
    stages = _stages()
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and arguments.startswith("--from="):
            assert split_words(arguments)[0].removeprefix("--from=") in stages


def test_copied_tree_builds_the_rca_console_script(tmp_path: Path) -> None:
    """Exactly what the build stage copies is enough to build the package, data included."""
    context = tmp_path / "src"
    context.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for words in _copies():
        *sources, target = words
        for source in sources:
            destination = context / (
                Path(target) / Path(source).name if target.endswith("/") else Path(target)
            )
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, destination, ignore=ignore)
            else:
                shutil.copy(ROOT / source, destination)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp_path / "dist").glob("rca_agent-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    assert re.search(r"^rca = agent\.cli:main$", scripts, re.MULTILINE)
    assert {"agent/cli.py", "agent/service/app.py", "connectors/catalog.yaml"} <= names
    headers = metadata.decode()
    assert "License-Expression: Apache-2.0" in headers and "License-File: LICENSE" in headers
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "Requires-Dist: prometheus-api-client>=0.6.0" in headers


def test_entrypoint_is_the_rca_console_script() -> None:
    instructions = _final_instructions("core")
    entrypoint = [json.loads(a) for k, a in instructions if k == "ENTRYPOINT"][-1]
    command = [json.loads(a) for k, a in instructions if k == "CMD"][-1]
    assert entrypoint == ["rca"]
    assert command[0] == "serve"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rca"] == "agent.cli:main"
    chart = render().agent_container()
    assert chart["command"] == entrypoint and chart["args"][0] == command[0]


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_stage_runs_as_the_charts_non_root_user(target: str) -> None:
    users = [a for k, a in _final_instructions(target) if k == "USER"]
    assert users, f"{target} sets no USER: it would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes can check runAsNonRoot"
    context = render().agent_container()["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid or uid))


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_stage_has_no_build_tools(target: str) -> None:
    stages = _stages()
    lineage = _lineage(stages, target)
    base = split_words(stages[lineage[-1]][0][1])[0]
    assert base.startswith("${PYTHON_IMAGE}") or "slim" in base
    default = next(a for k, a in dockerfile_instructions() if k == "ARG" and "PYTHON_IMAGE" in a)
    assert default.split("@sha256:")[0].endswith("-slim-bookworm")
    for stage in lineage:
        for keyword, arguments in stages[stage]:
            if keyword == "RUN":
                installed = set(re.findall(r"[\w+.-]+", arguments))
                assert not (installed & BUILD_TOOLS), f"{stage}: {arguments}"
            if keyword == "COPY" and "--from=" in arguments:
                source = split_words(arguments)[-2]
                assert source == "/opt/rca", f"{stage} copies more than the environment"


def test_oci_labels() -> None:
    labels = " ".join(a for k, a in _final_instructions("core") if k == "LABEL")
    for key in ("title", "description", "licenses", "version", "revision", "created"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_healthcheck_asks_healthz_of_a_running_agent(tmp_path: Path) -> None:
    check = next(a for k, a in _final_instructions("core") if k == "HEALTHCHECK")
    command = json.loads(check[check.index("CMD") + 3 :])
    assert command[0] == "python" and "/healthz" in command[-1]
    probe = [sys.executable, *command[1:]]
    pod = Pod(render(), tmp_path)
    try:
        alive = subprocess.run(
            probe,
            env={"RCA_SERVICE__PORT": str(pod.port)},
            timeout=30,
            capture_output=True,
            check=False,
        )
        assert alive.returncode == 0, alive.stderr
    finally:
        pod.stop()
    dead = subprocess.run(
        probe,
        env={"RCA_SERVICE__PORT": str(free_port())},
        timeout=30,
        capture_output=True,
        check=False,
    )
    assert dead.returncode != 0
