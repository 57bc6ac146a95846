"""The read API refuses bad input with 4xx (never a 500), survives store outages with 503,
keeps keep-alive connections open after errors, and keeps payloads out of trace lists."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from controltower.domain import TraceRecord
from controltower.errors import InvalidRequest
from controltower.store import InMemoryStore, SqlTraceStore, open_store
from controltower.store.cursor import decode_cursor, encode_cursor
from controltower.store.previews import (
    PREVIEW_CHARS,
    SCAN_CHARS,
    list_preview,
    preview_from_prefix,
)
from controltower.store.serialize import json_dumps
from controltower.tracing import TraceFilter
from controltower.tracing.params import TRACE_FILTER_PARAMS, group_filter, page_size, trace_filter

from ..conftest import DEMO, RunningGateway, config, running_gateway
from ..store.records import make_record

TRACE_1 = f"{1:032x}"
BIG = "x" * 100_000
Served = tuple[RunningGateway, httpx.Client]


def records() -> list[TraceRecord]:
    big = make_record(2)
    big.trace.input = {"messages": [{"role": "user", "content": BIG}]}
    big.trace.output = BIG
    return [make_record(1), big]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """A gateway on a SQL store holding two traces (the second with 100 KB payloads)."""
    store = open_store(request.getfixturevalue(f"{request.param}_url"))
    store.write(records())
    with running_gateway(config(DEMO), store) as gw, httpx.Client(base_url=gw.url) as http:
        assert http.post("/api/prompts/p/versions", json={"text": "hi"}).status_code == 201
        yield gw, http


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def error_of(answer: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:300])
    body: dict[str, Any] = answer.json()["error"]
    assert body["message"] and body["type"]
    return body


BAD_CURSORS = [
    encode_cursor(2**63, "x"),
    b64('[-9223372036854775809,"x"]'),
    b64('[18446744073709551616,"x"]'),
    b64('[1e999,"x"]'),
    b64('[NaN,"x"]'),
    b64('[1,"a\\u0000b"]'),
    "A" * 10_000,
]
BAD_NUMBERS = [
    ("limit", "9" * 30),
    ("limit", str(2**63)),
    ("limit", "-1"),
    ("limit", "1e999"),
    ("limit", "nan"),
    ("limit", "²"),
    ("limit", "9" * 5000),
    ("min_latency", "9" * 400),
    ("min_latency", "99999999999999999999s"),
    ("min_latency", "1e999"),
    ("min_latency", "nan"),
    ("min_latency", "-5"),
    ("min_cost", "1e999"),
    ("min_cost", "nan"),
    ("min_cost", "9" * 400),
    ("since", "99999999999999999999d"),
    ("since", "9" * 400 + "d"),
    ("until", "1e999"),
    ("until", "nan"),
    ("since", str(2**63)),
    ("since", "-5d"),
]


@pytest.mark.parametrize("cursor", BAD_CURSORS)
@pytest.mark.parametrize("path", ["/api/traces", "/api/sessions", "/api/users"])
def test_a_bad_cursor_is_400(served: Served, path: str, cursor: str) -> None:
    _, http = served
    assert error_of(http.get(path, params={"cursor": cursor}), 400)["param"] == "cursor"


@pytest.mark.parametrize(("param", "value"), BAD_NUMBERS)
def test_numbers_out_of_range_are_400(served: Served, param: str, value: str) -> None:
    _, http = served
    paths = ["/api/traces"]
    if param in ("since", "until", "limit"):
        paths += ["/api/sessions", "/api/users"]
    for path in paths:
        found = error_of(http.get(path, params={param: value}), 400)
        assert found["param"] == param, (path, found)
        assert len(found["message"]) < 300  # a long value is not echoed whole
    if param in ("since", "until"):
        found = error_of(http.get("/api/prompts/p/metrics", params={param: value}), 400)
        assert found["param"] == param


@pytest.mark.parametrize("version", [str(2**63), str(2**64), "9" * 30, "-1", "1e999", "nan"])
def test_prompt_versions_out_of_range_are_4xx(served: Served, version: str) -> None:
    _, http = served
    error_of(http.get(f"/api/prompts/p/versions/{version}"), 400, 404)
    error_of(http.post("/api/prompts/p/render", json={"version": 2**63 + 5}), 400, 404)
    error_of(http.put("/api/prompts/p/labels/prod", json={"version": 2**64}), 400, 404)


NUL_PATHS = [
    ("GET", "/api/traces/a%00b"),
    ("GET", f"/api/traces/{TRACE_1}/spans/a%00"),
    ("GET", "/api/sessions/s%00"),
    ("GET", "/api/users/u%00"),
    ("DELETE", "/api/users/u%00/data"),
    ("GET", "/api/prompts/p%00"),
    ("GET", "/api/prompts/p%00/versions/1"),
    ("GET", "/api/prompts/p/labels/l%00"),
    ("GET", "/api/prompts/p%00/history"),
    ("GET", "/traces/a%00b"),
]


@pytest.mark.parametrize(("method", "path"), NUL_PATHS)
def test_nul_in_a_path_is_4xx(served: Served, method: str, path: str) -> None:
    _, http = served
    error_of(http.request(method, path), 400, 404)


def test_nul_in_any_filter_is_400(served: Served) -> None:
    _, http = served
    for param in (*TRACE_FILTER_PARAMS, "cursor", "limit"):
        found = error_of(http.get("/api/traces", params={param: "a\x00b"}), 400)
        assert found["param"] == param
    for path, param in [
        ("/api/scores", "trace_id"),
        ("/api/scores", "name"),
        ("/api/users", "user"),
    ]:
        assert error_of(http.get(path, params={param: "\x00"}), 400)["param"] == param
    assert error_of(http.get("/api/prompts/p/history", params={"label": "\x00"}), 400)
    assert error_of(http.get("/api/audit", params={"target": "p\x00"}), 400)


@pytest.mark.parametrize("field", ["trace_id", "span_id", "name", "value", "comment", "author"])
def test_nul_in_a_score_is_400(served: Served, field: str) -> None:
    _, http = served
    body = {"trace_id": TRACE_1, "name": "n", "value": "v", field: "a\x00b"}
    assert error_of(http.post("/api/scores", json=body), 400)["param"] == field


@pytest.mark.parametrize("param", ["tags", "metadata"])
def test_thousands_of_filter_terms_are_400(served: Served, param: str) -> None:
    _, http = served
    many = ",".join(f"t{i}" for i in range(3000))
    found = error_of(http.get("/api/traces", params={param: many}), 400)
    assert found["param"] == param and "at most 50" in found["message"]
    fifty = ",".join(f"t{i}" for i in range(50))
    assert http.get("/api/traces", params={param: fifty}).json()["data"] == []


def test_scores_need_their_trace_and_span(served: Served) -> None:
    _, http = served
    span_id = http.get(f"/api/traces/{TRACE_1}").json()["spans"][0]["id"]
    missing_trace = {"trace_id": "f" * 32, "name": "n", "value": 1}
    assert error_of(http.post("/api/scores", json=missing_trace), 404)["param"] == "trace_id"
    missing_span = {"trace_id": TRACE_1, "span_id": "e" * 16, "name": "n", "value": 1}
    assert error_of(http.post("/api/scores", json=missing_span), 404)["param"] == "span_id"
    for body in [
        {"trace_id": TRACE_1, "name": "n", "value": 1},
        {"trace_id": TRACE_1, "span_id": span_id, "name": "n", "value": True},
    ]:
        assert http.post("/api/scores", json=body).status_code == 201
    assert len(http.get("/api/scores", params={"trace_id": "f" * 32}).json()["data"]) == 0
    assert len(http.get("/api/scores", params={"trace_id": TRACE_1}).json()["data"]) == 2


def test_a_score_waits_for_a_trace_still_in_the_queue(served: Served) -> None:
    gw, http = served
    reply = gw.client().chat.completions.with_raw_response.create(
        model="demo", messages=[{"role": "user", "content": "hi"}]
    )
    trace_id = reply.headers["x-controltower-trace-id"]
    made = http.post("/api/scores", json={"trace_id": trace_id, "name": "thumb", "value": True})
    assert made.status_code == 201, made.text


def test_trace_lists_hold_previews_not_payloads(served: Served) -> None:
    gw, http = served
    listed = http.get("/api/traces")
    assert len(listed.content) < 10_000
    big, small = listed.json()["data"]
    assert big["output"] == "x" * 500 + "…"
    assert big["input"].startswith('{"messages":') and big["input"].endswith("…")
    assert len(big["input"]) == 501
    assert small["input"] == {"messages": [{"role": "user", "content": "hi"}]}
    assert small["output"] == "hi"
    whole = http.get(f"/api/traces/{big['id']}").json()
    assert whole["output"] == BIG and whole["input"]["messages"][0]["content"] == BIG
    # the same previews from the in-memory store (PostgreSQL prints JSONB objects its way)
    fake = InMemoryStore()
    fake.write(records())
    listed_here, listed_there = fake.list_traces()[0], gw.store.list_traces()[0]
    assert [t["output"] for t in listed_here] == [t["output"] for t in listed_there]
    if gw.store.engine.dialect.name == "sqlite":
        assert listed_here == listed_there


def test_the_web_trace_list_still_shows_big_traces(served: Served) -> None:
    _, http = served
    page = http.get("/traces", headers={"accept": "text/html"})
    assert page.status_code == 200 and "trace-2" in page.text and BIG not in page.text


def client_port(answer: httpx.Response) -> int:
    address = answer.extensions["network_stream"].get_extra_info("client_addr")
    return int(address[1])


def test_keep_alive_survives_error_answers(served: Served) -> None:
    _, http = served
    port = client_port(http.get("/health"))
    failing = [
        ("GET", "/api/traces?limit=%C2%B2", 400),  # the digit `²` broke int() before
        ("GET", "/api/traces?min_latency=" + "9" * 400, 400),
        ("GET", f"/api/traces?cursor={encode_cursor(2**63, 'x')}", 400),
        ("GET", "/api/traces/a%00b", 400),
        ("GET", "/api/nothing", 404),
        ("PUT", "/api/traces", 405),
        ("POST", "/api/scores", 413),
        ("POST", "/api/scores", 404),
    ]
    for method, path, status in failing:
        body = b"x" * 70_000 if status == 413 else b'{"trace_id":"0","name":"n","value":1}'
        answer = http.request(method, path, content=body if method == "POST" else None)
        assert answer.status_code == status, (path, answer.text[:200])
        assert answer.headers["content-type"] == "application/json"
        good = http.get("/api/traces", params={"limit": 1})
        assert good.status_code == 200
        assert client_port(answer) == client_port(good) == port, path


class BrokenStore(InMemoryStore):
    """A store whose trace list fails with a bug (not a database error)."""

    def list_traces(
        self, limit: int = 50, cursor: str | None = None, where: TraceFilter | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        raise RuntimeError("a bug")


def test_an_unexpected_error_is_a_500_in_openai_format_on_a_kept_connection() -> None:
    with running_gateway(config(DEMO), BrokenStore()) as gw, httpx.Client(base_url=gw.url) as c:
        failed = c.get("/api/traces")
        assert error_of(failed, 500)["type"] == "api_error"
        assert "a bug" not in failed.text
        good = c.get("/api/sessions")
        assert good.status_code == 200 and client_port(failed) == client_port(good)


# -- a store outage ---------------------------------------------------------------------


class Outage:
    """Makes every new connection of an engine fail the way its driver fails when the
    server is down, while `on` is set."""

    def __init__(self, store: SqlTraceStore) -> None:
        self.engine = store.engine
        self.on = threading.Event()
        sa.event.listen(self.engine, "do_connect", self._connect)

    def _connect(self, *args: Any) -> None:
        if self.on.is_set():
            raise self.engine.dialect.loaded_dbapi.OperationalError("the server is down")

    def start(self) -> None:
        self.on.set()
        self.engine.dispose()  # pooled connections would still answer


OUTAGE_READS = [
    ("GET", "/api/traces"),
    ("GET", f"/api/traces/{TRACE_1}"),
    ("GET", f"/api/traces/{TRACE_1}/spans/{2:016x}"),
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/s1"),
    ("GET", "/api/users"),
    ("GET", "/api/users/u1"),
    ("GET", "/api/scores"),
    ("DELETE", "/api/users/u1/data"),
    ("GET", "/api/prompts"),
    ("GET", "/api/prompts/p"),
    ("GET", "/api/prompts/p/versions/1"),
    ("GET", "/api/prompts/p/metrics"),
    ("GET", "/api/audit"),
]


def test_a_store_outage_is_503_with_retry_after(served: Served) -> None:
    gw, http = served
    outage = Outage(gw.store)
    port = client_port(http.get("/health"))
    outage.start()
    for method, path in OUTAGE_READS:
        answer = http.request(method, path)
        found = error_of(answer, 503)
        assert found["type"] == "api_error", path
        assert int(answer.headers["retry-after"]) >= 1, path
        assert "down" not in found["message"]  # the driver's words stay in the log
        assert client_port(answer) == port, path
    body = {"trace_id": TRACE_1, "name": "n", "value": 1}
    assert error_of(http.post("/api/scores", json=body), 503)
    page = http.get("/traces", headers={"accept": "text/html"})
    assert page.status_code == 503
    outage.on.clear()
    assert http.get(f"/api/traces/{TRACE_1}").status_code == 200


# -- the parsers of outside input, fed arbitrary text -----------------------------------

NOW = 1_700_000_000_000_000
QUERY_TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["9" * 400, "1e999", "nan", "-0", "²", "99999999999999999999d", "0x10", "1_0", " 7 "]
)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from([*TRACE_FILTER_PARAMS, "limit"]), value=QUERY_TEXT)
def test_query_parameters_parse_or_are_refused(name: str, value: str) -> None:
    try:
        trace_filter({name: value}, NOW)
        group_filter({name: value}, NOW)
        page_size({name: value})
    except InvalidRequest as exc:
        assert exc.param == name


@settings(max_examples=300, deadline=None)
@given(
    cursor=st.text(max_size=60)
    | st.binary(max_size=60).map(lambda raw: base64.urlsafe_b64encode(raw).decode())
    | st.tuples(st.integers(), st.text(max_size=5)).map(
        lambda pair: b64(f"[{pair[0]},{orjson.dumps(pair[1]).decode()}]")
    )
)
def test_cursors_decode_or_are_refused(cursor: str) -> None:
    try:
        start_us, trace_id = decode_cursor(cursor)
    except InvalidRequest as exc:
        assert exc.param == "cursor"
    else:
        assert -(2**63) <= start_us < 2**63 and "\x00" not in trace_id


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=700),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES)
def test_previews_are_short_and_alike_from_the_value_or_its_stored_text(value: Any) -> None:
    shown = list_preview(value)
    assert shown == value or (isinstance(shown, str) and len(shown) == PREVIEW_CHARS + 1)
    assert preview_from_prefix(json_dumps(value)[:SCAN_CHARS]) == shown
