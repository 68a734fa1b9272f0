"""The signal catalog: which PromQL queries describe a service, and what each one measures.

A catalog is YAML (format and examples: ``docs/connectors.md``; the default is
``connectors/catalog.yaml``). Each signal is a query template whose result series are
grouped by service (and pod, for per-pod signals); the engine gets them as
:class:`~agent.models.Signal` with the catalog's name, kind and unit, so a catalog entry is
the whole contract between a monitoring stack and the engine.

Where a stack names services in different labels for different exporters (cAdvisor's
``container``, kube-state-metrics' ``deployment``, a ServiceMonitor's ``service``), a signal
lists ``service_labels`` in order of preference; the first non-empty one names the service,
and the configured service label is always the last resort.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.errors import ConfigError
from agent.models import SignalKind
from connectors.promql import label_name, render

DEFAULT_CATALOG = "catalog.yaml"
SIGNAL_PLACEHOLDERS = ("selector", "filter", "by", "rate", "rate_window")
TOPOLOGY_PLACEHOLDERS = ("filter", "window", "rate_window")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="signal name the engine and reports show")
    query: str = Field(min_length=1, description="PromQL template ($selector, $by, ...)")


def _known_placeholders(query: str, names: tuple[str, ...]) -> str:
    """Fail at load time, not in the middle of an incident, on a placeholder typo."""
    render(query, dict.fromkeys(names, ""))
    return query


class CatalogSignal(_Entry):
    """One query whose series become signals of the services they are labelled with."""

    kind: SignalKind = Field(description="resource|latency|errors|traffic|saturation|change|other")
    unit: str = ""
    per_pod: bool = Field(False, description="keep one series per pod (rolled up by the engine)")
    service_labels: list[str] = Field(
        default_factory=list, description="labels naming the service, before the configured one"
    )

    @field_validator("service_labels")
    @classmethod
    def _valid_labels(cls, labels: list[str]) -> list[str]:
        return [label_name(label) for label in labels]

    @field_validator("query")
    @classmethod
    def _placeholders(cls, query: str) -> str:
        return _known_placeholders(query, SIGNAL_PLACEHOLDERS)


class TopologyQuery(_Entry):
    """A query whose series are call edges: one label names the caller, one the callee."""

    caller_label: str = "client"
    callee_label: str = "server"

    @field_validator("caller_label", "callee_label")
    @classmethod
    def _valid_label(cls, label: str) -> str:
        return label_name(label)

    @field_validator("query")
    @classmethod
    def _placeholders(cls, query: str) -> str:
        return _known_placeholders(query, TOPOLOGY_PLACEHOLDERS)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    probe: str = Field(
        "up", description="metric whose raw samples reveal the scrape interval (a gauge)"
    )
    signals: list[CatalogSignal] = Field(min_length=1)
    topology: list[TopologyQuery] = Field(default_factory=list)

    @field_validator("signals")
    @classmethod
    def _unique_names(cls, signals: list[CatalogSignal]) -> list[CatalogSignal]:
        seen: set[str] = set()
        for signal in signals:
            if signal.name in seen:
                raise ValueError(f"signal name {signal.name!r} appears twice")
            seen.add(signal.name)
        return signals


def load_catalog(path: Path | None = None) -> Catalog:
    """The catalog in ``path``, or the built-in default; errors name the file and field."""
    if path is None:
        text = resources.files("connectors").joinpath(DEFAULT_CATALOG).read_text("utf-8")
        where = f"built-in {DEFAULT_CATALOG}"
    else:
        if not path.is_file():
            raise ConfigError(f"signal catalog {path} does not exist")
        text = path.read_text("utf-8")
        where = str(path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"signal catalog {where} is not valid YAML: {exc}") from None
    try:
        return Catalog.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"signal catalog {where}: {loc}: {msg}") from None
