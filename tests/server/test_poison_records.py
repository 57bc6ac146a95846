"""No record, however malformed, stops trace writing: poison sent through the gateway,
`/api/ingest` and OTLP to a real server on SQLite and PostgreSQL, then a well-formed trace
that must be stored."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controltower.store import open_store
from tests.conftest import DEMO, RunningGateway, config, running_gateway
from tests.ingest.otlp_build import START_NS, json_attributes

START_US = START_NS // 1000
_ids = itertools.count(1)


@pytest.fixture(params=["sqlite", "postgres"])
def gateway(request: pytest.FixtureRequest) -> Iterator[RunningGateway]:
    store = open_store(request.getfixturevalue(f"{request.param}_url"))
    try:
        with running_gateway(config(DEMO), store) as gw:
            yield gw
    finally:
        store.close()


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def dumps(body: Any) -> bytes:
    # the stdlib keeps what orjson refuses to write: huge integers, NaN, lone surrogates
    return json.dumps(body, ensure_ascii=True).encode()


def post_json(http: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/json", **headers}
    response = http.post(path, content=dumps(body), headers=sent)
    assert response.status_code < 500, response.text
    return response


def assert_writing_goes_on(gw: RunningGateway, http: httpx.Client) -> None:
    """A well-formed trace sent now is stored, whatever came before."""
    trace_id = f"{next(_ids):032x}"
    event = {
        "type": "span",
        "body": {"id": trace_id[16:], "trace_id": trace_id, "name": "ok", "start_us": START_US},
    }
    answer = post_json(http, "/api/ingest", {"batch": [event]})
    assert answer.status_code in (200, 207), answer.text
    assert gw.app.writer.flush(20)
    found = http.get(f"/api/traces/{trace_id}")
    assert found.status_code == 200, f"a good trace after the poison was not stored: {found.text}"
    stats = gw.app.writer.stats
    assert stats.dropped == 0


def chat(http: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    base = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
    return post_json(http, "/v1/chat/completions", {**base, **body}, **headers)


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = {"a": value}
    return value


def ingest_span(**body: Any) -> list[dict[str, Any]]:
    trace_id = f"{next(_ids):032x}"
    base = {"id": trace_id[16:], "trace_id": trace_id, "name": "s", "start_us": START_US}
    return [{"type": "span", "body": {**base, **body}}]


def batch(**body: Any) -> dict[str, Any]:
    return {"batch": ingest_span(**body)}


def otlp(span: dict[str, Any], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    trace_id = f"{next(_ids):032x}"
    base = {
        "traceId": trace_id,
        "spanId": trace_id[16:],
        "name": "s",
        "startTimeUnixNano": str(START_NS),
        "endTimeUnixNano": str(START_NS + 1000),
    }
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": json_attributes(resource or {})},
                "scopeSpans": [{"scope": {"name": "t"}, "spans": [{**base, **span}]}],
            }
        ]
    }


# -- the records that used to stop trace writing -----------------------------------------------


def test_nul_anywhere_is_stored_and_writing_goes_on(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    answer = chat(
        http,
        {"messages": [{"role": "user", "content": "a\x00b"}], "user": "u\x00"},
        **{"x-controltower-metadata": '{"k": "v\\u0000"}'},
    )
    assert answer.status_code == 200
    trace = gateway.trace(answer.headers["x-controltower-trace-id"])
    assert trace["user_id"] == "u\ufffd" and trace["metadata"] == {"k": "v\ufffd"}
    post_json(http, "/api/ingest", batch(name="n\x00", input={"m": "\x00"}, model="\x00"))
    post_json(http, "/v1/traces", otlp({"attributes": json_attributes({"k": "v\x00"})}))
    assert_writing_goes_on(gateway, http)
    assert gateway.app.writer.stats.normalized >= 3


def test_deep_nesting_is_cut_and_writing_goes_on(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    header = json.dumps(deep(300))
    answer = chat(http, {}, **{"x-controltower-metadata": header})
    assert answer.status_code in (200, 400), answer.text
    post_json(http, "/api/ingest", batch(input=deep(600), attributes={"d": deep(400)}))
    post_json(http, "/v1/traces", otlp({"attributes": json_attributes({"d": deep(200)})}))
    assert_writing_goes_on(gateway, http)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"start_us": 2**63}, "`body.start_us` is required and must be a whole number"),
        ({"usage": {"input_tokens": 2**63}}, "`body.usage.input_tokens` must be"),
        ({"ttft_us": 2**64}, "`body.ttft_us` must be"),
        ({"prompt_version": 10**30}, "`body.prompt_version` must be"),
        ({"cost": -1}, "`body.cost` must be a number from 0 to 1e+09"),
        ({"cost": float("nan")}, None),  # NaN is not JSON: the whole body is refused
        ({"start_us": 10**18 * 9}, "is more than a day in the future"),
    ],
)
def test_out_of_range_numbers_are_refused_per_span_at_ingest(
    gateway: RunningGateway, http: httpx.Client, body: dict[str, Any], reason: str | None
) -> None:
    answer = post_json(http, "/api/ingest", batch(**body))
    assert answer.status_code in (207, 400), answer.text
    if reason is not None:
        assert reason in answer.text
    assert_writing_goes_on(gateway, http)


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        ({"startTimeUnixNano": "1e30"}, "startTimeUnixNano must be a whole number"),
        ({"startTimeUnixNano": 1e30}, "startTimeUnixNano must be a whole number"),
        ({"startTimeUnixNano": str(2**64)}, "startTimeUnixNano must be a whole number"),
        ({"startTimeUnixNano": str(9 * 10**21)}, "startTimeUnixNano must be a whole number"),
        ({"startTimeUnixNano": str(2**63)}, "more than a day in the future"),
    ],
)
def test_out_of_range_otlp_times_are_refused_per_span(
    gateway: RunningGateway, http: httpx.Client, span: dict[str, Any], reason: str
) -> None:
    answer = post_json(http, "/v1/traces", otlp(span))
    assert answer.status_code in (200, 400), answer.text
    assert reason in answer.text
    assert_writing_goes_on(gateway, http)


def test_otlp_token_counts_and_costs_out_of_range_are_dropped(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.usage.input_tokens": "1e300",
        "gen_ai.usage.output_tokens": 2**63 - 1,
        "gen_ai.usage.cost": -5.0,
    }
    body = otlp({"attributes": json_attributes(attributes)})
    trace_id = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    assert post_json(http, "/v1/traces", body).status_code == 200
    assert gateway.app.writer.flush(20)
    [span] = http.get(f"/api/traces/{trace_id}").json()["spans"]
    assert span["usage"]["input_tokens"] is None
    assert span["cost"] is None or span["cost"] >= 0
    assert_writing_goes_on(gateway, http)


def test_a_record_the_store_refuses_is_set_aside_with_its_error(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    from controltower.domain import Span, Trace, TraceRecord

    refuse_traces_named_bad(gateway.store.engine)
    trace_id = f"{next(_ids):032x}"
    bad = TraceRecord(
        Trace(id=trace_id, name="bad", start_us=START_US),
        [Span(id="ab" * 8, trace_id=trace_id, name="s", kind="span", start_us=START_US)],
    )
    gateway.app.writer.enqueue(bad)
    assert_writing_goes_on(gateway, http)
    [letter] = gateway.store.dead_letters()
    assert letter.trace_id == trace_id and "refused by the test" in letter.error, letter.error
    assert json.loads(letter.payload)["trace"]["name"] == "bad"
    assert gateway.app.writer.stats.dead_lettered == 1
    metrics = http.get("/metrics").text
    assert "controltower_traces_dead_lettered_total 1" in metrics


def refuse_traces_named_bad(engine: Any) -> None:
    """A trigger that makes the database itself refuse a trace named `bad`."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_bad BEFORE INSERT ON traces WHEN NEW.name = 'bad' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
            return
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.name = 'bad' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_bad BEFORE INSERT ON traces "
            "FOR EACH ROW EXECUTE FUNCTION refuse_bad()"
        )


# -- anything at all in any field ------------------------------------------------------------

TEXT = st.text(alphabet=st.characters(codec=None), max_size=20) | st.sampled_from(
    ["\x00", "a\x00b", "\ud800", "\udfff x", "", " " * 3]
)
NUMBER = (
    st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 2**64, 10**30])
    | st.floats(allow_nan=False, allow_infinity=False)
)
LEAF = st.none() | st.booleans() | NUMBER | TEXT
VALUE = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=12,
) | st.integers(min_value=1, max_value=300).map(deep)

SPAN_FIELDS = [
    "name",
    "kind",
    "start_us",
    "end_us",
    "parent_id",
    "input",
    "output",
    "model",
    "provider",
    "parameters",
    "usage",
    "cost",
    "ttft_us",
    "status",
    "error",
    "prompt_name",
    "prompt_version",
    "attributes",
]
TRACE_FIELDS = ["name", "user_id", "session_id", "tags", "metadata", "input", "output"]
OTLP_ATTRIBUTES = [
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.cost",
    "gen_ai.prompt",
    "gen_ai.completion",
    "user.id",
    "session.id",
    "langfuse.trace.metadata",
    "anything",
]
FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(SPAN_FIELDS), VALUE, min_size=1, max_size=4))
def test_anything_in_an_ingest_span_leaves_writing_going(
    gateway: RunningGateway, http: httpx.Client, fields: dict[str, Any]
) -> None:
    post_json(http, "/api/ingest", batch(**fields))
    assert_writing_goes_on(gateway, http)


@FUZZ
@given(fields=st.dictionaries(st.sampled_from(TRACE_FIELDS), VALUE, min_size=1, max_size=4))
def test_anything_in_an_ingest_trace_leaves_writing_going(
    gateway: RunningGateway, http: httpx.Client, fields: dict[str, Any]
) -> None:
    [event] = ingest_span()
    update = {"type": "trace", "body": {"id": event["body"]["trace_id"], **fields}}
    post_json(http, "/api/ingest", {"batch": [event, update]})
    assert_writing_goes_on(gateway, http)


@FUZZ
@given(
    attributes=st.dictionaries(st.sampled_from(OTLP_ATTRIBUTES), VALUE, min_size=1, max_size=4),
    start=st.none() | NUMBER.map(str) | NUMBER,
    name=TEXT,
    event=st.dictionaries(TEXT, VALUE, max_size=3),
    status=TEXT,
)
def test_anything_in_an_otlp_span_leaves_writing_going(
    gateway: RunningGateway,
    http: httpx.Client,
    attributes: dict[str, Any],
    start: Any,
    name: str,
    event: dict[str, Any],
    status: str,
) -> None:
    span: dict[str, Any] = {
        "name": name or "s",
        "attributes": json_attributes(attributes),
        "events": [
            {"name": name, "timeUnixNano": str(START_NS), "attributes": json_attributes(event)}
        ],
        "status": {"code": 2, "message": status},
    }
    if start is not None:
        span["startTimeUnixNano"] = start
    post_json(http, "/v1/traces", otlp(span, resource={"service.name": "fuzz", **attributes}))
    assert_writing_goes_on(gateway, http)


def header_text(text: str) -> str:
    # a header carries no NUL or line break: what HTTP allows of the text
    return ascii(text)[1:-1].strip()


@FUZZ
@given(
    content=VALUE,
    user=TEXT,
    metadata=VALUE,
    tags=st.lists(TEXT, max_size=3),
    session=TEXT,
    role=st.sampled_from(["user", "system", "assistant", "tool"]) | TEXT,
    extra=st.dictionaries(TEXT, VALUE, max_size=3),
)
def test_anything_through_the_gateway_leaves_writing_going(
    gateway: RunningGateway,
    http: httpx.Client,
    content: Any,
    user: str,
    metadata: Any,
    tags: list[str],
    session: str,
    role: str,
    extra: dict[str, Any],
) -> None:
    headers = {
        "x-controltower-metadata": json.dumps(metadata),
        "x-controltower-tags": ",".join(header_text(t) for t in tags).strip(),
        "x-controltower-user": header_text(user),
        "x-controltower-session": header_text(session),
    }
    extra = {k: v for k, v in extra.items() if k not in ("model", "messages", "stream")}
    body = {**extra, "messages": [{"role": role, "content": content}], "user": user}
    chat(http, body, **headers)
    assert_writing_goes_on(gateway, http)


@FUZZ
@given(value=VALUE, user=TEXT)
def test_anything_as_embedding_input_leaves_writing_going(
    gateway: RunningGateway, http: httpx.Client, value: Any, user: str
) -> None:
    body = {"model": "demo", "input": value, "user": user}
    post_json(http, "/v1/embeddings", body)
    assert_writing_goes_on(gateway, http)


# -- what a review found: values within the edge's limits that still broke something --------


@pytest.mark.parametrize("levels", [70, 200, 252])
def test_nesting_under_the_json_limit_is_cut_so_every_read_answers(
    gateway: RunningGateway, http: httpx.Client, levels: int
) -> None:
    header = '{"x":' + '{"a":' * levels + "1" + "}" * (levels + 1)
    answer = chat(http, {}, **{"x-controltower-metadata": header})
    assert answer.status_code == 200, answer.text
    trace_id = answer.headers["x-controltower-trace-id"]
    gateway.trace(trace_id)
    for path in ("/api/traces", f"/api/traces/{trace_id}", f"/traces/{trace_id}", "/traces"):
        assert http.get(path).status_code == 200, path
    assert_writing_goes_on(gateway, http)


def test_token_counts_past_any_model_are_refused_so_totals_never_overflow(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    too_many = {"input_tokens": 2**63 - 1, "output_tokens": 1}
    answer = post_json(http, "/api/ingest", batch(kind="generation", usage=too_many))
    assert answer.status_code == 400
    assert "`body.usage.input_tokens` must be a whole number from 0 to 1,000,000,000,000" in (
        answer.text
    )
    # the most a call may report, twice in one session: every total still adds up
    for _ in range(2):
        most = {"input_tokens": 10**12, "output_tokens": 10**12}
        [event] = ingest_span(kind="generation", usage=most)
        update = {"type": "trace", "body": {"id": event["body"]["trace_id"], "session_id": "s1"}}
        assert post_json(http, "/api/ingest", {"batch": [event, update]}).status_code == 200
    # OTLP keeps the span and drops a count it cannot believe
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 2**63 - 1}
    body = otlp({"attributes": json_attributes(attributes)})
    trace_id = body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"]
    assert post_json(http, "/v1/traces", body).status_code == 200
    assert_writing_goes_on(gateway, http)
    assert http.get(f"/api/traces/{trace_id}").json()["usage"]["input_tokens"] is None
    for path in ("/api/sessions", "/api/sessions/s1", "/api/users", "/sessions"):
        assert http.get(path).status_code == 200, path
    assert gateway.store.dead_letters() == []


def test_an_ingest_score_with_nul_is_refused_alone(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    [event] = ingest_span()
    trace_id = event["body"]["trace_id"]
    bad = {"type": "score", "body": {"trace_id": trace_id, "name": "n\x00", "value": 1}}
    good = {"type": "score", "body": {"trace_id": trace_id, "name": "ok", "value": 1}}
    answer = post_json(http, "/api/ingest", {"batch": [event, bad, good]})
    assert answer.status_code == 400, answer.text
    assert answer.json()["errors"] == [
        {"index": 1, "message": "`body.name` must not contain a NUL character"}
    ]
    assert_writing_goes_on(gateway, http)
    found = http.get("/api/scores", params={"trace_id": trace_id}).json()["data"]
    names = [s["name"] for s in found]
    assert names == ["ok"]


@pytest.mark.parametrize(
    ("span", "reason"),
    [
        ({"status": {"code": "²"}}, "status.code must be 0, 1 or 2"),
        ({"endTimeUnixNano": str(2**64 - 1)}, "endTimeUnixNano"),
    ],
)
def test_otlp_status_codes_and_end_times_are_checked(
    gateway: RunningGateway, http: httpx.Client, span: dict[str, Any], reason: str
) -> None:
    answer = post_json(http, "/v1/traces", otlp(span))
    assert answer.status_code == 200, answer.text
    assert reason in answer.json()["partialSuccess"]["errorMessage"]
    assert_writing_goes_on(gateway, http)


def test_a_bare_number_as_input_or_output_reads_back(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    [event] = ingest_span(input=2.5, output=1)
    assert post_json(http, "/api/ingest", {"batch": [event]}).status_code == 200
    assert_writing_goes_on(gateway, http)
    trace_id, span_id = event["body"]["trace_id"], event["body"]["id"]
    span = http.get(f"/api/traces/{trace_id}/spans/{span_id}").json()
    assert (span["input"], span["output"]) == (2.5, 1)
    assert http.get(f"/traces/{trace_id}").status_code == 200


def test_the_largest_costs_still_add_up_in_sessions_and_users(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    for _ in range(2):
        [event] = ingest_span(kind="generation", cost=1e9)
        trace_id = event["body"]["trace_id"]
        update = {"type": "trace", "body": {"id": trace_id, "session_id": "s", "user_id": "u"}}
        assert post_json(http, "/api/ingest", {"batch": [event, update]}).status_code == 200
    assert_writing_goes_on(gateway, http)
    for path in ("/api/sessions", "/api/sessions/s", "/api/users", "/api/users/u", "/users"):
        assert http.get(path).status_code == 200, path
    assert http.get("/api/sessions/s").json()["cost"] == 2e9


def test_rows_nested_deeper_than_the_writer_keeps_are_cut_on_read(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    from controltower.domain import Trace, TraceRecord

    # as a database written before the writer cut such values may hold them
    trace_id = f"{next(_ids):032x}"
    deep_trace = Trace(id=trace_id, name="old", start_us=START_US, metadata=deep(252))
    gateway.store.write([TraceRecord(deep_trace, [])])
    for path in ("/api/traces", f"/api/traces/{trace_id}", f"/traces/{trace_id}", "/traces"):
        assert http.get(path).status_code == 200, path


def test_a_prompt_nested_past_what_can_be_stored_is_a_400(http: httpx.Client) -> None:
    body = {"text": "hi", "model": "demo", "params": {"extra": deep(300)}}
    answer = post_json(http, "/api/prompts/deep/versions", body)
    assert answer.status_code == 400, answer.text


def test_an_otlp_protobuf_status_code_out_of_range_is_refused(
    gateway: RunningGateway, http: httpx.Client
) -> None:
    from tests.ingest.otlp_build import pb_request, pb_span

    body = pb_request([pb_span("s", status=(7, "odd"))])
    answer = http.post(
        "/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert answer.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    parsed = ExportTraceServiceResponse.FromString(answer.content)
    assert parsed.partial_success.rejected_spans == 1
    assert "status.code must be 0, 1 or 2, got 7" in parsed.partial_success.error_message
    assert_writing_goes_on(gateway, http)
