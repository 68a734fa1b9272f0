"""The service's OpenAPI document as a client generator reads it: every operation has an
explicit operationId that does not change when a route's path or function is renamed, ids are
unique, every tag is described, and no schema is left that no operation uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.config import Settings
from agent.service.app import create_app

# Generated clients name their methods after these: changing one is a breaking change.
OPERATION_IDS = {
    ("POST", "/v1/alertmanager"): "receiveAlertmanagerWebhook",
    ("POST", "/v1/analyses"): "requestAnalysis",
    ("GET", "/v1/analyses"): "listAnalyses",
    ("GET", "/v1/analyses/{analysis_id}"): "getAnalysis",
    ("GET", "/v1/analyses/{analysis_id}/report.md"): "getAnalysisReport",
    ("GET", "/v1/analyses/{analysis_id}/chart.png"): "getAnalysisChart",
    ("POST", "/v1/analyses/{analysis_id}/feedback"): "rateAnalysis",
    ("GET", "/v1/analyses/{analysis_id}/similar"): "similarAnalyses",
    ("DELETE", "/v1/analyses/{analysis_id}"): "deleteAnalysis",
    ("POST", "/v1/changes"): "reportChange",
    ("GET", "/v1/changes"): "listChanges",
    ("GET", "/healthz"): "getHealth",
    ("GET", "/readyz"): "getReadiness",
    ("GET", "/metrics"): "getMetrics",
}


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    document = app.openapi()
    assert isinstance(document, dict)
    return document


def _operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }


def test_operation_ids_are_explicit_stable_and_unique(schema: dict[str, Any]) -> None:
    ids = {key: op["operationId"] for key, op in _operations(schema).items()}
    assert ids == OPERATION_IDS
    assert len(set(ids.values())) == len(ids)


def test_every_operation_is_tagged_with_a_described_tag(schema: dict[str, Any]) -> None:
    described = {tag["name"]: tag["description"] for tag in schema["tags"]}
    for key, operation in _operations(schema).items():
        assert operation["tags"], key
        assert all(described.get(tag) for tag in operation["tags"]), key


def test_no_schema_is_left_unused(schema: dict[str, Any]) -> None:
    """FastAPI adds HTTPValidationError for a route without its own 422; every route that
    can answer 422 declares the ErrorBody the service really sends."""
    components = schema["components"]["schemas"]
    assert "HTTPValidationError" not in components and "ValidationError" not in components
    text = json.dumps(schema)
    for name in components:
        assert f'"#/components/schemas/{name}"' in text, f"{name} is never referenced"


def test_the_document_in_the_docs_matches(schema: dict[str, Any]) -> None:
    """docs/service.md lists the operations by id."""
    doc = (Path(__file__).parents[1] / "docs" / "service.md").read_text(encoding="utf-8")
    for operation_id in OPERATION_IDS.values():
        assert f"`{operation_id}`" in doc, operation_id
