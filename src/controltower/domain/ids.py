"""Identifiers and clocks in the OpenTelemetry shape (hex trace and span ids, µs time)."""

import random
import time

# Ids must be unique, not secret: the Mersenne Twister (as OpenTelemetry SDKs use) costs a
# fraction of os.urandom's system call on every request; CPython reseeds it after fork.


def new_trace_id() -> str:
    """A random 128-bit trace id as 32 lowercase hex digits (W3C trace-context form)."""
    return f"{random.getrandbits(128):032x}"


def new_span_id() -> str:
    """A random 64-bit span id as 16 lowercase hex digits."""
    return f"{random.getrandbits(64):016x}"


def now_us() -> int:
    """Wall-clock time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000
