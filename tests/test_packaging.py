"""The package as a packager and an auditor read it: one version everywhere, the license, every
directly imported distribution declared with a lower bound, constraints.txt inside those
bounds, and the image built from a pinned base and the constraints."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions

import yaml
from deploy_support import CHART, DOCKERFILE, ROOT, dockerfile_instructions
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import agent

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
PACKAGES = ("agent", "connectors", "evals", "finetune")
OPTIONAL_IMPORTS = {"mlflow": "finetune/train.py logs to MLflow only when it is installed"}
TEST_HELPERS = {"slack_double": "evals/bench_slack.py drives the test suite's Slack double"}


def _requirements() -> list[Requirement]:
    lines = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        lines += extra
    return [Requirement(line) for line in lines]


def test_one_version_everywhere() -> None:
    version = PROJECT["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["appVersion"] == version, "Chart.yaml appVersion must be pyproject's version"
    args = [a for k, a in dockerfile_instructions() if k == "ARG" and a.startswith("VERSION=")]
    assert args == [f"VERSION={version}"], "the Dockerfile's default VERSION label"
    assert agent.__version__ == version
    source = (ROOT / "agent" / "__init__.py").read_text(encoding="utf-8")
    assert version not in source, "agent.__version__ comes from the package metadata"
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "## [Unreleased]" in changelog and f"## [{version}]" in changelog


def test_license_is_declared_as_spdx_and_shipped() -> None:
    assert PROJECT["license"] == "Apache-2.0"
    assert PROJECT["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.lstrip().startswith("Apache License\n                           Version 2.0")
    assert "END OF TERMS AND CONDITIONS" in text
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # PEP 639
    labels = " ".join(a for k, a in dockerfile_instructions() if k == "LABEL")
    assert 'org.opencontainers.image.licenses="Apache-2.0"' in labels
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    assert {"Repository", "Issues", "Changelog"} <= set(PROJECT["urls"])
    assert (ROOT / "SECURITY.md").is_file()


def _direct_imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it, for every import outside the standard library
    and the project, wherever it sits in the file (lazy imports included)."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in (*PACKAGES, "__future__"):
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_direct_import_is_declared_with_a_lower_bound() -> None:
    declared = {canonicalize_name(r.name): r for r in _requirements()}
    distributions = packages_distributions()
    for module, files in sorted(_direct_imports().items()):
        if module in OPTIONAL_IMPORTS or module in TEST_HELPERS:
            continue
        assert module in distributions, f"{module} (imported by {sorted(files)}) is not installed"
        names = {canonicalize_name(d) for d in distributions[module]}
        requirement = next((declared[n] for n in names if n in declared), None)
        assert requirement is not None, f"{module} ({sorted(files)[0]}) is not in pyproject.toml"
        lower = [s for s in requirement.specifier if s.operator in (">=", "==", "~=")]
        assert lower, f"{requirement} has no lower bound"


def test_constraints_pin_every_requirement_inside_its_range() -> None:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in constraints.txt: make constraints"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {requirement.name}=={pins[name]}, outside {requirement}"
        )


def test_the_image_installs_from_a_pinned_base_and_the_constraints() -> None:
    args = dict(a.split("=", 1) for k, a in dockerfile_instructions() if k == "ARG" and "=" in a)
    assert re.fullmatch(r"python:3\.11-slim-\w+@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
    installs = [a for k, a in dockerfile_instructions() if k == "RUN" and "pip install" in a]
    project = [part for a in installs for part in a.split("&&") if "pip install" in part]
    for command in project:
        if "torch==" in command:
            continue  # from PyTorch's CPU index, at the version the extras pin
        assert "--constraint constraints.txt" in command, command
    copied = " ".join(a for k, a in dockerfile_instructions() if k == "COPY")
    assert "constraints.txt" in copied and "LICENSE" in copied
    assert "lowest-direct" in (ROOT / "Makefile").read_text(encoding="utf-8")
    assert DOCKERFILE.is_file()
