"""Process helpers for the benchmarks: spawn, stop by PID, readiness, RSS, tiny HTTP."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from _env import PYTHON, VENV_BIN


@dataclass
class Proc:
    """A process the benchmark started (in its own session, so its PGID is its PID)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    spawned_at: float = field(default_factory=time.perf_counter)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(
    name: str, argv: list[str], log_dir: Path, env: dict[str, str | None] | None = None
) -> Proc:
    """Start ``argv`` in a new session; ``env`` entries set to None are removed."""
    log_path = log_dir / f"{name}.log"
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    started = time.perf_counter()
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
        )
    return Proc(name, popen, log_path, started)


def stop(proc: Proc, timeout: float = 10.0) -> None:
    """End the process (and the group it leads) by its PID: SIGTERM, then SIGKILL."""
    if proc.popen.returncode is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.popen.wait(timeout)
            break
        except subprocess.TimeoutExpired:
            continue
    _reap_group(proc.pid)


def _reap_group(pgid: int) -> None:
    """Kill stragglers left in the group we created (children that ignored SIGTERM)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def request(
    base: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request on a fresh connection; status 0 when it could not be made."""
    url = urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (OSError, http.client.HTTPException):
        return 0, {}, b""
    finally:
        conn.close()


def wait_until(proc: Proc | None, probe: Callable[[], bool], deadline_s: float) -> float:
    """Poll ``probe()`` until it is true; seconds since the process was spawned."""
    start = proc.spawned_at if proc else time.perf_counter()
    limit = time.perf_counter() + deadline_s
    while time.perf_counter() < limit:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited early:\n{proc.log_tail()}")
        if probe():
            return time.perf_counter() - start
        time.sleep(0.02)
    tail = proc.log_tail() if proc else ""
    raise TimeoutError(f"not ready after {deadline_s:.0f} s\n{tail}")


def _ppid_map() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(pid: int) -> list[int]:
    parents = _ppid_map()
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree += frontier
    return tree


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) summed over the process tree, in MiB."""
    tree = process_tree(pid)
    rss = sum(_status_kib(p, "VmRSS") for p in tree)
    hwm = sum(_status_kib(p, "VmHWM") for p in tree)
    return {"rss_mib": round(rss / 1024, 1), "hwm_mib": round(hwm / 1024, 1), "procs": len(tree)}


def serve_controltower(
    url: str, workdir: Path, label: str, *, workers: int = 1, ready_s: float = 120
) -> tuple[Proc, str]:
    """`controltower serve` (from the project's venv) on a free loopback port over the
    database at `url`, once it answers /health; the process and its base URL."""
    port = free_port()
    cli = VENV_BIN / "controltower"
    head = [str(cli)] if cli.exists() else [PYTHON, "-m", "controltower"]
    argv = [*head, "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    argv += ["--workers", str(workers)]
    env: dict[str, str | None] = {
        "CONTROLTOWER_DATABASE_URL": url,
        "CONTROLTOWER_MASTER_KEY": None,
        "CONTROLTOWER_URL": None,
    }
    proc = spawn(f"controltower-{label}", argv, workdir, env)
    base = f"http://127.0.0.1:{port}"
    ready = wait_until(proc, lambda: request(base, "GET", "/health")[0] == 200, ready_s)
    print(f"  server pid {proc.pid} ready in {ready:.2f} s on {base}", flush=True)
    return proc, base
