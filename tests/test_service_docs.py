"""The configuration reference and the Alertmanager snippet cannot drift from the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from service_support import ROOT, unavailable

from agent.cli import cli
from agent.service.settings_doc import BEGIN, END, markdown_table, settings_docs

CONFIG_DOC = ROOT / "docs" / "configuration.md"
ALERTMANAGER_DOC = ROOT / "docs" / "alertmanager.md"


def test_configuration_doc_is_current() -> None:
    text = CONFIG_DOC.read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert block == markdown_table(), (
        "docs/configuration.md is stale: run python -m agent.service.settings_doc "
        "docs/configuration.md"
    )


def test_serve_help_lists_every_setting() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for doc in settings_docs():
        assert doc.env in result.output


def test_every_required_setting_is_documented() -> None:
    envs = {doc.env for doc in settings_docs()}
    assert {
        "RCA_DATABASE_URL",
        "RCA_API_TOKENS",
        "RCA_WEBHOOK_TOKEN",
        "RCA_PROMETHEUS_URL",
        "RCA_ELASTICSEARCH_URL",
        "RCA_BACKEND",
        "RCA_SNAPSHOT_DIR",
    } <= envs


def _snippet() -> str:
    match = re.search(r"```yaml\n(.*?)```", ALERTMANAGER_DOC.read_text(), re.S)
    assert match, "docs/alertmanager.md has a yaml block"
    return match.group(1)


def test_alertmanager_snippet_uses_bearer_auth_on_the_webhook() -> None:
    config = yaml.safe_load(_snippet())
    receiver = next(r for r in config["receivers"] if r["name"] == "rca-agent")
    webhook = receiver["webhook_configs"][0]
    assert webhook["url"].endswith("/v1/alertmanager")
    assert webhook["http_config"]["authorization"]["type"] == "Bearer"


@pytest.mark.integration
def test_alertmanager_accepts_the_snippet(tmp_path: Path) -> None:
    if shutil.which("amtool") is None:
        unavailable("amtool is not installed")
    config = yaml.safe_load(_snippet())
    config["receivers"][0] = {"name": "pager"}
    auth = config["receivers"][1]["webhook_configs"][0]["http_config"]["authorization"]
    secret = tmp_path / "token"
    secret.write_text("t0ken-for-check")
    auth["credentials_file"] = str(secret)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
