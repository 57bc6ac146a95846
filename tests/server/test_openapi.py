"""`/openapi.json` is a valid OpenAPI 3 document, and a real server keeps every promise it
makes: schemathesis calls each operation with generated input and finds no 5xx, no
undocumented status, content type or header, and no answer outside its schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from starlette.testclient import TestClient

from controltower.server import build_app
from controltower.store import InMemoryStore, open_store

from ..conftest import DEMO, RunningGateway, config, running_gateway
from ..store.records import make_record

MASTER_KEY = "sk-openapi-test"
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway with a master key over a SQLite file holding a few traces and a prompt."""
    folder: Path = tmp_path_factory.mktemp("openapi")
    store = open_store(f"sqlite:///{folder / 'traces.db'}")
    store.write([make_record(n) for n in range(1, 4)])
    with running_gateway(config(f"master_key: {MASTER_KEY}\n" + DEMO), store) as gw:
        made = httpx.post(
            f"{gw.url}/api/prompts/greet/versions", json={"text": "Hi {{ name }}"}, headers=AUTH
        )
        assert made.status_code == 201, made.text
        yield gw


def test_the_document_is_valid_openapi_3(gateway: RunningGateway) -> None:
    loaded = schemathesis.openapi.from_url(f"{gateway.url}/openapi.json", headers=AUTH)
    loaded.validate()  # against the OpenAPI 3.0 meta-schema; raises when invalid
    assert len([result.ok() for result in loaded.get_all_operations()]) >= 27


def test_the_document_declares_every_route(gateway: RunningGateway) -> None:
    document = httpx.get(f"{gateway.url}/openapi.json", headers=AUTH).json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ["/v1/chat/completions", "/v1/models", "/v1/traces", "/api/ingest"]:
        assert path in paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            names = {p.get("name") for p in operation.get("parameters", []) if "name" in p}
            placeholders = {part[1:-1] for part in path.split("/") if part.startswith("{")}
            assert placeholders <= names, (method, path)
            if method in ("post", "put"):
                assert "requestBody" in operation, (method, path)
            assert {"200", "201"} & set(operation["responses"]), (method, path)
            for status, answer in operation["responses"].items():
                assert isinstance(status, str) and answer["description"], (method, path)
    traces = {
        p.get("$ref", "").rsplit("/", 1)[-1] for p in paths["/api/traces"]["get"]["parameters"]
    }
    assert {"since", "tags", "metadata", "min_latency", "cursor", "limit"} <= traces
    assert document["components"]["parameters"]["limit"]["schema"]["maximum"] == 200


def served_document() -> dict[str, Any]:
    """The document the app serves, read in-process (the parametrized test needs it when
    pytest collects, before any server runs)."""
    app = build_app(config(f"master_key: {MASTER_KEY}\n" + DEMO), InMemoryStore())
    with TestClient(app) as client:  # runs the app's lifespan: it starts and stops
        answer = client.get("/openapi.json", headers=AUTH)
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


# OTLP protobuf bodies go out as the bytes generated for them
schemathesis.serializer.alias("application/x-protobuf", "application/octet-stream")
schema = schemathesis.openapi.from_dict(served_document())


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_schema(case: Any, gateway: RunningGateway) -> None:
    case.call_and_validate(base_url=gateway.url, headers=AUTH, checks=CHECKS)
