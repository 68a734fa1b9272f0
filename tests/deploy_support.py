"""Shared pieces of the deployment tests: rendering the Helm chart with Helm's own engine
(helm-python-sdk binds Helm's Go SDK), and resolving a rendered pod's environment the way the
kubelet would, so the agent can be started exactly as the chart configures it.
"""

from __future__ import annotations

import base64
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from service_support import AgentProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "deploy" / "helm" / "rca-agent"
DOCKERFILE = ROOT / "Dockerfile"
RELEASE = "rca"
NAMESPACE = "ops"
# Where the chart mounts the ConfigMap and the data volume inside the pod.
CONFIG_MOUNT = "/etc/rca"
DATA_MOUNT = "/data"


@dataclass
class Rendered:
    """One `helm template`: the objects (parsed) and NOTES.txt (text)."""

    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, component: str = "agent") -> dict[str, Any]:
        """The single object of ``kind`` belonging to ``component`` (agent or vllm)."""
        found = [
            o
            for o in self.of_kind(kind)
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component
        ]
        assert len(found) == 1, f"expected one {component} {kind}, found {len(found)}"
        return found[0]

    def named(self, kind: str, name: str) -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
        return found[0]

    def agent_container(self) -> dict[str, Any]:
        pod = self.one("Deployment")["spec"]["template"]["spec"]
        return next(c for c in pod["containers"] if c["name"] == "agent")

    def config_file(self) -> dict[str, Any]:
        data = self.one("ConfigMap")["data"]["config.yaml"]
        parsed = yaml.safe_load(data)
        assert isinstance(parsed, dict), data
        return parsed


TOKENS: dict[str, Any] = {
    "apiTokens": ["test-api-token-2f9c1b7e:write"],
    "webhookToken": "test-webhook-token-8d3a6c0f",
}
"""The tokens every install must give (or an existingSecret): added unless a test says not."""


def with_tokens(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with TOKENS filled in where they set neither tokens nor existingSecret."""
    secrets = dict(values.get("secrets") or {})
    if not secrets.get("existingSecret"):
        for key, value in TOKENS.items():
            secrets.setdefault(key, value)
    return {**values, "secrets": secrets}


def render(values: dict[str, Any] | None = None, *, tokens: bool = True) -> Rendered:
    """Render the chart as `helm install` would (schema validated, templates executed);
    ``tokens``: give the required tokens unless ``values`` does (see :data:`TOKENS`)."""
    given = values or {}
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(
            with_tokens(given) if tokens else given,
            name=RELEASE,
            namespace=NAMESPACE,
            is_install=True,
        )
    objects: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return Rendered(objects, notes)


def secret_data(rendered: Rendered) -> dict[str, str]:
    """The chart-created Secret's values, decoded."""
    secret = rendered.one("Secret")
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def pod_env(rendered: Rendered, secrets: dict[str, str]) -> dict[str, str]:
    """The agent container's environment as the kubelet builds it: plain values as written,
    ``secretKeyRef`` values looked up in ``secrets`` (a missing optional key sets nothing)."""
    env: dict[str, str] = {}
    for var in rendered.agent_container()["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]["secretKeyRef"]
        if ref["key"] in secrets:
            env[var["name"]] = secrets[ref["key"]]
        else:
            assert ref.get("optional"), f"required Secret key {ref['key']} is missing"
    return env


def local_paths(env: dict[str, str], config_dir: Path, data_dir: Path) -> dict[str, str]:
    """``env`` with the pod's mount points replaced by local directories (the volumes)."""
    return {
        name: value.replace(CONFIG_MOUNT, str(config_dir)).replace(DATA_MOUNT, str(data_dir))
        for name, value in env.items()
    }


def write_config(rendered: Rendered, config_dir: Path) -> None:
    """Write the ConfigMap's files where the pod would see them."""
    config_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.one("ConfigMap")["data"].items():
        (config_dir / name).write_text(text)


class Pod(AgentProcess):
    """The agent container run as a local process: the container's command and arguments
    (the `rca` console script of this environment), the pod's environment, the ConfigMap and
    the data volume as local directories, and a free port instead of the container port."""

    def __init__(self, rendered: Rendered, root: Path, **extra_env: str) -> None:
        self.secrets = secret_data(rendered) if rendered.of_kind("Secret") else {}
        config_dir, data_dir = root / "etc", root / "data"
        write_config(rendered, config_dir)
        env = local_paths(pod_env(rendered, self.secrets), config_dir, data_dir)
        container = rendered.agent_container()
        argv = [*container["command"], *container["args"]]
        port = free_port()
        argv[argv.index("--port") + 1] = str(port)
        argv[0] = str(Path(sys.executable).parent / argv[0])
        super().__init__(argv, {**env, **extra_env}, root, root / "pod.log", port, "the agent")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of the Dockerfile, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def split_words(arguments: str) -> list[str]:
    """Shell-like words of an instruction's arguments (for COPY/FROM/USER)."""
    return shlex.split(arguments)
