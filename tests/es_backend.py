"""The Elasticsearch the connector tests run against: the test double, or a real cluster.

Set ``RCA_TEST_ELASTICSEARCH_URL`` (and, if it needs auth, ``RCA_TEST_ELASTICSEARCH_API_KEY``)
to run the same tests against a real cluster as well; each test then works in its own
``rca-test-<random>-*`` indices and deletes them afterwards. Against the double, a test also
fails if the connector sent any request shape the double does not model.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from es_double import EsDouble, running

from connectors.elasticsearch import ElasticsearchSource
from connectors.settings import ElasticsearchSettings

CLUSTER_ENV = "RCA_TEST_ELASTICSEARCH_URL"
KEY_ENV = "RCA_TEST_ELASTICSEARCH_API_KEY"


def backend_params() -> list[Any]:
    """Always the double; the real cluster too when ``RCA_TEST_ELASTICSEARCH_URL`` is set."""
    params: list[Any] = ["double"]
    if os.environ.get(CLUSTER_ENV):
        params.append(pytest.param("cluster", marks=pytest.mark.integration))
    return params


def open_backend(kind: str) -> Iterator[Backend]:
    """A fresh backend of ``kind`` (``double`` or ``cluster``), cleaned up afterwards."""
    if kind == "cluster":
        cluster = Backend(
            os.environ[CLUSTER_ENV],
            f"rca-test-{secrets.token_hex(4)}",
            api_key=os.environ.get(KEY_ENV),
        )
        try:
            yield cluster
        finally:
            cluster.cleanup()
        return
    with running() as double:
        yield Backend(double.url, "rca-test", double=double)
        assert double.errors == [], "the connector sent requests the double does not model"


@dataclass
class Backend:
    """Where the logs live for one test; ``prefix`` keeps tests' indices apart."""

    url: str
    prefix: str
    double: EsDouble | None = None
    api_key: str | None = None
    created: list[str] = field(default_factory=list)

    def settings(self, **values: Any) -> ElasticsearchSettings:
        values.setdefault("index", f"{self.prefix}-*")
        if self.api_key:
            values.setdefault("api_key", self.api_key)
        return ElasticsearchSettings.model_validate(values)

    def source(self, **values: Any) -> ElasticsearchSource:
        return ElasticsearchSource(self.url, self.settings(**values))

    def client(self) -> Elasticsearch:
        return Elasticsearch(self.url, api_key=self.api_key, request_timeout=30)

    def index(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        self.created.append(full)
        return full

    def load(self, name: str, docs: Iterable[dict[str, Any]]) -> str:
        """Load ``docs`` the connector's way (index template + ``_bulk``) into ``name``."""
        index = self.index(name)
        self.source().bulk_load(docs, index)
        return index

    def load_raw(self, name: str, docs: list[dict[str, Any]]) -> str:
        """Load ``docs`` with no template, so Elasticsearch maps them dynamically."""
        index = self.index(name)
        with self.client() as es:
            operations: list[dict[str, Any]] = []
            for doc in docs:
                operations += [{"create": {"_index": index}}, doc]
            response = es.bulk(operations=operations, refresh=True)
            assert not response["errors"]
        return index

    def cleanup(self) -> None:
        if self.double is not None or not self.created:
            return
        with self.client() as es:
            es.indices.delete(index=",".join(self.created), ignore_unavailable=True)
            for index in self.created:
                es.options(ignore_status=404).indices.delete_index_template(name=f"rca-{index}")
