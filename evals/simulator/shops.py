"""Shop-like call graphs modelled on the microservice demos that public RCA datasets record.

Three flavors share one shape (a frontend fanning out to cart, catalog, checkout, payment, ...
over a few datastores and an external payment gateway): plain names (``cart``), the
online-boutique spelling (``cartservice``) and sock-shop, with its own services and databases.
"""

from __future__ import annotations

import numpy as np

from evals.simulator.topology import ServiceGraph, Tier, assemble

# name -> (tier, runtime, callees)
_SHOP: dict[str, tuple[Tier, str, tuple[str, ...]]] = {
    "frontend": (
        "entry",
        "go",
        ("cart", "product-catalog", "currency", "recommendation", "ad", "checkout", "shipping"),
    ),
    "checkout": (
        "app",
        "go",
        ("cart", "product-catalog", "currency", "shipping", "email", "payment", "postgres"),
    ),
    "cart": ("app", "java", ("redis-cart",)),
    "product-catalog": ("app", "go", ("postgres",)),
    "recommendation": ("app", "python", ("product-catalog",)),
    "currency": ("app", "node", ()),
    "payment": ("app", "node", ("payment-gateway",)),
    "shipping": ("app", "go", ()),
    "email": ("app", "python", ()),
    "ad": ("app", "java", ()),
    "redis-cart": ("datastore", "redis", ()),
    "postgres": ("datastore", "postgres", ()),
    "payment-gateway": ("external", "external", ()),
}

# Optional services: (tier, runtime, callers, callees); a seed picks a few.
_SHOP_EXTRAS: dict[str, tuple[Tier, str, tuple[str, ...], tuple[str, ...]]] = {
    "auth": ("app", "java", ("frontend",), ("postgres",)),
    "inventory": ("app", "python", ("checkout",), ("postgres",)),
    "orders": ("app", "java", ("checkout",), ("postgres", "kafka")),
    "search": ("app", "go", ("frontend",), ("product-catalog", "elasticsearch")),
    "reviews": ("app", "node", ("frontend",), ("postgres",)),
    "quote": ("app", "python", ("shipping",), ()),
}
_EXTRA_STORES: dict[str, tuple[Tier, str]] = {
    "kafka": ("datastore", "kafka"),
    "elasticsearch": ("datastore", "elasticsearch"),
}

_SOCK_SHOP: dict[str, tuple[Tier, str, tuple[str, ...]]] = {
    "front-end": ("entry", "node", ("carts", "catalogue", "orders", "user")),
    "orders": ("app", "java", ("carts", "payment", "shipping", "user", "orders-db")),
    "carts": ("app", "java", ("carts-db",)),
    "catalogue": ("app", "go", ("catalogue-db",)),
    "payment": ("app", "go", ()),
    "shipping": ("app", "java", ("rabbitmq",)),
    "queue-master": ("app", "java", ("rabbitmq",)),
    "user": ("app", "go", ("user-db",)),
    "carts-db": ("datastore", "mongodb", ()),
    "orders-db": ("datastore", "mongodb", ()),
    "catalogue-db": ("datastore", "mysql", ()),
    "user-db": ("datastore", "mongodb", ()),
    "rabbitmq": ("datastore", "rabbitmq", ()),
}


def _boutique_name(name: str, tier: Tier) -> str:
    """online-boutique spells app services ``cartservice``, ``productcatalogservice``."""
    if tier != "app":
        return name
    return name.replace("-", "") + "service"


def _shop_tables(
    rng: np.random.Generator,
) -> tuple[dict[str, tuple[Tier, str]], list[tuple[str, str]]]:
    kinds = {name: (tier, runtime) for name, (tier, runtime, _) in _SHOP.items()}
    edges = [(name, callee) for name, (_, _, callees) in _SHOP.items() for callee in callees]
    extras = list(_SHOP_EXTRAS)
    for name in rng.choice(extras, int(rng.integers(0, 4)), replace=False):
        tier, runtime, callers, callees = _SHOP_EXTRAS[str(name)]
        kinds[str(name)] = (tier, runtime)
        for callee in callees:
            kinds.setdefault(callee, _EXTRA_STORES.get(callee, ("datastore", callee)))
        edges += [(caller, str(name)) for caller in callers]
        edges += [(str(name), callee) for callee in callees]
    return kinds, edges


def shop_graph(rng: np.random.Generator) -> ServiceGraph:
    """A shop-like graph of 13 to 18 services in one of three naming flavors."""
    flavor = ("shop", "boutique", "sock-shop")[int(rng.choice(3, p=[0.45, 0.35, 0.2]))]
    if flavor == "sock-shop":
        kinds = {name: (tier, runtime) for name, (tier, runtime, _) in _SOCK_SHOP.items()}
        edges = [(n, callee) for n, (_, _, callees) in _SOCK_SHOP.items() for callee in callees]
        return assemble(rng, flavor, "sock-shop", kinds, edges)
    kinds, edges = _shop_tables(rng)
    if flavor == "boutique":
        rename = {name: _boutique_name(name, tier) for name, (tier, _) in kinds.items()}
        kinds = {rename[name]: kind for name, kind in kinds.items()}
        edges = [(rename[a], rename[b]) for a, b in edges]
    return assemble(rng, flavor, "default" if flavor == "boutique" else "shop", kinds, edges)
