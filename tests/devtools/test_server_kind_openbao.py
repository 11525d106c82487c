"""The server probe on a real OpenBao (the `bao` binary of the venv): its kind, its version,
no job-ID risk on this release, and an answer even from a node that is not active."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devtools import openbao
from devtools.proc import free_port, spawn, stop
from nomad_vault_setup.server_kind import ServerProbeError, job_id_risks, probe_server


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[openbao.DevServer]:
    server = openbao.start(tmp_path_factory.mktemp("openbao"), token="probe-root")
    yield server
    stop(server.pid)


def binary_version() -> str:
    """What `bao version` says, e.g. `OpenBao v2.7.2 (9e0a0d3c...)` -> 2.7.2."""
    output = subprocess.run(
        [openbao.bao_binary(), "version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"OpenBao v(\d+\.\d+\.\d+\S*)", output)
    assert match, output
    return match.group(1)


def test_the_probe_finds_openbao_and_its_version(dev_server: openbao.DevServer) -> None:
    server = probe_server(dev_server.address)
    assert (server.kind, server.version) == ("openbao", binary_version())
    assert server.cluster_id, "the cluster a stack's record is tied to"


def test_openbao_health_has_no_enterprise_field(dev_server: openbao.DevServer) -> None:
    """The fact the probe relies on: HashiCorp Vault sends `enterprise` (since 1.16)."""
    health = requests.get(f"{dev_server.address}/v1/sys/health", timeout=5).json()
    assert "enterprise" not in health
    assert health["version"] == binary_version()


def test_this_openbao_release_has_no_job_id_risk(dev_server: openbao.DevServer) -> None:
    """So a stack with default settings (nothing accepted) deploys here."""
    assert job_id_risks(probe_server(dev_server.address)) == {}


def test_an_uninitialised_sealed_node_is_refused_by_the_probe(tmp_path: Path) -> None:
    """Its plain `sys/health` is HTTP 501; the probe's query (uninitcode=200...) still reads
    the kind and version, and refuses the node by name: it would refuse everything after."""
    port = free_port()
    config = tmp_path / "server.hcl"
    config.write_text(
        'storage "inmem" {}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n  tls_disable = true\n}}\n'
        "disable_mlock = true\n"
    )
    process = spawn(
        [openbao.bao_binary(), "server", f"-config={config}"],
        tmp_path / "server.log",
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                plain = requests.get(f"{address}/v1/sys/health", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.1)
        assert plain.status_code == 501
        assert plain.json()["initialized"] is False and plain.json()["sealed"] is True
        with pytest.raises(ServerProbeError) as refused:
            probe_server(address)
        assert f"the Vault server at {address} (OpenBao {binary_version()}) is not initialised" in (
            str(refused.value)
        )
    finally:
        stop(process.pid)
