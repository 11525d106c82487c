"""Process plumbing shared by the dev servers: ports, detached spawn, stop by PID.

Servers run in their own session so they outlive the shell (or ``python -m``)
that started them, and are only ever stopped by the PID recorded at start.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

STOP_TIMEOUT = 5.0

# Children started by this process, kept so stop() can reap them: otherwise
# they linger as zombies and Popen warns about them when garbage-collected.
_children: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    """Ask the kernel for an unused loopback port (racy, but fine for dev use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:port (we can bind it right now).

    SO_REUSEADDR, as both servers set it: connections of a just-killed server linger in
    TIME_WAIT, which must not count as "taken" or a restart would move to a new port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_of(url: str) -> int | None:
    """The port of a recorded server URL, or None if it has none."""
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def reusable_port(url: str | None, is_free: Callable[[int], bool] = port_free) -> int | None:
    """The recorded port if it is free again, so a restarted server keeps its address.

    A stable address keeps the stack config (and the Nomad client block) unchanged across
    restarts; None means "pick any free port".
    """
    port = port_of(url) if url else None
    return port if port and is_free(port) else None


def answers(url: str) -> bool:
    """True when `url` answers 200 within a second: a server is up and serving."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def wait_until_answers(process: subprocess.Popen[bytes], url: str, timeout: float) -> bool:
    """True once `url` answers 200; False when `process` exits or `timeout` passes first, and
    then the process is stopped (never left running untracked)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if answers(url):
            return True
        time.sleep(0.1)
    stop(process.pid)
    return False


def read_state(path: Path) -> dict[str, Any] | None:
    """A server's recorded state (JSON object), or None if missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(path: Path, state: dict[str, Any]) -> None:
    path.write_text(json.dumps(state, indent=2) + "\n")


def spawn(
    cmd: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached: own session, stdin from /dev/null, output appended to a log."""
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            list(cmd),
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    return proc


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is running; zombies count as gone.

    A server started by an earlier, exited shell is re-parented to PID 1, which
    may reap it late, so a signal probe alone could report a dead server alive.
    """
    if pid in _children:
        return _children[pid].poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS): the signal probe is all we have
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def runs(pid: int, marker: str) -> bool:
    """True if ``pid`` is alive and its command line mentions ``marker``.

    Guards stops driven by a stale state file: after a reboot the recorded PID
    may belong to an unrelated process.
    """
    if not pid_alive(pid):
        return False
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no procfs (macOS): trust the liveness probe


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def stop(pid: int) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL; a vanished process is fine."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        if _wait_gone(pid, STOP_TIMEOUT):
            break
    _children.pop(pid, None)


def stop_recorded(state_file: Path, marker: str) -> None:
    """Stop the server `state_file` records, if its PID still runs it (`marker` in its
    command line), and forget it."""
    recorded = read_state(state_file) or {}
    pid = recorded.get("pid")
    if isinstance(pid, int) and runs(pid, marker):
        stop(pid)
    state_file.unlink(missing_ok=True)
