"""Identifiers and clocks in the OpenTelemetry shape (hex trace and span ids, µs time)."""

import os
import time


def new_trace_id() -> str:
    """A random 128-bit trace id as 32 lowercase hex digits (W3C trace-context form)."""
    return os.urandom(16).hex()


def new_span_id() -> str:
    """A random 64-bit span id as 16 lowercase hex digits."""
    return os.urandom(8).hex()


def now_us() -> int:
    """Wall-clock time in microseconds since the Unix epoch."""
    return time.time_ns() // 1000
