"""The OpenBao dev server starts, serves KV v2, and stops by PID."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests

from devtools import openbao
from devtools.proc import pid_alive, stop
from tests.devtool_cli import run_devtool


@pytest.fixture
def server(tmp_path: Path):
    srv = openbao.start(tmp_path, token="test-root")
    yield srv
    stop(srv.pid)


def test_dev_server_is_healthy_and_isolated(server: openbao.DevServer, tmp_path: Path) -> None:
    assert server.address.startswith("http://127.0.0.1:")
    assert openbao.is_healthy(server.address)
    # Dev mode writes the token into HOME, which must be the state dir, not the user's.
    assert (tmp_path / ".vault-token").read_text().strip() == "test-root"


def test_kv_v2_round_trip(server: openbao.DevServer) -> None:
    headers = {"X-Vault-Token": server.token}
    url = f"{server.address}/v1/secret/data/default/web/config"
    write = requests.post(url, headers=headers, json={"data": {"password": "s3cret"}}, timeout=5)
    assert write.status_code == 200, write.text
    read = requests.get(url, headers=headers, timeout=5)
    assert read.json()["data"]["data"] == {"password": "s3cret"}


def test_stop_ends_the_process(tmp_path: Path) -> None:
    srv = openbao.start(tmp_path)
    stop(srv.pid)
    assert not pid_alive(srv.pid)
    assert not openbao.is_healthy(srv.address)
    stop(srv.pid)  # already gone: no error


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_devtool("openbao", *args)


def test_cli_server_outlives_its_shell_and_is_reused(tmp_path: Path) -> None:
    started = _cli("start", "--state-dir", str(tmp_path))
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    try:
        assert pid_alive(first["pid"])  # the CLI process has exited
        assert openbao.is_healthy(first["address"])
        assert json.loads(_cli("start", "--state-dir", str(tmp_path)).stdout) == first
        assert _cli("status", "--state-dir", str(tmp_path)).returncode == 0
    finally:
        assert _cli("stop", "--state-dir", str(tmp_path)).returncode == 0
    assert not (tmp_path / openbao.STATE_FILE).exists()
    assert not pid_alive(first["pid"])
    assert _cli("status", "--state-dir", str(tmp_path)).returncode == 1


def test_vault_env_does_not_leak_into_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:1")
    srv = openbao.start(tmp_path)
    try:
        env = Path(f"/proc/{srv.pid}/environ").read_bytes().split(b"\0")
        assert not any(e.startswith(b"VAULT_") for e in env)
        assert f"HOME={tmp_path}".encode() in env
    finally:
        stop(srv.pid)
    assert "VAULT_ADDR" in os.environ  # the caller's env is untouched
