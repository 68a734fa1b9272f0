"""The Helm chart's wiring, rendered by Helm's own engine: probes and metrics on the real
app's routes, scale-out only on PostgreSQL, the ServiceMonitor on the Service's port, the
openai backend wired to vLLM, the Ingress, NetworkPolicies, the ConfigMap, the notes, and
the ``helm test`` pod run against a real agent.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import (
    NAMESPACE,
    Pod,
    Rendered,
    render,
    secret_data,
)
from helm_values import (
    EVERYTHING,
    PG_URL,
    SCENARIOS,
    hook_test_pod,
    render_scenarios,
    routed,
    selects,
)
from server_process import free_port

from agent.config import Settings
from agent.service.app import WEBHOOK_PATH, create_app


@pytest.fixture(scope="module")
def charts() -> dict[str, Rendered]:
    return render_scenarios()


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    """(METHOD, path) of every route in the real app's route table (its OpenAPI paths)."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("routes")))
    paths = app.openapi()["paths"]
    return {(method.upper(), path) for path, ops in paths.items() for method in ops}


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
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert not rendered.of_kind("PersistentVolumeClaim")
    assert secret_data(rendered)["database-url"] == PG_URL


def test_service_monitor_selects_the_service_port(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    service = rendered.one("Service")
    monitor = rendered.one("ServiceMonitor")
    assert selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert not selects(
        monitor["spec"]["selector"]["matchLabels"],
        rendered.one("Service", "vllm")["metadata"]["labels"],
    )
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["endpoints"][0]["port"] in service_ports
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    pod_labels = rendered.one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pod_labels)
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
    assert selects(
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
    assert selects(agent["spec"]["podSelector"]["matchLabels"], pod_labels)
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
    assert routed(paths, url.path)
    assert ("GET", "/v1/analyses/{analysis_id}/report.md") in routes
    for route in ("", "/chart.png"):
        assert routed(paths, f"/v1/analyses/an-0123456789abcdef{route}")
        assert ("GET", f"/v1/analyses/{{analysis_id}}{route}") in routes
    assert routed(paths, "/analyses/an-0123456789abcdef")  # the report page
    assert url.path == "/analyses/an-0123456789abcdef"
    assert not routed(paths, WEBHOOK_PATH) and not routed(paths, "/metrics")
    assert "/analyses/<id>" in rendered.notes and "share token" in rendered.notes


def test_report_paths_can_be_turned_off() -> None:
    values = copy.deepcopy(EVERYTHING)
    values["ingress"]["reportPaths"] = []
    rendered = render(values)
    paths = rendered.one("Ingress")["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/slack/events"]
    assert not routed(paths, "/v1/analyses/an-1/report.md")
    assert "will not open outside the cluster" in rendered.notes


def test_helm_test_pod_asks_the_service_and_is_not_behind_it(charts: dict[str, Rendered]) -> None:
    rendered = charts["everything"]
    pod = hook_test_pod(rendered)
    service = rendered.one("Service")
    assert not selects(service["spec"]["selector"], pod["metadata"]["labels"])
    policy = rendered.named("NetworkPolicy", service["metadata"]["name"])
    allowed = [
        peer["podSelector"]["matchLabels"]
        for peer in policy["spec"]["ingress"][0]["from"]
        if "podSelector" in peer
    ]
    assert any(selects(labels, pod["metadata"]["labels"]) for labels in allowed)
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
    (container,) = hook_test_pod(rendered)["spec"]["containers"]
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


def test_runbooks_are_a_configmap_mounted_where_the_config_points(
    charts: dict[str, Rendered], tmp_path: Path
) -> None:
    from agent.memory.runbooks import load_runbooks

    rendered = charts["everything"]
    (configmap,) = [
        c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].endswith("-runbooks")
    ]
    assert set(configmap["data"]) == {"checkout-pool.md", "broken.md"}
    container = rendered.agent_container()
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["runbooks"] == rendered.config_file()["memory"]["runbooks_dir"]
    pod = rendered.one("Deployment")["spec"]["template"]
    assert "checksum/runbooks" in pod["metadata"]["annotations"]
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    library = load_runbooks(tmp_path)  # what the agent reads at start-up
    assert [r.path for r in library.runbooks] == ["checkout-pool.md"]
    assert library.problems[0].startswith("broken.md:2: front matter is not valid YAML")
    assert not [c for c in charts["defaults"].of_kind("ConfigMap") if "runbooks" in str(c)]
