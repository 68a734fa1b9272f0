"""The chart's output run for real: the agent started with exactly the environment and config
file a rendered pod gets (SQLite, PostgreSQL, vLLM), the setting names checked against the
settings model, and the PrometheusRule's alerts evaluated by promtool.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_support import Pod, local_paths, pod_env, render, secret_data, write_config
from openai_double import OpenAIDouble, Reply
from pydantic import BaseModel
from service_support import (
    MINIMAL,
    auth,
    notification,
    postgres_database,
    snapshot_dir,
    unavailable,
)

from agent.config import Settings, load_settings
from agent.engine.pipeline import analyze
from agent.snapshot import load_snapshot
from agent.summarize.factory import build_summarizer

# Env names the chart sets ahead of the service. Remove an entry once Settings has the field;
# the test below then checks it too.
PENDING_SETTINGS: set[str] = set()


def _field_path(name: str) -> list[str]:
    return name.removeprefix("RCA_").lower().split("__")


def _resolves(model: type[BaseModel], path: list[str]) -> bool:
    field = model.model_fields.get(path[0])
    if field is None:
        return False
    if len(path) == 1:
        return True
    nested = field.annotation
    return (
        isinstance(nested, type) and issubclass(nested, BaseModel) and _resolves(nested, path[1:])
    )


OPENAI_WITH_KEY = {
    "summarizer": {"backend": "openai", "model": "gpt-4.1-mini"},
    "secrets": {"openaiApiKey": "sk-1"},
}


@pytest.mark.parametrize(
    "values",
    [
        {},
        {"database": {"mode": "postgresql", "url": "postgresql+psycopg://x@db/rca"}},
        {"vllm": {"enabled": True, "models": {"existingClaim": "m"}}},
        {"config": {"service": {"workers": 4}, "prometheus": {"selector": 'cluster="prod"'}}},
        OPENAI_WITH_KEY,
    ],
    ids=["defaults", "postgres", "vllm", "config", "openai-with-key"],
)
def test_env_names_and_config_file_are_settings(
    values: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(values)
    container_env = rendered.agent_container()["env"]
    names = {e["name"] for e in container_env if e["name"].startswith("RCA_")}
    unknown = {n for n in names - PENDING_SETTINGS if not _resolves(Settings, _field_path(n))}
    assert unknown == set(), "the chart sets environment variables Settings does not know"
    write_config(rendered, tmp_path / "etc")
    env = local_paths(pod_env(rendered, secret_data(rendered)), tmp_path / "etc", tmp_path)
    for name, value in env.items():
        if name.startswith("RCA_") and name not in PENDING_SETTINGS:
            monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert settings.webhook_token is not None and settings.api_tokens
    file_values = yaml.safe_load((tmp_path / "etc" / "config.yaml").read_text())
    assert settings.backend == file_values["backend"]
    if "summarizer" in file_values:
        assert settings.summarizer.model == file_values["summarizer"]["model"]
        assert settings.summarizer.base_url == file_values["summarizer"].get("base_url")
    for section, keys in values.get("config", {}).items():
        for key, value in keys.items():
            assert getattr(getattr(settings, section), key) == value, f"{section}.{key}"
    if "database" in values:
        assert settings.database_url == values["database"]["url"]
    else:
        assert settings.database_url is None  # SQLite under data_dir


def test_agent_serves_as_the_chart_configures_it(tmp_path: Path) -> None:
    rendered = render({"config": {"snapshot_dir": str(snapshot_dir(tmp_path))}})
    pod = Pod(rendered, tmp_path)
    try:
        container = rendered.agent_container()
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(pod.url + path, timeout=5).status_code == 200, path
        webhook = pod.secrets["webhook-token"]
        accepted = httpx.post(
            pod.url + "/v1/alertmanager", json=notification(), headers=auth(webhook)
        )
        assert accepted.status_code == 202, accepted.text
        token = pod.secrets["api-tokens"].partition(":")[0]
        analysis = accepted.json()["analysis_id"]
        found = httpx.get(f"{pod.url}/v1/analyses/{analysis}", headers=auth(token))
        assert found.status_code == 200
        denied = httpx.get(pod.url + "/v1/analyses", headers=auth("wrong-token-x"))
        assert denied.status_code == 401
        assert any((tmp_path / "data").iterdir()), "SQLite lives on the data volume"
    finally:
        pod.stop()


@pytest.mark.integration
def test_scaled_out_replicas_share_postgres(tmp_path: Path) -> None:
    import sqlalchemy as sa

    with postgres_database() as url:
        values = {
            "replicaCount": 2,
            "database": {"mode": "postgresql", "url": url},
            "config": {"snapshot_dir": str(snapshot_dir(tmp_path))},
        }
        rendered = render(values)
        replicas = [Pod(rendered, tmp_path / "a"), Pod(rendered, tmp_path / "b")]
        try:
            for replica in replicas:
                ready = httpx.get(replica.url + "/readyz", timeout=5)
                assert ready.status_code == 200 and ready.json()["database"] is True
            headers = auth(replicas[0].secrets["webhook-token"])
            for replica in replicas:  # Alertmanager repeats: one episode, one analysis
                sent = httpx.post(
                    replica.url + "/v1/alertmanager", json=notification(), headers=headers
                )
                assert sent.status_code == 202, sent.text
            engine = sa.create_engine(url)
            with engine.connect() as connection:
                count = connection.execute(sa.text("SELECT count(*) FROM analyses")).scalar_one()
            engine.dispose()
            assert count == 1
        finally:
            for replica in replicas:
                replica.stop()


def test_vllm_wiring_reaches_an_openai_compatible_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chart's config makes the openai backend ask the vLLM Service for the adapter's
    model name, with no API key. An OpenAI-shaped double answers at that address (here the
    cluster DNS name is rewritten to it; vLLM's API is OpenAI's)."""
    values = {
        "vllm": {"enabled": True, "adapterName": "rca-v7", "models": {"existingClaim": "m"}},
        "config": {"summarizer": {"max_retries": 0}},
    }
    rendered = render(values)
    service = rendered.one("Service", "vllm")
    cluster_url = (
        f"http://{service['metadata']['name']}.ops.svc:{service['spec']['ports'][0]['port']}"
    )
    with OpenAIDouble([Reply.error(503, "model warming up")]) as vllm:
        write_config(rendered, tmp_path)
        config = tmp_path / "config.yaml"
        config.write_text(config.read_text().replace(cluster_url, vllm.url))
        monkeypatch.delenv("RCA_SUMMARIZER__API_KEY", raising=False)
        monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        settings = load_settings(config)
        analysis = analyze(load_snapshot(MINIMAL), summarizer=build_summarizer(settings))
    assert [r.path for r in vllm.requests] == ["/v1/chat/completions"]
    assert vllm.requests[0].body["model"] == "rca-v7"
    assert analysis.backend == "extractive" and "503" in (analysis.summarizer_fallback or "")


@pytest.mark.integration
def test_prometheus_rule_alerts_fire(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        unavailable("promtool not installed")
    assert promtool is not None
    rule = render({"prometheusRule": {"enabled": True}}).one("PrometheusRule")
    groups = rule["spec"]["groups"]
    for entry in groups[0]["rules"]:
        assert entry.pop("annotations")["summary"]  # promtool would compare their rendering
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run(
        [promtool, "check", "rules", "rules.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    target = 'namespace="ops", service="rca-rca-agent"'
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": f'rca_analyses_total{{{target}, status="failed"}}',
                        "values": "0+2x60",
                    },
                    {
                        "series": f'rca_analyses_total{{{target}, status="done"}}',
                        "values": "0+1x60",
                    },
                    {"series": f'rca_queue_depth{{{target}, state="pending"}}', "values": "15x60"},
                    {"series": f'rca_queue_depth{{{target}, state="running"}}', "values": "10x60"},
                    {"series": f"rca_summarizer_fallbacks_total{{{target}}}", "values": "0+1x60"},
                    {"series": f"up{{{target}}}", "values": "0x60"},
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "40m",
                        "alertname": name,
                        "exp_alerts": [{"exp_labels": {"severity": "warning"}}],
                    }
                    for name in (
                        "RcaAnalysesFailing",
                        "RcaQueueBackingUp",
                        "RcaSummarizerFallbacks",
                        "RcaAgentDown",
                    )
                ],
            }
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [promtool, "test", "rules", "tests.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
