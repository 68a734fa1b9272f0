"""The Helm chart's value combinations the chart tests render (``SCENARIOS``), and the
Kubernetes matching rules they check the rendered objects with: label selectors, Ingress
paths, the ``helm test`` hook pod."""

from __future__ import annotations

from typing import Any

from deploy_support import Rendered, render

PG_URL = "postgresql+psycopg://rca:pg-password-7c1e@postgres.db.svc:5432/rca"
SECRETS: dict[str, Any] = {
    "apiTokens": ["api-secret-value-1a2b:write", "api-secret-value-3c4d:read"],
    "webhookToken": "webhook-secret-value-5e6f",
    "slackBotToken": "xoxb-slack-secret-value-7a8b",
    "slackSigningSecret": "signing-secret-value-9c0d",
    "shareSecret": "share-secret-value-0a1b2c",
    "openaiApiKey": "sk-openai-secret-value-1e2f",
    "embeddingsApiKey": "sk-embeddings-secret-value-2f3a",
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
    "runbooks": {
        "checkout-pool.md": "---\nalerts: [CheckoutErrors]\nservices: [checkout]\n"
        "fault_types: [db_pool_exhaustion]\n---\n# Checkout pool\n## Pool exhausted\n"
        "Raise max_connections.\n",
        "broken.md": "---\nservices: [a\n---\n",
    },
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


def render_scenarios() -> dict[str, Rendered]:
    return {name: render(values) for name, values in SCENARIOS.items()}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def routed(paths: list[dict[str, Any]], request_path: str) -> bool:
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


def hook_test_pod(rendered: Rendered) -> dict[str, Any]:
    (pod,) = [
        o
        for o in rendered.of_kind("Pod")
        if o["metadata"]["annotations"].get("helm.sh/hook") == "test"
    ]
    return pod
