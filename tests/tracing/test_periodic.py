"""The one periodic worker behind the prompt refresher, the retention sweeper and the SDK."""

from __future__ import annotations

import os
import threading
import time

import pytest

from controltower.tracing.periodic import PeriodicWorker


def wait_for(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_runs_every_period_wakes_on_request_and_stops() -> None:
    calls: list[float] = []
    worker = PeriodicWorker(lambda: calls.append(time.monotonic()), 3600, name="t-wake")
    worker.start()
    worker.start()  # a no-op
    assert worker.running and calls == []
    worker.wake()
    wait_for(lambda: len(calls) == 1)
    worker.wake()
    wait_for(lambda: len(calls) == 2)
    worker.stop()
    assert not worker.running
    worker.wake()  # stopped: nothing runs
    time.sleep(0.05)
    assert len(calls) == 2


def test_a_failing_task_is_logged_and_called_again(caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def task() -> None:
        calls.append(1)
        raise RuntimeError("store down")

    worker = PeriodicWorker(task, 0.01, name="t-fail", run_first=True)
    worker.start()
    wait_for(lambda: len(calls) >= 3)
    worker.stop()
    assert "t-fail failed; trying again" in caplog.text


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        PeriodicWorker(lambda: None, 0, name="t-zero")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_runs_again_in_a_forked_child_after_its_reset() -> None:
    resets: list[int] = []
    ran_in = threading.Event()
    worker = PeriodicWorker(
        ran_in.set, 0.01, name="t-fork", after_fork=lambda: resets.append(os.getpid())
    )
    worker.start()
    wait_for(ran_in.is_set)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread did not survive; the worker's must run
        ran_in.clear()
        ok = ran_in.wait(5) and resets == [os.getpid()] and worker.running
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    worker.stop()
    assert answer == b"1"
    assert resets == []  # the parent was not reset
