"""A stream's end taps: each runs once, in order, after the upstream is closed, whether
the stream was read to its end, failed, was closed early or never read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controltower.errors import UpstreamError
from controltower.providers import ChatStream, StreamSummary


class Upstream:
    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, False

    async def events(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.chunks:
                yield chunk
            if self.fail:
                raise UpstreamError("cut")
        finally:
            self.closed = True


def stream(upstream: Upstream, seen: list[str]) -> ChatStream:
    made = ChatStream(upstream.events(), StreamSummary())
    made.on_end(lambda error: seen.append(f"first {type(error).__name__}"))
    made.on_end(lambda error: seen.append(f"then closed={upstream.closed}"))
    return made


async def test_read_to_the_end() -> None:
    upstream, seen = Upstream([b"a", b"b"]), []
    made = stream(upstream, seen)
    assert [chunk async for chunk in made] == [b"a", b"b"]
    await made.aclose()  # after the end: nothing runs twice
    assert seen == ["first NoneType", "then closed=True"]


async def test_a_failure_reaches_the_taps_and_the_reader() -> None:
    upstream, seen = Upstream([b"a"], fail=True), []
    made = stream(upstream, seen)
    with pytest.raises(UpstreamError):
        async for _ in made:
            pass
    assert seen == ["first UpstreamError", "then closed=True"]


async def test_closed_early_or_never_read() -> None:
    upstream, seen = Upstream([b"a", b"b", b"c"]), []
    made = stream(upstream, seen)
    async for _ in made:
        break
    await made.aclose()
    assert seen == ["first GeneratorExit", "then closed=True"]
    upstream, seen = Upstream([b"a"]), []
    never = stream(upstream, seen)
    await never.aclose()
    await never.aclose()
    # the taps still run once (the balancer frees its deployment); the upstream generator
    # never started, so it had nothing to close
    assert seen == ["first NoneType", "then closed=False"]


async def test_a_tap_that_raises_does_not_stop_the_others() -> None:
    seen: list[str] = []
    made = ChatStream(Upstream([b"a"]).events(), StreamSummary())

    def broken(error: BaseException | None) -> None:
        raise RuntimeError("bug")

    made.on_end(broken)
    made.on_end(lambda error: seen.append("ran"))
    assert [chunk async for chunk in made] == [b"a"]
    assert seen == ["ran"]
