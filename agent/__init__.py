"""rca-agent: root cause analysis for on-call teams.

The version has one source, the package metadata (``version`` in pyproject.toml); the Helm
chart's ``appVersion`` and the Dockerfile's default ``VERSION`` must equal it
(tests/test_packaging.py). A source tree that was never installed reads pyproject.toml
beside the package instead.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DISTRIBUTION = "rca-agent"


def _version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        pass
    import tomllib  # only a checkout that was never installed gets here

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


__version__ = _version()
