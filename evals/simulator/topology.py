"""Call graphs that simulated incidents run on.

The engine is later checked on recordings of public fault-injection experiments
(online-boutique, sock-shop, train-ticket), so the simulator offers graphs shaped like those
demos, and random layered DAGs of any size so that tuning cannot overfit one architecture.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Literal

import numpy as np

from agent.models import Edge, Topology

Tier = Literal["entry", "app", "datastore", "external"]
LANGUAGES = ("java", "python", "go", "node")
POOLED_ENGINES = ("postgres", "mysql", "mongodb")

# Kubernetes' alphabet for generated name suffixes: no vowels, no look-alike characters.
_POD_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class ServiceSpec:
    """One service; ``runtime`` is the language of an app or the engine of a datastore."""

    name: str
    tier: Tier
    runtime: str
    pods: tuple[str, ...]
    has_pool: bool = False
    has_disk: bool = False

    @property
    def is_datastore(self) -> bool:
        return self.tier == "datastore"

    @property
    def is_external(self) -> bool:
        return self.tier == "external"

    @property
    def is_app(self) -> bool:
        return self.tier in ("entry", "app")


@dataclass(frozen=True)
class ServiceGraph:
    """Services and ``(caller, callee)`` edges; symptoms travel against the edges."""

    flavor: str
    namespace: str
    services: tuple[ServiceSpec, ...]
    edges: tuple[tuple[str, str], ...]

    @cached_property
    def by_name(self) -> dict[str, ServiceSpec]:
        return {s.name: s for s in self.services}

    @cached_property
    def _callers(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {s.name: [] for s in self.services}
        for caller, callee in self.edges:
            table[callee].append(caller)
        return table

    @cached_property
    def _callees(self) -> dict[str, list[str]]:
        table: dict[str, list[str]] = {s.name: [] for s in self.services}
        for caller, callee in self.edges:
            table[caller].append(callee)
        return table

    def callers(self, name: str) -> list[str]:
        return self._callers[name]

    def callees(self, name: str) -> list[str]:
        return self._callees[name]

    def ancestors(self, name: str) -> list[str]:
        """Every service that reaches ``name`` through calls, nearest first."""
        seen: dict[str, None] = {}
        queue = deque(self.callers(name))
        while queue:
            current = queue.popleft()
            if current not in seen:
                seen[current] = None
                queue.extend(self.callers(current))
        return list(seen)

    def upstream_order(self, name: str) -> list[str]:
        """``name`` and its ancestors, each after every affected service it calls."""
        members = {name, *self.ancestors(name)}
        pending = {m: sum(c in members for c in self.callees(m)) for m in members}
        return _kahn([name], pending, self.callers)

    def caller_first_order(self) -> list[str]:
        """All services, each after all of its callers (entries first)."""
        pending = {s.name: len(self.callers(s.name)) for s in self.services}
        entries = [s.name for s in self.services if pending[s.name] == 0]
        return _kahn(entries, pending, self.callees)

    def topology(self) -> Topology:
        return Topology(
            services=[s.name for s in self.services],
            edges=[Edge(caller=a, callee=b) for a, b in self.edges],
        )


def name_suffix(rng: np.random.Generator, length: int) -> str:
    picks = rng.integers(0, len(_POD_ALPHABET), length)
    return "".join(_POD_ALPHABET[int(i)] for i in picks)


def replica_pods(rng: np.random.Generator, service: str, count: int) -> tuple[str, ...]:
    """Pod names of one Deployment ReplicaSet: ``cart-7d9f8b6c4-x2k9p``."""
    template = name_suffix(rng, int(rng.integers(9, 11)))
    return tuple(f"{service}-{template}-{name_suffix(rng, 5)}" for _ in range(count))


def _pods(rng: np.random.Generator, name: str, tier: Tier) -> tuple[str, ...]:
    if tier == "external":
        return ()
    if tier == "datastore":
        return tuple(f"{name}-{i}" for i in range(1 if rng.random() < 0.7 else 3))
    return replica_pods(rng, name, int(rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])))


def assemble(
    rng: np.random.Generator,
    flavor: str,
    namespace: str,
    kinds: dict[str, tuple[Tier, str]],
    edges: list[tuple[str, str]],
) -> ServiceGraph:
    """Give services pods and capabilities; pools follow calls to pooled databases."""
    pooled = {
        caller for caller, callee in edges if kinds[callee][1] in POOLED_ENGINES and caller in kinds
    }
    specs = []
    for name, (tier, runtime) in kinds.items():
        has_disk = tier == "datastore" or (tier == "app" and rng.random() < 0.15)
        specs.append(
            ServiceSpec(
                name=name,
                tier=tier,
                runtime=runtime,
                pods=_pods(rng, name, tier),
                has_pool=name in pooled and tier != "datastore",
                has_disk=has_disk,
            )
        )
    return ServiceGraph(flavor, namespace, tuple(specs), tuple(edges))


# --- random layered graphs -------------------------------------------------------------------

_WORDS = (
    "auth",
    "billing",
    "catalog",
    "inventory",
    "pricing",
    "search",
    "profile",
    "notification",
    "recommendation",
    "shipping",
    "payment",
    "order",
    "review",
    "session",
    "media",
    "geo",
    "fraud",
    "ledger",
    "tax",
    "promo",
    "loyalty",
    "report",
    "export",
    "user",
    "account",
    "cart",
    "quote",
    "routing",
    "booking",
    "ticket",
    "seat",
    "route",
    "travel",
    "station",
    "train",
    "food",
    "consign",
    "assurance",
    "security",
    "config",
    "audit",
    "analytics",
    "rating",
    "wishlist",
    "invoice",
    "refund",
    "subscription",
    "coupon",
    "delivery",
    "contacts",
)
_NAME_STYLES = ("{w}", "{w}-service", "ts-{w}-service", "{w}-api", "{w}svc")
_ENTRY_WORDS = ("frontend", "api-gateway", "web", "mobile-bff", "edge", "storefront", "ui")
_ENGINES = ("postgres", "mysql", "redis", "mongodb", "kafka", "rabbitmq", "elasticsearch")
_EXTERNALS = ("payment-gateway", "sms-provider", "maps-api", "email-provider", "identity-provider")
_NAMESPACES = ("prod", "default", "platform", "apps", "production", "shop")


class _Namer:
    """Unique, realistic service names; falls back to compound words for huge graphs."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.style = _NAME_STYLES[int(rng.integers(len(_NAME_STYLES)))]
        self.used: set[str] = set()

    def _take(self, options: list[str]) -> str:
        for name in options:
            if name not in self.used:
                self.used.add(name)
                return name
        return self._take([f"{options[0]}-{len(self.used)}"])

    def _word(self) -> str:
        return _WORDS[int(self.rng.integers(len(_WORDS)))]

    def app(self) -> str:
        words = [self._word() for _ in range(3)]
        compound = f"{self._word()}-{words[0]}"
        return self._take([self.style.format(w=w) for w in [*words, compound]])

    def entry(self) -> str:
        word = _ENTRY_WORDS[int(self.rng.integers(len(_ENTRY_WORDS)))]
        return self._take([self.style.format(w=word) if word == "ui" else word, f"{word}-2"])

    def datastore(self, engine: str) -> str:
        word = self._word()
        options = [f"{engine}-{word}", f"{word}-db", engine, f"{word}-{engine}"]
        return self._take(options if engine in POOLED_ENGINES else options[2:] + options[:1])

    def external(self) -> str:
        return self._take([_EXTERNALS[int(self.rng.integers(len(_EXTERNALS)))], "partner-api"])


def _layer_sizes(rng: np.random.Generator, apps: int) -> list[int]:
    depth = int(np.clip(round(np.log2(max(apps, 1))) + int(rng.integers(-1, 2)), 1, 8))
    depth = min(depth, max(apps, 1))
    cuts = sorted(int(c) for c in rng.choice(np.arange(1, apps), depth - 1, replace=False))
    bounds = [0, *cuts, apps]
    return [b - a for a, b in pairwise(bounds)]


def _some(rng: np.random.Generator, pool: list[str], low: int, high: int) -> list[str]:
    """Between ``low`` and ``high - 1`` distinct names from ``pool`` (fewer if it is small)."""
    count = min(len(pool), int(rng.integers(low, high)))
    return [str(name) for name in rng.choice(pool, count, replace=False)]


def _wire(
    rng: np.random.Generator, layers: list[list[str]], stores: list[str]
) -> list[tuple[str, str]]:
    """Every service gets a caller one layer up; then extra calls downwards, stores last."""
    edges: dict[tuple[str, str], None] = {}
    for depth in range(1, len(layers)):
        above = [n for layer in layers[:depth] for n in layer]
        for name in layers[depth]:
            pool = layers[depth - 1] if rng.random() < 0.8 else above
            edges.update(((caller, name), None) for caller in _some(rng, pool, 1, 3))
    for depth, layer in enumerate(layers[:-1]):
        below = [n for deeper in layers[depth + 1 :] for n in deeper]
        for name in layer:
            edges.update(((name, callee), None) for callee in _some(rng, below, 0, 3))
    callers = [n for layer in layers[1:] for n in layer] or layers[0]
    for store in stores:
        edges.update(((caller, store), None) for caller in _some(rng, callers, 1, 4))
    return list(edges)


def random_graph(rng: np.random.Generator, size: int) -> ServiceGraph:
    """A layered DAG of ``size`` services: entries on top, datastores and externals below."""
    namer = _Namer(rng)
    entries = int(np.clip(rng.integers(1, 4), 1, max(1, size // 5)))
    stores = int(np.clip(round(size * rng.uniform(0.12, 0.25)), 1, size - entries - 1))
    externals = int(stores >= 2 and rng.random() < 0.5)
    apps = size - entries - stores
    lead = LANGUAGES[int(rng.integers(len(LANGUAGES)))]
    kinds: dict[str, tuple[Tier, str]] = {}
    layers: list[list[str]] = [[namer.entry() for _ in range(entries)]]
    for name in layers[0]:
        kinds[name] = ("entry", _language(rng, lead))
    for count in _layer_sizes(rng, apps):
        layers.append([namer.app() for _ in range(count)])
        kinds.update({name: ("app", _language(rng, lead)) for name in layers[-1]})
    engines = ["postgres", *(_ENGINES[int(i)] for i in rng.integers(0, len(_ENGINES), stores))]
    store_names = []
    for index in range(stores):
        external = index >= stores - externals
        name = namer.external() if external else namer.datastore(engines[index])
        kinds[name] = ("external", "external") if external else ("datastore", engines[index])
        store_names.append(name)
    edges = _wire(rng, layers, store_names)
    namespace = _NAMESPACES[int(rng.integers(len(_NAMESPACES)))]
    return assemble(rng, "random", namespace, kinds, edges)


def _language(rng: np.random.Generator, lead: str) -> str:
    return lead if rng.random() < 0.5 else LANGUAGES[int(rng.integers(len(LANGUAGES)))]


def _kahn(
    ready: list[str], pending: dict[str, int], successors: Callable[[str], list[str]]
) -> list[str]:
    """Kahn's topological order: a service comes once all ``pending`` predecessors came."""
    queue, order = deque(ready), []
    while queue:
        current = queue.popleft()
        order.append(current)
        for nxt in successors(current):
            pending[nxt] -= 1
            if pending[nxt] == 0:
                queue.append(nxt)
    return order
