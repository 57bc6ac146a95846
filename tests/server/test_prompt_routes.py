"""The prompt registry API over a real server on a random port, backed by SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from controltower.store import open_store

from ..conftest import DEMO, config, running_gateway

FAQ = {
    "model": "fast",
    "params": {"temperature": 0.2},
    "variables": {
        "question": {"type": "string", "required": True},
        "tier": {"type": "string", "enum": ["free", "pro"], "default": "free"},
    },
    "messages": [
        {"role": "system", "content": "{% if tier == 'pro' %}Pro: 60 days.{% endif %}"},
        {"role": "user", "content": "{{ question }}"},
    ],
}
SOURCE = """name: faq
# how long refunds take
model: fast
text: "Hello {{ who }}"
variables:
  who: {type: string, required: true}
"""


@pytest.fixture
def api(sqlite_url: str) -> Iterator[httpx.Client]:
    """A client of the real app, its prompts in the same SQLite database as its traces."""
    store = open_store(sqlite_url)
    with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as client:
        yield client


def push(api: httpx.Client, name: str = "faq", **changes: Any) -> dict[str, Any]:
    """Push FAQ content (with changes) as a version of `name`; the answer's JSON."""
    answer = api.post(f"/api/prompts/{name}/versions", json={**FAQ, **changes})
    assert answer.status_code in (200, 201), answer.text
    return answer.json()  # type: ignore[no-any-return]


def error(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The OpenAI-format error of an answer, which must have this status."""
    assert answer.status_code == status, answer.text
    return answer.json()["error"]  # type: ignore[no-any-return]


def test_push_is_idempotent_and_versions_are_listed(api: httpx.Client) -> None:
    first = api.post("/api/prompts/support/faq/versions", json={**FAQ, "message": "v1"})
    assert first.status_code == 201
    body = first.json()
    assert (body["name"], body["version"], body["created"]) == ("support/faq", 1, True)
    assert body["messages"] == FAQ["messages"] and body["message"] == "v1"
    assert body["variables"]["tier"] == {
        "type": "string",
        "enum": ["free", "pro"],
        "default": "free",
    }
    again = api.post("/api/prompts/support/faq/versions", json=FAQ)
    assert again.status_code == 200 and again.json()["created"] is False
    assert push(api, "support/faq", params={"temperature": 0.5})["version"] == 2
    prompt = api.get("/api/prompts/support/faq").json()
    assert [v["version"] for v in prompt["versions"]] == [2, 1]
    assert [(lb["label"], lb["version"]) for lb in prompt["labels"]] == [("latest", 2)]
    listed = api.get("/api/prompts").json()["data"]
    assert [(p["name"], p["latest_version"], p["model"]) for p in listed] == [
        ("support/faq", 2, "fast")
    ]
    one = api.get("/api/prompts/support/faq/versions/1").json()
    assert one["params"] == {"temperature": 0.2} and one["created_time"].endswith("Z")


def test_a_version_can_be_pushed_as_its_file_text(api: httpx.Client) -> None:
    answer = api.post("/api/prompts/faq/versions", json={"source": SOURCE, "author": "ann"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["text"], body["source"], body["author"]) == ("Hello {{ who }}", SOURCE, "ann")
    assert api.get("/api/prompts/faq/versions/1").json()["source"] == SOURCE


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({**FAQ, "temprature": 1}, "temprature"),
        ({**FAQ, "text": "both"}, None),
        ({**FAQ, "model": 3}, "model"),
        ({**FAQ, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({**FAQ, "variables": {"question": {"type": "str"}}}, "variables.question.type"),
        ({**FAQ, "message": ["x"]}, "message"),
        ({"source": "name: faq\ntext: [unclosed\n"}, "source"),
        ({}, None),
    ],
)
def test_bad_version_bodies_are_400_naming_the_field(
    api: httpx.Client, body: dict[str, Any], param: str | None
) -> None:
    found = error(api.post("/api/prompts/faq/versions", json=body), 400)
    assert found["type"] == "invalid_request_error"
    if param is not None:
        assert found["param"] == param
        assert param.split("[")[0].split(".")[0] in found["message"]


def test_bad_json_and_bad_names_are_400(api: httpx.Client) -> None:
    bad = api.post("/api/prompts/faq/versions", content=b"{nope")
    assert "not valid JSON" in error(bad, 400)["message"]
    assert error(api.post("/api/prompts/Bad Name/versions", json=FAQ), 400)["param"] == "name"


def test_unknown_prompt_version_and_label_are_404(api: httpx.Client) -> None:
    push(api)
    assert error(api.get("/api/prompts/nope"), 404)["param"] == "name"
    assert error(api.get("/api/prompts/faq/versions/7"), 404)["param"] == "version"
    # numbers no store holds name no version: 404, never a 500
    for raw in ("9" * 5000, str(2**63), "0", "-1", "1e3", "٣"):
        assert error(api.get(f"/api/prompts/faq/versions/{raw}"), 404)["param"] == "version"
    assert error(api.get("/api/prompts/faq/labels/production"), 404)["param"] == "label"
    assert error(api.get("/api/prompts/nope/history"), 404)["code"] == "not_found"
    moved = api.put("/api/prompts/faq/labels/production", json={"version": 9})
    assert error(moved, 404)["param"] == "version"


def test_labels_move_protect_and_roll_back(api: httpx.Client) -> None:
    push(api)
    push(api, params={"temperature": 0.9})
    first = api.put("/api/prompts/faq/labels/production", json={"version": 1, "protect": True})
    assert first.status_code == 200
    assert (first.json()["action"], first.json()["version"]) == ("create", 1)
    refused = api.put("/api/prompts/faq/labels/production", json={"version": 2})
    found = error(refused, 409)
    assert (found["code"], found["param"]) == ("label_protected", "label")
    forced = api.put(
        "/api/prompts/faq/labels/production", json={"version": 2, "force": True, "actor": "ann"}
    )
    assert forced.json()["previous_version"] == 1
    label = api.get("/api/prompts/faq/labels/production").json()
    assert (label["label"]["version"], label["label"]["protected"]) == (2, True)
    assert label["version"]["params"] == {"temperature": 0.9}
    assert error(api.post("/api/prompts/faq/labels/production/rollback"), 409)
    back = api.post("/api/prompts/faq/labels/production/rollback", json={"force": True})
    assert (back.json()["action"], back.json()["version"]) == ("rollback", 1)
    latest = api.get("/api/prompts/faq/labels/latest").json()
    assert latest["label"]["version"] == 2
    history = api.get("/api/prompts/faq/history", params={"label": "production"}).json()["data"]
    assert [(m["action"], m["version"]) for m in history] == [
        ("rollback", 1),
        ("move", 2),
        ("create", 1),
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "version"),
        ({"version": "2"}, "version"),
        ({"version": True}, "version"),
        ({"version": 1, "force": "yes"}, "force"),
        ({"version": 1, "protect": 1}, "protect"),
        ({"version": 1, "label": "x"}, "label"),
    ],
)
def test_bad_label_bodies_are_400(api: httpx.Client, body: dict[str, Any], param: str) -> None:
    push(api)
    assert error(api.put("/api/prompts/faq/labels/production", json=body), 400)["param"] == param


def test_latest_cannot_be_moved_and_rollback_needs_history(api: httpx.Client) -> None:
    push(api)
    found = error(api.put("/api/prompts/faq/labels/latest", json={"version": 1}), 400)
    assert found["param"] == "label"
    api.put("/api/prompts/faq/labels/staging", json={"version": 1})
    found = error(api.post("/api/prompts/faq/labels/staging/rollback", json={}), 400)
    assert "no earlier version" in found["message"]
    assert error(api.post("/api/prompts/faq/labels/prod/rollback"), 404)["param"] == "label"


def test_split(api: httpx.Client) -> None:
    push(api)
    push(api, params={"temperature": 0.9})
    arms = [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}]
    split = api.put("/api/prompts/faq/labels/production/split", json={"arms": arms})
    assert split.status_code == 200, split.text
    assert (split.json()["action"], split.json()["version"]) == ("split", 1)
    label = api.get("/api/prompts/faq/labels/production").json()["label"]
    assert label["split"] == [{"version": 1, "weight": 90.0}, {"version": 2, "weight": 10.0}]
    bad = [
        ({"arms": []}, "arms"),
        ({"arms": [{"version": 1}]}, "arms[0]"),
        ({"arms": [{"version": 1, "weight": -1}, {"version": 2, "weight": 1}]}, "arms[0].weight"),
        ({"arms": [{"version": "1", "weight": 1}]}, "arms[0].version"),
        ({"arms": [{"version": 1, "weight": 1}]}, "arms"),
    ]
    for body, param in bad:
        answer = api.put("/api/prompts/faq/labels/production/split", json=body)
        assert error(answer, 400)["param"] == param
    unknown = [{"version": 1, "weight": 1}, {"version": 5, "weight": 1}]
    answer = api.put("/api/prompts/faq/labels/production/split", json={"arms": unknown})
    assert error(answer, 404)["param"] == "version"


def test_audit_lists_every_change_of_a_prompt(api: httpx.Client) -> None:
    push(api, author="ann")
    push(api, "other")
    api.put("/api/prompts/faq/labels/production", json={"version": 1, "actor": "bob"})
    events = api.get("/api/audit", params={"target": "faq"}).json()["data"]
    assert [(e["action"], e["target"], e["actor"]) for e in events] == [
        ("label.move", "faq@production", "bob"),
        ("prompt.create_version", "faq", "ann"),
    ]
    assert events[0]["after"] == {"version": 1, "split": [], "protected": False}
    assert len(api.get("/api/audit").json()["data"]) == 3
    assert len(api.get("/api/audit", params={"limit": 1}).json()["data"]) == 1
    assert error(api.get("/api/audit", params={"limit": "0"}), 400)["param"] == "limit"


def test_render_by_label_version_and_latest(api: httpx.Client) -> None:
    push(api)
    push(api, model="smart")
    api.put("/api/prompts/faq/labels/production", json={"version": 1})
    body = {"label": "production", "variables": {"question": "How long?", "tier": "pro"}}
    rendered = api.post("/api/prompts/faq/render", json=body)
    assert rendered.status_code == 200, rendered.text
    assert rendered.json() == {
        "name": "faq",
        "version": 1,
        "messages": [
            {"role": "system", "content": "Pro: 60 days."},
            {"role": "user", "content": "How long?"},
        ],
        "model": "fast",
        "params": {"temperature": 0.2},
    }
    latest = api.post("/api/prompts/faq/render", json={"variables": {"question": "q"}}).json()
    assert (latest["version"], latest["model"], latest["messages"][0]["content"]) == (
        2,
        "smart",
        "",
    )
    by_number = api.post(
        "/api/prompts/faq/render", json={"version": 1, "variables": {"question": "q"}}
    )
    assert by_number.json()["version"] == 1


def test_render_errors_name_the_variable(api: httpx.Client) -> None:
    push(api)
    missing = error(api.post("/api/prompts/faq/render", json={"variables": {}}), 400)
    assert "question" in missing["message"]
    bad_type = {"variables": {"question": 3}}
    assert "question" in error(api.post("/api/prompts/faq/render", json=bad_type), 400)["message"]
    not_enum = {"variables": {"question": "q", "tier": "gold"}}
    assert "tier" in error(api.post("/api/prompts/faq/render", json=not_enum), 400)["message"]
    unknown = {"variables": {"question": "q", "extra": 1}}
    assert "extra" in error(api.post("/api/prompts/faq/render", json=unknown), 400)["message"]
    both = {"version": 1, "label": "latest", "variables": {"question": "q"}}
    assert error(api.post("/api/prompts/faq/render", json=both), 400)
    no_label = {"label": "gone", "variables": {"question": "q"}}
    assert error(api.post("/api/prompts/faq/render", json=no_label), 404)["param"] == "label"


def test_sandbox_escapes_are_refused(api: httpx.Client) -> None:
    evil = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    push(api, "evil", messages=[{"role": "user", "content": evil}], variables={})
    found = error(api.post("/api/prompts/evil/render", json={"variables": {}}), 400)
    assert found["type"] == "invalid_request_error"


def test_the_routes_are_in_the_openapi_schema(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]
    assert "post" in paths["/api/prompts/{name}/versions"]
    assert "put" in paths["/api/prompts/{name}/labels/{label}/split"]
    assert paths["/api/audit"]["get"]["summary"].startswith("Audit events")
