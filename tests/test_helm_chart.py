"""The Helm chart, rendered by Helm's own engine across the value combinations that matter
(``helm_values.SCENARIOS``): every object valid against the Kubernetes schemas, ``helm lint``
clean, secrets only referenced, a locked-down pod, and the schema's refusals with their
messages. How the objects are wired to each other and to the service: ``test_helm_wiring``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from deploy_support import (
    CHART,
    NAMESPACE,
    TOKENS,
    Rendered,
    render,
    secret_data,
    with_tokens,
)
from helm_values import (
    HA,
    PG_URL,
    SCENARIOS,
    SECRETS,
    hook_test_pod,
    render_scenarios,
    selects,
)

from agent.config import Settings

# A current Kubernetes release that kubernetes-validate ships schemas for.
KUBERNETES_VERSION = "1.34.0"
# Custom resources of the Prometheus Operator: no schema in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}


@pytest.fixture(scope="module")
def charts() -> dict[str, Rendered]:
    return render_scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_object_is_valid_kubernetes(charts: dict[str, Rendered], scenario: str) -> None:
    rendered = charts[scenario]
    assert rendered.objects
    for obj in rendered.objects:
        if obj["kind"] in CRD_KINDS:
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            assert obj["metadata"]["name"] and isinstance(obj["spec"], dict)
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "rca"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_lint_is_clean(scenario: str) -> None:
    report = helm.lint(
        CHART,
        with_tokens(SCENARIOS[scenario]),
        strict=True,
        namespace=NAMESPACE,
        kube_version="v1.34.0",
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_secrets_are_only_referenced(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    values = [*SECRETS["apiTokens"], *(v for k, v in SECRETS.items() if k != "apiTokens")]
    values.append("pg-password-7c1e")
    text_outside_secret = json.dumps(
        [o for o in rendered.objects if o["kind"] != "Secret"] + [rendered.notes]
    )
    for value in values:
        assert value not in text_outside_secret
    stored = secret_data(rendered)
    assert stored["api-tokens"] == ",".join(SECRETS["apiTokens"])
    assert stored["database-url"] == PG_URL
    env = rendered.agent_container()["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert {r["key"] for r in refs.values()} == set(stored)
    assert {r["name"] for r in refs.values()} == {rendered.one("Secret")["metadata"]["name"]}
    for name in ("RCA_API_TOKENS", "RCA_WEBHOOK_TOKEN", "RCA_DATABASE_URL"):
        assert not refs[name].get("optional"), f"{name} must be required"


def test_existing_secret_is_referenced_not_created(charts: dict[str, Rendered]) -> None:
    rendered = charts["existing-secret"]
    assert rendered.of_kind("Secret") == []
    refs = [
        e["valueFrom"]["secretKeyRef"]
        for e in rendered.agent_container()["env"]
        if "valueFrom" in e
    ]
    assert refs and {r["name"] for r in refs} == {"rca-managed"}
    assert {"api-tokens", "webhook-token", "database-url"} <= {r["key"] for r in refs}


def test_given_tokens_satisfy_the_service(charts: dict[str, Rendered]) -> None:
    stored = secret_data(charts["defaults"])
    settings = Settings(api_tokens=stored["api-tokens"], webhook_token=stored["webhook-token"])
    assert [t.scope for t in settings.api_tokens] == ["write"]
    assert stored["webhook-token"] == TOKENS["webhookToken"]
    assert "database-url" not in stored


def test_every_render_gives_the_same_secret() -> None:
    """Under `helm template` or Argo CD nothing can be looked up: a generated token would
    change on every render (and every sync would rotate it)."""
    first, second = render(HA), render(HA)
    assert first.one("Secret") == second.one("Secret")
    templates = "".join(p.read_text() for p in (CHART / "templates").rglob("*") if p.is_file())
    for generator in ("randAlphaNum", "randAlpha", "randNumeric", "randAscii", "lookup", "uuidv4"):
        assert generator not in templates, generator


@pytest.mark.parametrize(
    "secrets",
    [{}, {"apiTokens": ["only-the-api-token:write"]}, {"webhookToken": "only-the-webhook"}],
)
def test_without_tokens_or_an_existing_secret_the_install_says_how(
    secrets: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        render({"secrets": secrets}, tokens=False)
    assert "secrets.apiTokens and secrets.webhookToken are required" in str(raised.value)
    assert "secrets.existingSecret" in str(raised.value)
    copy_dir = tmp_path / "rca-agent"  # tools that skip values.schema.json get it too
    shutil.copytree(CHART, copy_dir)
    (copy_dir / "values.schema.json").unlink()
    with helm.Chart.load(copy_dir) as chart, pytest.raises(helm.HelmRenderError) as failed:
        chart.render({"secrets": secrets}, name="rca", namespace=NAMESPACE)
    assert "openssl rand -hex 24" in str(failed.value)
    assert "the GitOps path" in str(failed.value)


@pytest.mark.parametrize("scenario", ["defaults", "ha-postgres", "everything"])
def test_pod_is_locked_down(charts: dict[str, Rendered], scenario: str) -> None:
    rendered = charts[scenario]
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    container = rendered.agent_container()
    context = container["securityContext"]
    assert context["runAsNonRoot"] and pod["securityContext"]["runAsNonRoot"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert context["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert pod["topologySpreadConstraints"]
    for constraint in pod["topologySpreadConstraints"]:
        assert selects(
            constraint["labelSelector"]["matchLabels"],
            rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"],
        )
    assert container["command"] == ["rca"]
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": 3}, "replicaCount > 1 needs an external PostgreSQL"),
        ({"autoscaling": {"enabled": True}}, "autoscaling.enabled needs an external PostgreSQL"),
        ({"database": {"mode": "postgresql"}}, "database.mode=postgresql needs database.url"),
    ],
)
def test_impossible_combinations_fail_with_the_schema_message(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        render(values)
    assert message in str(raised.value)
    assert "SQLite serves one replica" in str(raised.value) or "postgresql" in message


def test_template_fails_too_without_the_schema(tmp_path: Path) -> None:
    """Tools that skip values.schema.json (or a parent chart's values) still get the message."""
    copy_dir = tmp_path / "rca-agent"
    shutil.copytree(CHART, copy_dir)
    (copy_dir / "values.schema.json").unlink()
    with helm.Chart.load(copy_dir) as chart, pytest.raises(helm.HelmRenderError) as raised:
        chart.render(with_tokens({"replicaCount": 3}), name="rca", namespace=NAMESPACE)
    assert "replicaCount > 1 needs an external PostgreSQL" in str(raised.value)


def test_schema_rejects_wrong_types() -> None:
    with pytest.raises(helm.HelmValuesError, match="replicaCount"):
        render({"replicaCount": "three"})
    with pytest.raises(helm.HelmValuesError, match="backend"):
        render({"summarizer": {"backend": "gpt"}})


def test_schema_refuses_a_short_share_secret() -> None:
    with pytest.raises(Exception, match="shareSecret"):
        render({"secrets": {"shareSecret": "short"}})


def test_image_digest_pins_the_pulled_image() -> None:
    digest = "sha256:" + "ab" * 32
    rendered = render({"image": {"repository": "registry.example/rca", "digest": digest}})
    version = rendered.one("Deployment")["metadata"]["labels"]["app.kubernetes.io/version"]
    expected = f"registry.example/rca:{version}@{digest}"
    assert rendered.agent_container()["image"] == expected
    assert hook_test_pod(rendered)["spec"]["containers"][0]["image"] == expected
    assert render().agent_container()["image"].count("@") == 0
    with pytest.raises(helm.HelmValuesError, match="digest"):
        render({"image": {"digest": "latest"}})
