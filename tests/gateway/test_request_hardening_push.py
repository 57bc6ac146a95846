"""A pushed version's `source` must hold the content pushed with it (a pull writes it back)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from tests.conftest import DEMO, config, running_gateway

from controltower.prompts import parse_prompt
from controltower.prompts.content import content_difference, content_to_dict

SOURCE = """name: faq
# how long refunds take
model: fast
params: {temperature: 0.2}
variables:
  who: {type: string, required: true}
messages:
  - role: system
    content: Be brief.
  - role: user
    content: "Hello {{ who }}"
"""


def content_of(source: str) -> dict[str, Any]:
    """The content fields `controltower prompts push` sends along with the file text."""
    _, content = parse_prompt(source, "faq.yaml", expected_name="faq")
    return content_to_dict(content)


@pytest.fixture
def api() -> Iterator[httpx.Client]:
    with running_gateway(config(DEMO)) as gw, httpx.Client(base_url=gw.url) as client:
        yield client


def test_a_source_that_matches_its_content_is_stored(api: httpx.Client) -> None:
    body = {**content_of(SOURCE), "source": SOURCE}
    answer = api.post("/api/prompts/faq/versions", json=body)
    assert answer.status_code == 201, answer.text
    assert api.get("/api/prompts/faq/versions/1").json()["source"] == SOURCE


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"model": "slow"}, "model"),
        ({"params": {"temperature": 0.9}}, "params"),
        ({"params": {}}, "params"),
        ({"variables": {"who": {"type": "string"}}}, "variables.who"),
        (
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "x"},
                ]
            },
            "messages[1].content",
        ),
        ({"messages": [{"role": "user", "content": "Hello {{ who }}"}]}, "messages"),
    ],
)
def test_a_source_that_says_otherwise_is_a_400_naming_the_field(
    api: httpx.Client, change: dict[str, Any], param: str
) -> None:
    body = {**content_of(SOURCE), **change, "source": SOURCE}
    answer = api.post("/api/prompts/faq/versions", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert "`source` does not match" in error["message"] and param in error["message"]
    assert api.get("/api/prompts/faq").status_code == 404  # nothing was stored


def test_text_sent_with_a_messages_source_is_refused(api: httpx.Client) -> None:
    body = {"text": "Hello {{ who }}", "model": "fast", "source": SOURCE}
    body["variables"] = {"who": {"type": "string", "required": True}}
    answer = api.post("/api/prompts/faq/versions", json=body)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "messages"


def test_a_source_of_another_prompt_or_broken_yaml_is_refused(api: httpx.Client) -> None:
    other = {**content_of(SOURCE), "source": SOURCE.replace("name: faq", "name: other")}
    answer = api.post("/api/prompts/faq/versions", json=other)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "source"
    broken = {**content_of(SOURCE), "source": "name: faq\ntext: [unclosed\n"}
    answer = api.post("/api/prompts/faq/versions", json=broken)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "source"


def test_content_difference_names_the_first_field() -> None:
    _, a = parse_prompt(SOURCE, "a.yaml")
    _, b = parse_prompt(SOURCE.replace("0.2", "0.3"), "b.yaml")
    assert content_difference(a, a) is None
    assert content_difference(a, b) == "params"
    _, c = parse_prompt(SOURCE.replace("required: true", "required: false"), "c.yaml")
    assert content_difference(a, c) == "variables.who"
