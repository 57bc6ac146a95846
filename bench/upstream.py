"""Very fast fake OpenAI upstream for the gateway benchmarks.

Run as its own process::

    python bench/upstream.py --port 18001 [--workers 1]

A raw asyncio ``Protocol`` HTTP/1.1 keep-alive server (uvloop when importable).
``POST /v1/chat/completions`` answers at once with a fixed chat.completion
(with usage); when the body has ``"stream": true`` it answers with a
22-event SSE stream (role chunk, 19 content chunks, finish chunk, usage chunk
when ``stream_options.include_usage``) and ``data: [DONE]``, written in one
go with ``Transfer-Encoding: chunked``. ``GET /v1/models`` and ``GET /health``
answer 200; anything else 404. Request bodies must carry Content-Length
(pipelined and partial reads are handled).

For the eval benchmarks, two options make it a model with a latency::

    python bench/upstream.py --port 18001 --latency-ms 50 \
        --reply 'judge-1={"score": 5}' --reply '*=Refunds are accepted within 30 days.'

``--latency-ms`` delays every chat answer (answers on one connection keep their
order); ``--reply MODEL=TEXT`` answers non-streaming requests for that model (``*``:
any other model) with TEXT as the message content. ``GET /stats`` returns what this
worker process answered since its start or the last ``POST /stats/reset``: chat
calls, calls per model (counted when ``--reply`` is given), the most calls in flight
at once, and the wall-clock times of the first request and the last answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from typing import Any, cast

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
CREATED = 1732300000
MODEL = "gpt-4o-mini-2024-07-18"
TOKENS = [
    "Hello", "!", " I", " am", " a", " fake", " upstream", " answering", " as",
    " fast", " as", " it", " can", " for", " the", " gateway", " benchmark", " run", ".",
]
CONTENT = "".join(TOKENS)
USAGE: dict[str, Any] = {
    "prompt_tokens": 19,
    "completion_tokens": len(TOKENS),
    "total_tokens": 19 + len(TOKENS),
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(status: str, ctype: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {len(body)}\r\nx-request-id: req_bench\r\n\r\n"
    )
    return head.encode() + body


def build_completion(content: str = CONTENT) -> bytes:
    body = {
        "id": "chatcmpl-bench0000000000000000000001",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }
    return _response("200 OK", "application/json", _dumps(body))


def _chunk(delta: dict[str, Any], finish: str | None, usage: bool = False) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "chatcmpl-bench0000000000000000000002",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": MODEL,
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    }
    if usage:
        base.update(choices=[], usage=USAGE)
    else:
        base["choices"] = [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        ]
    return base


def build_stream(include_usage: bool) -> bytes:
    events = [_chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    events += [_chunk({"content": tok}, None) for tok in TOKENS]
    events.append(_chunk({}, "stop"))
    if include_usage:
        events.append(_chunk({}, None, usage=True))
    payloads = [b"data: " + _dumps(e) + b"\n\n" for e in events] + [b"data: [DONE]\n\n"]
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in payloads)
    return head + chunks + b"0\r\n\r\n"


COMPLETION = build_completion()
STREAM_USAGE = build_stream(True)
STREAM_PLAIN = build_stream(False)
MODELS = _response(
    "200 OK",
    "application/json",
    _dumps({"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model",
                                        "created": CREATED, "owned_by": "bench"}]}),
)
HEALTH = _response("200 OK", "application/json", b'{"status":"ok"}')
NOT_FOUND = _response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')
BAD_REQUEST = _response("400 Bad Request", "application/json", b'{"error":{"message":"bad"}}')


class Stats:
    """What this worker answered since it started or was last reset (``GET /stats``)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.chat = 0
        self.by_model: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_request_at: float | None = None
        self.last_answer_at: float | None = None

    def received(self) -> None:
        self.chat += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.first_request_at is None:
            self.first_request_at = time.time()

    def answered(self) -> None:
        self.in_flight -= 1
        self.last_answer_at = time.time()

    def answer(self) -> bytes:
        body = {
            "chat": self.chat,
            "by_model": self.by_model,
            "max_in_flight": self.max_in_flight,
            "first_request_at": self.first_request_at,
            "last_answer_at": self.last_answer_at,
        }
        return _response("200 OK", "application/json", _dumps(body))


class Behaviour:
    """The options that make the upstream a model: a latency and replies by model."""

    def __init__(self) -> None:
        self.configure(0.0, {})

    def configure(self, latency_ms: float, replies: dict[str, str]) -> None:
        self.latency_s = latency_ms / 1000
        self.replies = {model: build_completion(text) for model, text in replies.items()}


STATS = Stats()
BEHAVIOUR = Behaviour()


def reply_by_model(body: bytes) -> bytes | None:
    """The ``--reply`` answer for a non-streaming request's model (and count the model)."""
    try:
        req = json.loads(body)
    except ValueError:
        return None
    model = str(req.get("model"))
    STATS.by_model[model] = STATS.by_model.get(model, 0) + 1
    if req.get("stream") is True:
        return None
    replies = BEHAVIOUR.replies
    return replies.get(model) or replies.get("*")


def chat_answer(body: bytes) -> bytes:
    """Pick the prebuilt answer for a chat request body (JSON parsed only if needed)."""
    if BEHAVIOUR.replies:
        answer = reply_by_model(body)
        if answer is not None:
            return answer
    if b'"stream"' not in body:
        return COMPLETION
    try:
        req = json.loads(body)
    except ValueError:
        return BAD_REQUEST
    if req.get("stream") is not True:
        return COMPLETION
    opts = req.get("stream_options") or {}
    return STREAM_USAGE if opts.get("include_usage") else STREAM_PLAIN


def route(method: bytes, path: bytes, body: bytes) -> bytes:
    path = path.split(b"?", 1)[0]
    if method == b"POST" and path.endswith(b"/chat/completions"):
        return chat_answer(body)
    if method == b"GET" and path.endswith(b"/models"):
        return MODELS
    if method == b"GET" and path == b"/health":
        return HEALTH
    if method == b"GET" and path == b"/stats":
        return STATS.answer()
    if method == b"POST" and path == b"/stats/reset":
        STATS.reset()
        return STATS.answer()
    return NOT_FOUND


class Head:
    """The parsed request line and the headers the server cares about."""

    __slots__ = ("body_len", "close", "method", "path")

    def __init__(self, raw: bytes) -> None:
        lines = raw.split(b"\r\n")
        self.method, self.path, version = lines[0].split(b" ", 2)
        self.body_len = 0
        self.close = version == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self.body_len = int(value)
            elif name == b"connection":
                value = value.strip().lower()
                self.close = value == b"close" or (self.close and value != b"keep-alive")
            elif name == b"transfer-encoding":
                raise ValueError("chunked request bodies are not supported")
        if not 0 <= self.body_len <= MAX_BODY:
            raise ValueError("bad content-length")


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive server protocol; handles pipelined and partial requests."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.head: Head | None = None
        self.transport: asyncio.Transport | None = None
        self.delayed: deque[tuple[bytes, bool]] = deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            while self._handle_one():
                pass
        except (ValueError, IndexError):
            self._fail()

    def _handle_one(self) -> bool:
        assert self.transport is not None
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    raise ValueError("head too large")
                return False
            self.head = Head(bytes(self.buf[:end]))
            del self.buf[: end + 4]
        head = self.head
        if len(self.buf) < head.body_len:
            return False
        body = bytes(self.buf[: head.body_len])
        del self.buf[: head.body_len]
        self.head = None
        chat = head.method == b"POST" and head.path.endswith(b"/chat/completions")
        if chat:
            STATS.received()
        answer = route(head.method, head.path, body)
        if chat and BEHAVIOUR.latency_s > 0:
            self.delayed.append((answer, head.close))
            asyncio.get_running_loop().call_later(BEHAVIOUR.latency_s, self._answer_delayed)
            return not head.close
        if chat:
            STATS.answered()
        self.transport.write(answer)
        if head.close:
            self.transport.close()
            return False
        return True

    def _answer_delayed(self) -> None:
        """Each timer sends the oldest delayed answer, so answers keep their order."""
        answer, close = self.delayed.popleft()
        STATS.answered()
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(answer)
        if close:
            self.transport.close()

    def _fail(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(BAD_REQUEST)
            self.transport.close()


def make_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


async def serve(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(HttpProtocol, sock=sock, backlog=1024)
    async with server:
        await stop.wait()


def run_worker(
    host: str,
    port: int,
    reuse_port: bool,
    latency_ms: float = 0.0,
    replies: dict[str, str] | None = None,
) -> None:
    BEHAVIOUR.configure(latency_ms, replies or {})
    sock = make_socket(host, port, reuse_port)
    try:
        import uvloop

        uvloop.run(serve(sock))
    except ImportError:
        asyncio.run(serve(sock))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of chat answers")
    parser.add_argument(
        "--reply",
        action="append",
        default=[],
        metavar="MODEL=TEXT",
        help="message content for MODEL (`*`: any other model); repeatable",
    )
    args = parser.parse_args()
    replies = dict(item.split("=", 1) for item in args.reply)
    reuse = args.workers > 1
    worker_args = (args.host, args.port, reuse, args.latency_ms, replies)
    children = [
        multiprocessing.Process(target=run_worker, args=worker_args)
        for _ in range(args.workers - 1)
    ]
    for child in children:
        child.start()
    try:
        run_worker(*worker_args)
    finally:
        for child in children:
            if child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
            child.join(5)


if __name__ == "__main__":
    main()
