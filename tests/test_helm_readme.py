"""The chart README's values table is generated from values.yaml's comments: it is up to date,
and every value is documented (a value added without a ``# --`` comment fails here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from deploy_support import CHART

README_SCRIPT = CHART.parent / "readme.py"


def _readme_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chart_readme", README_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _leaves(tree: Any, prefix: str = "") -> list[str]:
    if isinstance(tree, dict) and tree:
        return [leaf for k, v in tree.items() for leaf in _leaves(v, f"{prefix}{k}.")]
    return [prefix.rstrip(".")]


def test_readme_is_generated_from_the_current_values() -> None:
    readme = _readme_module()
    current = (CHART / "README.md").read_text(encoding="utf-8")
    values = (CHART / "values.yaml").read_text(encoding="utf-8")
    assert readme.rendered(current, values) == current, "run: python deploy/helm/readme.py"


def test_every_value_is_documented() -> None:
    readme = _readme_module()
    text = (CHART / "values.yaml").read_text(encoding="utf-8")
    documented = {row.key for row in readme.rows(text)}
    for leaf in _leaves(yaml.safe_load(text)):
        parts = leaf.split(".")
        covering = {".".join(parts[: i + 1]) for i in range(len(parts))}
        assert covering & documented, f"{leaf} has no '# --' comment in values.yaml"


def test_rows_read_helm_docs_comments(tmp_path: Path) -> None:
    readme = _readme_module()
    text = """\
# -- Top value,
#    continued.
top: 3
section:
  # -- A nested list.
  items: [a, b]
  # -- Documented as a whole.
  whole:
    inner: x
    # -- Not a row of its own: inside a documented value.
    deeper: y
"""
    rows = readme.rows(text)
    assert [(r.key, r.kind, r.default, r.description) for r in rows] == [
        ("top", "int", "`3`", "Top value, continued."),
        ("section.items", "list", '`["a", "b"]`', "A nested list."),
        ("section.whole", "object", '`{"inner": "x", "deeper": "y"}`', "Documented as a whole."),
    ]
