"""The Helm chart, rendered by Helm's own engine across the value combinations that matter,
every object validated against the Kubernetes schemas, and the properties an operator relies
on asserted: secrets only referenced, probes on real routes, a locked-down pod, scale-out only
on PostgreSQL, the ServiceMonitor on the Service's port, the openai backend wired to vLLM.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
from deploy_support import (
    CHART,
    NAMESPACE,
    TOKENS,
    Pod,
    Rendered,
    render,
    secret_data,
    with_tokens,
)
from service_support import free_port

from agent.config import Settings
from agent.service.app import WEBHOOK_PATH, create_app

# A current Kubernetes release that kubernetes-validate ships schemas for.
KUBERNETES_VERSION = "1.34.0"
# Custom resources of the Prometheus Operator: no schema in kubernetes-validate.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
PG_URL = "postgresql+psycopg://rca:pg-password-7c1e@postgres.db.svc:5432/rca"
SECRETS: dict[str, Any] = {
    "apiTokens": ["api-secret-value-1a2b:write", "api-secret-value-3c4d:read"],
    "webhookToken": "webhook-secret-value-5e6f",
    "slackBotToken": "xoxb-slack-secret-value-7a8b",
    "slackSigningSecret": "signing-secret-value-9c0d",
    "shareSecret": "share-secret-value-0a1b2c",
    "openaiApiKey": "sk-openai-secret-value-1e2f",
    "prometheusBearerToken": "prom-secret-value-3a4b",
    "elasticsearchApiKey": "es-key-secret-value-5c6d",
    "elasticsearchPassword": "es-password-secret-value-7e8f",
}
HA = {
    "replicaCount": 3,
    "database": {"mode": "postgresql", "url": PG_URL},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 8},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
}
VLLM = {"vllm": {"enabled": True, "models": {"existingClaim": "rca-models"}}}
VLLM_IMAGE = {
    "vllm": {
        "enabled": True,
        "modelSource": "image",
        "models": {"image": {"repository": "registry.example/rca-models", "tag": "v3"}},
    }
}
EXISTING_SECRET = {
    "secrets": {"existingSecret": "rca-managed"},
    "database": {"mode": "postgresql"},
    "replicaCount": 2,
}
EVERYTHING: dict[str, Any] = {
    "secrets": SECRETS,
    "database": {"mode": "postgresql", "url": PG_URL},
    "sources": {
        "prometheusUrl": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "elasticsearchUrl": "https://logs-es-http.logging.svc:9200",
    },
    "catalog": "probe: up\nsignals: []\n",
    "config": {"engine": {"lookback_minutes": 15}, "prometheus": {"selector": 'cluster="prod"'}},
    "summarizer": {"backend": "openai", "model": "gpt-4.1-mini"},
    "slack": {
        "enabled": True,
        "defaultChannel": "#incidents",
        "routes": [{"match": {"team": "payments"}, "channel": "#payments-oncall"}],
    },
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "host": "rca.example.com",
        "tls": [{"secretName": "rca-tls", "hosts": ["rca.example.com"]}],
    },
    "extraVolumes": [{"name": "es-ca", "secret": {"secretName": "logs-es-http-certs-public"}}],
    "extraVolumeMounts": [{"name": "es-ca", "mountPath": "/etc/rca-ca", "readOnly": True}],
    "networkPolicy": {"enabled": True, "restrictEgress": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True},
    "podDisruptionBudget": {"enabled": True},
    **VLLM,
}
SCENARIOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ha-postgres": HA,
    "vllm-pvc": VLLM,
    "vllm-image": VLLM_IMAGE,
    "existing-secret": EXISTING_SECRET,
    "everything": EVERYTHING,
}


@pytest.fixture(scope="module")
def charts() -> dict[str, Rendered]:
    return {name: render(values) for name, values in SCENARIOS.items()}


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(METHOD, path) of every route in the real app's route table (its OpenAPI paths)."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("routes")))
    paths = app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


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


def test_probes_and_metrics_hit_real_routes(
    charts: dict[str, Rendered], routes: set[tuple[str, str]]
) -> None:
    rendered = charts["everything"]
    container = rendered.agent_container()
    port_names = {p["name"] for p in container["ports"]}
    probes = [container[p]["httpGet"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert {p["path"] for p in probes} == {"/healthz", "/readyz"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in probes:
        assert ("GET", probe["path"]) in routes
        assert probe["port"] in port_names
    endpoint = rendered.one("ServiceMonitor")["spec"]["endpoints"][0]
    assert ("GET", endpoint["path"]) in routes
    assert ("POST", WEBHOOK_PATH) in routes
    assert f"{WEBHOOK_PATH}\n" in rendered.notes


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
        assert _selects(
            constraint["labelSelector"]["matchLabels"],
            rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"],
        )
    assert container["command"] == ["rca"]
    assert container["args"] == ["serve", "--host", "0.0.0.0", "--port", "8080"]
    assert {"name": "http", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_sqlite_mode_is_one_pod_on_a_volume(charts: dict[str, Rendered]) -> None:
    rendered = charts["defaults"]
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    claim = rendered.one("PersistentVolumeClaim")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert not rendered.of_kind("HorizontalPodAutoscaler")
    assert not rendered.of_kind("PodDisruptionBudget")


def test_ha_on_postgres(charts: dict[str, Rendered]) -> None:
    rendered = charts["ha-postgres"]
    deployment = rendered.one("Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert _selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert not rendered.of_kind("PersistentVolumeClaim")
    assert secret_data(rendered)["database-url"] == PG_URL


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


def test_service_monitor_selects_the_service_port(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    service = rendered.one("Service")
    monitor = rendered.one("ServiceMonitor")
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert not _selects(
        monitor["spec"]["selector"]["matchLabels"],
        rendered.one("Service", "vllm")["metadata"]["labels"],
    )
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["port"] in service_ports
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selects(service["spec"]["selector"], pod_labels)
    container_ports = {p["name"] for p in rendered.agent_container()["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


@pytest.mark.parametrize("scenario", ["vllm-pvc", "vllm-image", "everything"])
def test_openai_backend_is_wired_to_vllm(charts: dict[str, Rendered], scenario: str) -> None:
    rendered = charts[scenario]
    config = rendered.config_file()
    service = rendered.one("Service", "vllm")
    port = service["spec"]["ports"][0]
    expected = f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port['port']}/v1"
    assert config["backend"] == "openai"
    assert config["summarizer"]["base_url"] == expected
    deployment = rendered.one("Deployment", "vllm")
    pod = deployment["spec"]["template"]["spec"]
    assert _selects(
        service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"]
    )
    server = pod["containers"][0]
    assert port["targetPort"] in {p["name"] for p in server["ports"]}
    args = server["args"]
    assert "--enable-lora" in args
    lora = args[args.index("--lora-modules") + 1]
    name, _, adapter_path = lora.partition("=")
    assert config["summarizer"]["model"] == name
    mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
    assert mounts["/models"] == "models" and adapter_path.startswith("/models/")
    assert server["resources"]["limits"]["nvidia.com/gpu"] >= 1
    assert pod["nodeSelector"] and pod["tolerations"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    if SCENARIOS[scenario]["vllm"].get("modelSource") == "image":
        init = pod["initContainers"][0]
        assert init["image"] == "registry.example/rca-models:v3"
        (mount,) = init["volumeMounts"]
        source, target = init["command"][-2:]
        assert mount["name"] == "models" and target.rstrip("/") == mount["mountPath"]
        assert not source.startswith(mount["mountPath"]), "the volume would hide the source"
        assert "emptyDir" in volumes["models"]
    else:
        assert volumes["models"]["persistentVolumeClaim"]["claimName"] == "rca-models"


def test_ingress_routes_slack_events_to_the_service(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    ingress = rendered.one("Ingress")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "rca.example.com"
    paths = rule["http"]["paths"]
    assert (paths[0]["path"], paths[0]["pathType"]) == ("/slack/events", "Exact")
    service = rendered.one("Service")
    for path in paths:
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert "https://rca.example.com/slack/events" in rendered.notes


def test_notes_give_the_alertmanager_receiver(charts: dict[str, Rendered]) -> None:
    rendered = charts["defaults"]
    service = rendered.one("Service")
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    assert f"url: http://{name}.{NAMESPACE}.svc:{port}{WEBHOOK_PATH}" in rendered.notes
    assert "{.data.webhook-token}" in rendered.notes
    assert f"credentials_file: /etc/alertmanager/secrets/{name}/webhook-token" in rendered.notes
    assert "webhook-token" in secret_data(rendered)


def test_network_policies(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    agent = rendered.one("NetworkPolicy")
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert _selects(agent["spec"]["podSelector"]["matchLabels"], pod_labels)
    allowed = agent["spec"]["ingress"][0]
    assert allowed["ports"][0]["port"] == "http"
    namespaces = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in allowed["from"]
        if "namespaceSelector" in p
    ]
    assert {"ingress-nginx", "monitoring"} <= set(namespaces)
    assert "Egress" in agent["spec"]["policyTypes"]
    model = rendered.one("NetworkPolicy", "vllm")
    assert model["spec"]["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {k: v for k, v in pod_labels.items()}}}
    ]


def test_config_map_holds_sources_catalog_routing_and_backend(
    charts: dict[str, Rendered],
) -> None:
    from connectors.slack_settings import SlackSettings

    rendered = charts["everything"]
    config = rendered.config_file()
    assert config["prometheus_url"] == EVERYTHING["sources"]["prometheusUrl"]
    assert config["elasticsearch_url"] == EVERYTHING["sources"]["elasticsearchUrl"]
    assert config["prometheus"] == {
        "selector": 'cluster="prod"',
        "catalog": "/etc/rca/catalog.yaml",
    }
    assert rendered.one("ConfigMap")["data"]["catalog.yaml"] == EVERYTHING["catalog"]
    assert config["engine"] == {"lookback_minutes": 15}
    slack = SlackSettings.model_validate(config["slack"])
    assert slack.channel_for({"team": "payments"}) == "#payments-oncall"
    assert slack.channel_for({"team": "search"}) == "#incidents"
    assert slack.public_url == "https://rca.example.com"
    without_vllm = copy.deepcopy(EVERYTHING)
    del without_vllm["vllm"]
    openai = render(without_vllm).config_file()
    assert openai["backend"] == "openai" and openai["summarizer"] == {"model": "gpt-4.1-mini"}


def _routed(paths: list[dict[str, Any]], request_path: str) -> bool:
    """Whether an Ingress with these paths sends ``request_path`` to the backend, by the
    Kubernetes rules: Exact compares the whole path, Prefix compares element by element
    (``/v1/analyses/`` matches ``/v1/analyses/x`` and ``/v1/analyses``, not ``/v1/analysesx``)."""
    for path in paths:
        if path["pathType"] == "Exact" and path["path"] == request_path:
            return True
        if path["pathType"] == "Prefix":
            prefix = [p for p in path["path"].split("/") if p]
            if [p for p in request_path.split("/") if p][: len(prefix)] == prefix:
                return True
    return False


def test_ingress_routes_the_share_link_of_a_post_but_not_the_webhook(
    charts: dict[str, Rendered], routes: set[tuple[str, str]]
) -> None:
    """Follow the chart's own wiring: the public URL it writes into the config, the share
    secret it stores, the link the service builds from both, and the ingress in front."""
    from datetime import UTC, datetime
    from urllib.parse import urlsplit

    from agent.service.share import share_url

    rendered = charts["everything"]
    stored = secret_data(rendered)
    config = rendered.config_file()
    env = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in rendered.agent_container()["env"]
        if "valueFrom" in e
    }
    assert env["RCA_SERVICE__SHARE_SECRET"] == {
        "name": rendered.one("Secret")["metadata"]["name"],
        "key": "share-secret",
        "optional": True,
    }
    settings = Settings.model_validate(
        {
            "slack": config["slack"],
            "api_tokens": stored["api-tokens"],
            "service": {"share_secret": stored["share-secret"]},
        }
    )
    link = share_url(settings, "an-0123456789abcdef", datetime.now(UTC))
    assert link is not None
    url = urlsplit(link)
    rule = rendered.one("Ingress")["spec"]["rules"][0]
    assert url.scheme == "https" and url.hostname == rule["host"]
    assert url.query.startswith("share=")
    paths = rule["http"]["paths"]
    assert _routed(paths, url.path)
    assert ("GET", "/v1/analyses/{analysis_id}/report.md") in routes
    for route in ("", "/chart.png"):
        assert _routed(paths, f"/v1/analyses/an-0123456789abcdef{route}")
        assert ("GET", f"/v1/analyses/{{analysis_id}}{route}") in routes
    assert _routed(paths, "/analyses/an-0123456789abcdef")  # the report page
    assert url.path == "/analyses/an-0123456789abcdef"
    assert not _routed(paths, WEBHOOK_PATH) and not _routed(paths, "/metrics")
    assert "/analyses/<id>" in rendered.notes and "share token" in rendered.notes


def test_report_paths_can_be_turned_off() -> None:
    values = copy.deepcopy(EVERYTHING)
    values["ingress"]["reportPaths"] = []
    rendered = render(values)
    paths = rendered.one("Ingress")["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/slack/events"]
    assert not _routed(paths, "/v1/analyses/an-1/report.md")
    assert "will not open outside the cluster" in rendered.notes


def test_schema_refuses_a_short_share_secret() -> None:
    with pytest.raises(Exception, match="shareSecret"):
        render({"secrets": {"shareSecret": "short"}})


def test_image_digest_pins_the_pulled_image() -> None:
    digest = "sha256:" + "ab" * 32
    rendered = render({"image": {"repository": "registry.example/rca", "digest": digest}})
    version = rendered.one("Deployment")["metadata"]["labels"]["app.kubernetes.io/version"]
    expected = f"registry.example/rca:{version}@{digest}"
    assert rendered.agent_container()["image"] == expected
    assert _test_pod(rendered)["spec"]["containers"][0]["image"] == expected
    assert render().agent_container()["image"].count("@") == 0
    with pytest.raises(helm.HelmValuesError, match="digest"):
        render({"image": {"digest": "latest"}})


def _test_pod(rendered: Rendered) -> dict[str, Any]:
    (pod,) = [
        o
        for o in rendered.of_kind("Pod")
        if o["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    return pod


def test_helm_test_pod_asks_the_service_and_is_not_behind_it(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    pod = _test_pod(rendered)
    service = rendered.one("Service")
    assert not _selects(service["spec"]["selector"], pod["metadata"]["labels"])
    policy = rendered.named("NetworkPolicy", service["metadata"]["name"])
    allowed = [
        peer["podSelector"]["matchLabels"]
        for peer in policy["spec"]["ingress"][0]["from"]
        if "podSelector" in peer
    ]
    assert any(_selects(labels, pod["metadata"]["labels"]) for labels in allowed)
    (container,) = pod["spec"]["containers"]
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert url in container["args"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["restartPolicy"] == "Never"
    assert not render({"tests": {"enabled": False}}).of_kind("Pod")


def test_helm_test_pod_passes_against_a_running_agent_and_fails_without_one(
    charts: dict[str, Rendered], tmp_path: Path
) -> None:
    """Its script, run here against the agent started as the chart configures it."""
    rendered = charts["defaults"]
    (container,) = _test_pod(rendered)["spec"]["containers"]
    service = rendered.one("Service")
    url = f"http://{service['metadata']['name']}:{service['spec']['ports'][0]['port']}"
    assert container["command"] == ["python", "-c"]
    pod = Pod(rendered, tmp_path)
    try:
        script = container["args"][0].replace(url, f"http://127.0.0.1:{pod.port}")
        passed = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        pod.stop()
    assert passed.returncode == 0, passed.stderr
    assert "/healthz 200" in passed.stdout and "/readyz 200" in passed.stdout
    script = container["args"][0].replace(url, f"http://127.0.0.1:{free_port()}")
    failed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert failed.returncode != 0
