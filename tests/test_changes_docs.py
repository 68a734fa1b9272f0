"""The ready-made Argo CD notification and GitHub Actions step in docs/service.md work: their
reports, rendered with sample values, are stored by the real service (the GitHub step runs
its own curl against it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from service_support import READ_TOKEN, WRITE_TOKEN, LiveServer, auth, settings_for

from agent.service.app import create_app
from agent.service.schemas import ChangeRequest

DOC = Path(__file__).resolve().parents[1] / "docs" / "service.md"


def block(marker: str) -> Any:
    match = re.search(rf"<!-- {marker} -->\n```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"docs/service.md has a yaml block after <!-- {marker} -->"
    return yaml.safe_load(match.group(1))


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{.path}}`` (Go templates, as Argo CD) or ``${{ path }}`` (GitHub) with values;
    an expression without a value fails the test."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        assert key in values, f"no sample value for {key}"
        return values[key]

    return re.sub(r"\$?\{\{\s*(.*?)\s*\}\}", value, template)


ARGO = {
    ".app.metadata.name": "checkout",
    ".app.spec.destination.namespace": "shop",
    ".app.status.operationState.startedAt": "2024-05-14T10:15:00Z",
    ".app.status.operationState.finishedAt": "2024-05-14T10:16:30Z",
    ".app.status.operationState.syncResult.revision": "9f2c1e7",
    ".context.argocdUrl": "https://argocd.example.com",
}
GITHUB = {
    "secrets.RCA_AGENT_TOKEN": WRITE_TOKEN,
    "github.sha": "9f2c1e7d",
    "github.actor": "octocat",
    "github.server_url": "https://github.com",
    "github.repository": "shop/checkout",
    "github.run_id": "4242",
    "github.run_attempt": "1",
}


def test_the_argocd_notification_is_a_valid_change() -> None:
    data = block("argocd-notifications-cm")["data"]
    service = yaml.safe_load(data["service.webhook.rca-agent"])
    assert service["url"].endswith("/v1/changes")
    headers = {h["name"]: h["value"] for h in service["headers"]}
    assert headers["Authorization"] == "Bearer $rca-agent-token"
    (trigger,) = yaml.safe_load(data["trigger.on-sync-succeeded-rca"])
    assert trigger["send"] == ["rca-change"] and "Succeeded" in trigger["when"]
    webhook = yaml.safe_load(data["template.rca-change"])["webhook"]["rca-agent"]
    assert webhook["method"] == "POST"
    change = ChangeRequest.model_validate(json.loads(render(webhook["body"], ARGO)))
    assert (change.service, change.namespace, change.to_version, change.id) == (
        "checkout",
        "shop",
        "9f2c1e7",
        "checkout@2024-05-14T10:16:30Z",
    )


def test_the_github_actions_step_reports_to_the_service(tmp_path: Path) -> None:
    note, report = block("github-actions")
    server = LiveServer(create_app(settings_for(tmp_path)))
    try:
        env_file = tmp_path / "github_env"
        env = {**os.environ, "GITHUB_ENV": str(env_file)}
        subprocess.run(["bash", "-ec", note["run"]], env=env, check=True, timeout=30)
        deploy_at = env_file.read_text().strip().split("=", 1)[1]
        step_env = {k: render(v, GITHUB) for k, v in report["env"].items()}
        step_env["RCA_URL"] = server.url  # the documented URL is an example
        script = render(report["run"], GITHUB)
        for attempt in (1, 2):  # a retried step stores the change once
            done = subprocess.run(
                ["bash", "-ec", script],
                env={**env, **step_env, "DEPLOY_AT": deploy_at},
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr + done.stdout
            outcome = json.loads(done.stdout)["outcome"]
            assert outcome == ("new" if attempt == 1 else "duplicate")
        listed = httpx.get(f"{server.url}/v1/changes", headers=auth(READ_TOKEN)).json()
    finally:
        server.stop()
    (item,) = listed["items"]
    assert (item["change"]["service"], item["change"]["namespace"]) == ("checkout", "shop")
    assert item["change"]["link"] == "https://github.com/shop/checkout/actions/runs/4242"
    assert item["change"]["at"].replace("+00:00", "Z") == deploy_at
