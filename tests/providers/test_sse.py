"""SSEParser: events reassembled from arbitrary chunks, whatever the line endings."""

from __future__ import annotations

from controltower.providers.sse import SSEParser

EVENT = b'data: {"id":"chatcmpl-1","choices":[]}\n\n'


def feed_all(parser: SSEParser, *chunks: bytes) -> list[tuple[bytes | None, bytes]]:
    events = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events


def test_one_whole_event() -> None:
    assert SSEParser().feed(EVENT) == [(None, b'{"id":"chatcmpl-1","choices":[]}')]


def test_several_events_in_one_chunk() -> None:
    events = SSEParser().feed(b"data: 1\n\ndata: 2\n\ndata: [DONE]\n\n")
    assert events == [(None, b"1"), (None, b"2"), (None, b"[DONE]")]


def test_event_fed_byte_by_byte() -> None:
    parser = SSEParser()
    events = feed_all(parser, *(EVENT[i : i + 1] for i in range(len(EVENT))))
    assert events == [(None, b'{"id":"chatcmpl-1","choices":[]}')]
    assert parser.pending == b""


def test_incomplete_tail_is_kept_until_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: 1\n\ndata: 2") == [(None, b"1")]
    assert parser.pending == b"data: 2"
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [(None, b"2")]
    assert parser.pending == b""


def test_empty_chunk_yields_nothing() -> None:
    parser = SSEParser()
    assert parser.feed(b"") == []
    assert parser.pending == b""


def test_crlf_line_endings() -> None:
    events = SSEParser().feed(b"event: ping\r\ndata: a\r\n\r\ndata: b\r\n\r\n")
    assert events == [(b"ping", b"a"), (None, b"b")]


def test_crlf_split_between_chunks() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n\r") == []
    assert parser.feed(b"\n") == [(None, b"a")]
    assert feed_all(parser, b"data: b\r\n\r", b"\ndata: c\r\n", b"\r\n") == [
        (None, b"b"),
        (None, b"c"),
    ]


def test_event_name_is_kept() -> None:
    events = SSEParser().feed(b'event: content_block_delta\ndata: {"type":"x"}\n\n')
    assert events == [(b"content_block_delta", b'{"type":"x"}')]


def test_comments_and_blocks_without_data_are_skipped() -> None:
    events = SSEParser().feed(
        b": OPENROUTER PROCESSING\n\nevent: ping\n\nid: 7\nretry: 100\n\ndata: x\n\n"
    )
    assert events == [(None, b"x")]


def test_comment_lines_inside_an_event_are_ignored() -> None:
    assert SSEParser().feed(b": keep-alive\ndata: x\nid: 3\n\n") == [(None, b"x")]


def test_multi_line_data_is_joined_with_newlines() -> None:
    assert SSEParser().feed(b"data: first\ndata: second\n\n") == [(None, b"first\nsecond")]


def test_only_one_space_after_the_colon_is_removed() -> None:
    assert SSEParser().feed(b"data:x\n\ndata:  y\n\ndata:\n\n") == [
        (None, b"x"),
        (None, b" y"),
        (None, b""),
    ]
