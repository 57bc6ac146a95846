"""Export: retries, rejections, pressure, sampling, masking, limits, fork, and start-up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from typing import Any

import pytest

import controltower as ct

from .conftest import ScriptedIngest


@ct.observe(name="unit")
def unit(n: int) -> int:
    return n


@ct.observe(name="parent")
def parent(n: int) -> int:
    return unit(n)


def test_batches_are_gzip_json_with_the_api_key(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url + "/prefix/", api_key="ct-key-1", environment="prod", release="v2")
    parent(1)
    assert ct.flush(10)
    request = ingest.received[0]
    assert request.headers["authorization"] == "Bearer ct-key-1"
    assert request.headers["content-encoding"] == "gzip"
    assert request.headers["path"] == "/prefix/api/ingest"
    spans = ingest.events("span")
    assert sorted(s["name"] for s in spans) == ["parent", "unit"]
    child = next(s for s in spans if s["name"] == "unit")
    root = next(s for s in spans if s["name"] == "parent")
    assert child["parent_id"] == root["id"]
    assert child["trace_id"] == root["trace_id"]
    assert ingest.events("trace") == [
        {"id": root["trace_id"], "environment": "prod", "release": "v2"}
    ]


def test_a_400_is_not_retried(ingest: ScriptedIngest, caplog: pytest.LogCaptureFixture) -> None:
    ct.init(url=ingest.url)
    ingest.answer(400, error={"message": "body.batch is not an array"})
    unit(1)
    assert ct.flush(10)
    assert len(ingest.received) == 1
    assert ct.stats().failed == 1
    assert ct.stats().exported == 0
    assert "body.batch is not an array" in caplog.text


def test_a_partial_400_counts_only_the_rejected_items(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, flush_interval_s=60, batch_size=3)
    ingest.answer(400, accepted=2, rejected=1, errors=[{"index": 1, "message": "bad span"}])
    for n in range(3):
        unit(n)
    assert ct.flush(10)
    stats = ct.stats()
    assert (stats.exported, stats.failed, stats.retries) == (2, 1, 0)
    assert len(ingest.received) == 1


def test_503_and_429_are_retried_honouring_retry_after(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url)
    ingest.answer(503, {"Retry-After": "0"})
    ingest.answer(429, {"Retry-After": "0"})
    unit(7)
    assert ct.flush(10)
    assert [r.status for r in ingest.received] == [503, 429, 200]
    stats = ct.stats()
    assert (stats.exported, stats.retries, stats.failed) == (1, 2, 0)
    assert ingest.events("span")[0]["output"] == 7


def test_retries_give_up_after_max_retries(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, max_retries=1)
    ingest.answer(500, {"Retry-After": "0"})
    ingest.answer(502, {"Retry-After": "0"})
    unit(1)
    assert ct.flush(10)
    assert len(ingest.received) == 2
    assert ct.stats().failed == 1


def test_a_slow_target_drops_and_counts_while_calls_return(ingest: ScriptedIngest) -> None:
    ingest.gate.clear()  # the server holds every request until the gate opens
    ct.init(url=ingest.url, max_queue=10, batch_size=5, flush_interval_s=0.01)
    results = [unit(n) for n in range(500)]
    assert results == list(range(500))  # every call returned while the target hung
    stats = ct.stats()
    assert stats.dropped > 0
    assert stats.enqueued + stats.dropped == 500
    assert not ct.flush(0.2)  # cannot finish while the target hangs: says so
    ingest.gate.set()
    assert ct.flush(10)
    stats = ct.stats()
    assert stats.exported == stats.enqueued
    assert len(ingest.events("span")) == stats.exported


def test_a_target_that_is_down_costs_nothing_but_counts(free_port: int) -> None:
    ct.init(url=f"http://127.0.0.1:{free_port}", max_queue=20, max_retries=0)
    for n in range(300):
        assert unit(n) == n
    ct.shutdown(10)
    stats = ct.stats()
    assert stats.exported == 0
    assert stats.failed + stats.dropped == 300
    assert stats.dropped > 0
    assert unit(1) == 1  # after shutdown: still works, not recorded
    assert ct.stats() == stats


def test_many_threads_at_once_lose_nothing(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url)

    def work() -> None:
        for n in range(500):
            parent(n)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ct.flush(30)
    spans = ingest.events("span")
    assert len(spans) == len({s["id"] for s in spans}) == 8000
    assert ct.stats().exported == 8000
    assert len({s["trace_id"] for s in spans}) == 4000


def test_sampling_keeps_or_drops_whole_traces(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, sample_rate=0.5)
    for n in range(200):
        parent(n)
    assert ct.flush(10)
    by_trace: dict[str, list[str]] = {}
    for span in ingest.events("span"):
        by_trace.setdefault(span["trace_id"], []).append(span["name"])
    assert 0 < len(by_trace) < 200
    assert all(sorted(names) == ["parent", "unit"] for names in by_trace.values())


def test_an_unsampled_trace_still_has_ids_but_sends_nothing(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, sample_rate=0.0)

    @ct.observe(name="quiet")
    def quiet() -> tuple[str | None, str | None]:
        with ct.span("inner") as s:
            s.update(output="ignored")
        ct.update_trace(user_id="u")
        return ct.get_current_trace_id(), ct.get_current_span_id()

    trace_id, span_id = quiet()
    assert trace_id is not None and span_id is not None
    assert ct.flush(10)
    assert ingest.received == []


def test_disabled_records_nothing(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, enabled=False)
    assert parent(3) == 3
    with ct.span("off") as s:
        s.update(output=1)
        assert ct.get_current_trace_id() is None
    assert ct.flush(1)
    assert ingest.received == []


def test_the_mask_runs_before_anything_leaves(ingest: ScriptedIngest) -> None:
    def mask(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("4111-1111", "****")
        if isinstance(value, dict):
            return {k: mask(v) for k, v in value.items()}
        return value

    ct.init(url=ingest.url, mask=mask)

    @ct.observe(name="pay")
    def pay(card: str) -> str:
        ct.update_current_span(metadata={"note": "card 4111-1111"})
        ct.update_trace(metadata={"card": "4111-1111"}, input="card 4111-1111")
        return f"charged {card}"

    original = {"card": "4111-1111"}
    pay(original["card"])
    assert ct.flush(10)
    span = ingest.events("span")[0]
    assert span["input"] == {"card": "****"}
    assert span["output"] == "charged ****"
    assert span["attributes"] == {"note": "card ****"}
    trace = ingest.events("trace")[0]
    assert trace["metadata"] == {"card": "****"}
    assert trace["input"] == "card ****"
    assert "4111" not in str([r.body for r in ingest.received])
    assert original == {"card": "4111-1111"}  # the application's values are untouched


def test_a_failing_mask_withholds_the_value(ingest: ScriptedIngest) -> None:
    def mask(value: Any) -> Any:
        raise RuntimeError("mask bug")

    ct.init(url=ingest.url, mask=mask)
    with ct.span("masked", input="secret") as s:
        s.update(output="secret", metadata={"k": "secret"})
        ct.update_trace(metadata={"k": "secret"})
    assert ct.flush(10)
    withheld = "<masking failed: value withheld>"
    span = ingest.events("span")[0]
    assert span["input"] == span["output"] == withheld
    assert span["attributes"] == {"metadata": withheld}
    assert ingest.events("trace")[0]["metadata"] == {"metadata": withheld}


def test_large_values_are_cut_and_long_generators_bounded(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, max_field_bytes=4500)

    @ct.observe(name="big")
    def big() -> str:
        return "x" * 6000

    @ct.observe(name="many")
    def many() -> Any:
        yield from range(1500)

    big()
    assert sum(1 for _ in many()) == 1500
    assert ct.flush(10)
    spans = {s["name"]: s for s in ingest.events("span")}
    assert spans["big"]["output"].startswith('"xxx')
    assert "truncated: 6002 bytes of JSON" in spans["big"]["output"]
    assert len(spans["many"]["output"]) == 1000
    assert spans["many"]["attributes"]["controltower.output_items_dropped"] == 500


@pytest.mark.parametrize(
    "options",
    [{"sample_rate": 1.5}, {"batch_size": 0}, {"max_queue": 0}, {"flush_interval_s": 0}],
)
def test_init_refuses_settings_that_cannot_work(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ct.init(url="http://127.0.0.1:9", **options)


def test_invalid_environment_turns_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLTOWER_SAMPLE_RATE", "lots")
    assert unit(3) == 3  # configured on first use: logged, and tracing is off
    assert ct.stats().enqueued == 0


def test_first_use_initialises_from_the_environment(
    ingest: ScriptedIngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONTROLTOWER_URL", ingest.url)
    monkeypatch.setenv("CONTROLTOWER_API_KEY", "env-key")
    unit(1)  # no init(): configured on first use
    assert ct.flush(10)
    assert ingest.received[0].headers["authorization"] == "Bearer env-key"


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_exports_its_own_spans(ingest: ScriptedIngest) -> None:
    ct.init(url=ingest.url, flush_interval_s=60, batch_size=1000)
    unit(1)  # queued in the parent, not exported before the fork
    pid = os.fork()
    if pid == 0:  # the child: its queue starts empty, its thread is new
        code = 1
        try:
            before = ct.stats()
            unit(2)
            ok = ct.flush(10)
            after = ct.stats()
            code = 0 if ok and before.enqueued == 0 and after.exported == 1 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [s["output"] for s in ingest.events("span")] == [2]
    assert ct.flush(10)
    assert sorted(s["output"] for s in ingest.events("span")) == [1, 2]


def test_importing_controltower_stays_cheap() -> None:
    code = (
        "import sys, controltower as ct\n"
        "heavy = ('sqlalchemy', 'starlette', 'uvicorn', 'orjson', 'http.client', 'openai')\n"
        "print([m for m in heavy if m in sys.modules])\n"
        "ct.init(url='http://127.0.0.1:9', enabled=False)\n"
        "ct.observe()(len)('abc')\n"
        "print([m for m in ('sqlalchemy', 'starlette', 'uvicorn') if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    assert out == ["[]", "[]"]


@pytest.fixture
def free_port() -> int:
    """A localhost port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
