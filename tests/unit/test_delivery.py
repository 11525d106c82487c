"""Delivering the agent config under mocks: which commands, with which names, scripts,
options and connection; and the write script itself, run for real by `sh`."""

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi_command import local, remote

from components.delivery import write_lines
from components.settings import DEFAULT_RELOAD_COMMAND
from components.vault_setup import COMPONENT_TYPE
from tests.hcl import parse_hcl
from tests.unit.conftest import resolve

LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\n"
    "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    "-----END OPENSSH PRIVATE KEY-----\n"
)
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheServerForTestsOnly"
AGENTS = [
    {"host": "nomad-1.internal", "role": "server"},
    {"host": "10.0.0.2", "role": "server", "port": 2222, "user": "ops", "hostKey": HOST_KEY},
    {
        "host": "client-1.internal",
        "role": "client",
        "configPath": "/etc/nomad/conf.d/vault.hcl",
        "reloadCommand": "sudo systemctl restart nomad-client",
    },
]


@pytest.fixture
def with_secret_key() -> Iterator[dict[str, str]]:
    """The key as the engine hands it over: decrypted in the config, its name a secret key."""
    pulumi.runtime.set_all_config({}, secret_keys=["nomad-vault-setup:nomadAgentsPrivateKey"])
    yield {"nomadAgentsPrivateKey": KEY}
    pulumi.runtime.set_all_config({}, secret_keys=[])


@pytest.fixture
def constructed(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[dict[str, Any]]]:
    """What the program passes to the command and connection constructors (opts included)."""
    calls: dict[str, list[dict[str, Any]]] = {"local": [], "remote": [], "connection": []}
    for module, key in ((local, "local"), (remote, "remote")):
        real = module.Command

        def spy(name: str, *, _real=real, _key=key, **kwargs: Any) -> Any:
            resource = _real(name, **kwargs)
            calls[_key].append({"name": name, "resource": resource, **kwargs})
            return resource

        monkeypatch.setattr(module, "Command", spy)
    real_connection = remote.ConnectionArgs

    def connection_spy(**kwargs: Any) -> remote.ConnectionArgs:
        calls["connection"].append(kwargs)
        return real_connection(**kwargs)

    monkeypatch.setattr(remote, "ConnectionArgs", connection_spy)
    return calls


def by_name(run, typ: str) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in run.of_type(typ)}


def test_without_delivery_settings_no_command_is_registered(run_program) -> None:
    run = run_program()
    assert run.of_type(LOCAL) == [] and run.of_type(REMOTE) == []


def test_local_files_carry_exactly_the_outputs(run_program) -> None:
    run = run_program({"nomadConfigDir": "/srv/nomad/"})
    files = by_name(run, LOCAL)
    # The path is in the name (a moved file is a new resource); the content only in stdin.
    assert sorted(files) == [
        "nomad-local/srv/nomad/vault-client.hcl",
        "nomad-local/srv/nomad/vault-server.hcl",
    ]
    for kind in ("server", "client"):
        path = f"/srv/nomad/vault-{kind}.hcl"
        inputs = files[f"nomad-local{path}"]
        assert inputs["stdin"] == run.exports[f"nomad_{kind}_config"]
        assert parse_hcl(inputs["stdin"])["vault"][0]["enabled"] is True
        assert "triggers" not in inputs
        assert f'mv -f "$tmp" {path}\n' in inputs["create"]
        assert inputs["create"].startswith("set -e\nmkdir -p /srv/nomad\n")
        assert inputs["delete"] == f"set -e\nrm -f {path}\n"


def test_each_agent_gets_its_roles_file_over_ssh(run_program, with_secret_key) -> None:
    run = run_program(with_secret_key | {"nomadAgents": json.dumps(AGENTS)})
    agents = by_name(run, REMOTE)
    assert sorted(agents) == [
        "nomad-agent-10.0.0.2-2222/etc/nomad.d/vault.hcl",
        "nomad-agent-client-1.internal-22/etc/nomad/conf.d/vault.hcl",
        "nomad-agent-nomad-1.internal-22/etc/nomad.d/vault.hcl",
    ]
    server = agents["nomad-agent-nomad-1.internal-22/etc/nomad.d/vault.hcl"]
    assert server["stdin"] == run.exports["nomad_server_config"]
    assert "triggers" not in server
    assert server["create"].endswith(
        f'mv -f "$tmp" /etc/nomad.d/vault.hcl\n{DEFAULT_RELOAD_COMMAND}\n'
    )
    assert server["delete"] == f"set -e\nrm -f /etc/nomad.d/vault.hcl\n{DEFAULT_RELOAD_COMMAND}\n"
    connection = server["connection"]["value"]  # the SDK's secret wrapper
    assert connection["host"] == "nomad-1.internal"
    assert (connection["port"], connection["user"], connection["privateKey"]) == (22, "root", KEY)
    assert "hostKey" not in connection

    pinned = agents["nomad-agent-10.0.0.2-2222/etc/nomad.d/vault.hcl"]["connection"]["value"]
    assert (pinned["port"], pinned["user"], pinned["hostKey"]) == (2222, "ops", HOST_KEY)

    client = agents["nomad-agent-client-1.internal-22/etc/nomad/conf.d/vault.hcl"]
    assert client["stdin"] == run.exports["nomad_client_config"]
    assert client["create"].endswith("\nsudo systemctl restart nomad-client\n")
    assert (
        "rm -f /etc/nomad/conf.d/vault.hcl\nsudo systemctl restart nomad-client"
        in (client["delete"])
    )


def test_the_private_key_reaches_only_the_connections_and_only_as_a_secret(
    run_program, with_secret_key, constructed
) -> None:
    run = run_program(with_secret_key | {"nomadAgents": json.dumps(AGENTS)})
    keys = [call["private_key"] for call in constructed["connection"]]
    assert len(keys) == 3
    for key in keys:
        assert resolve(key) == KEY
        assert resolve(key.is_secret()) is True, "wrapped before it reaches the SDK"
    assert KEY not in json.dumps(run.exports)
    for resource in run.resources:
        inputs = dict(resource.inputs)
        inputs.pop("connection", None)
        assert KEY.splitlines()[1] not in json.dumps(inputs, default=str), resource.name


def test_commands_are_children_of_the_component_and_servers_go_one_at_a_time(
    run_program, with_secret_key, constructed
) -> None:
    agents = [*AGENTS, {"host": "nomad-3.internal", "role": "server"}]
    run_program(with_secret_key | {"nomadAgents": json.dumps(agents), "nomadConfigDir": "/n"})
    commands = constructed["local"] + constructed["remote"]
    assert len(commands) == 6
    for call in commands:
        opts: pulumi.ResourceOptions = call["opts"]
        assert resolve(opts.parent.urn).endswith("::nomad"), call["name"]
        assert COMPONENT_TYPE in resolve(call["resource"].urn)
    first, second, client, third = constructed["remote"]
    assert first["opts"].depends_on == []
    assert second["opts"].depends_on == [first["resource"]]
    assert client["opts"].depends_on == [], "clients do not wait"
    assert third["opts"].depends_on == [second["resource"]]


def test_with_clusters_each_cluster_delivers_its_own_files(run_program, with_secret_key) -> None:
    clusters = [
        {"name": "east", "nomadAgents": [{"host": "east-1", "role": "client"}]},
        {"name": "west", "nomadConfigDir": "/opt/west", "identityTtl": "15m"},
    ]
    run = run_program(
        with_secret_key | {"clusters": json.dumps(clusters), "nomadConfigDir": "/etc/nomad-vault"}
    )
    files = {r.name: r.inputs["stdin"] for r in run.of_type(LOCAL)}
    assert sorted(files) == [
        "nomad-east-local/etc/nomad-vault/east/vault-client.hcl",
        "nomad-east-local/etc/nomad-vault/east/vault-server.hcl",
        "nomad-west-local/opt/west/vault-client.hcl",
        "nomad-west-local/opt/west/vault-server.hcl",
    ]
    west_server = files["nomad-west-local/opt/west/vault-server.hcl"]
    assert west_server == run.exports["nomad_server_config"]["west"]
    assert 'ttl = "15m"' in west_server
    (agent,) = run.of_type(REMOTE)
    assert agent.name == "nomad-east-agent-east-1-22/etc/nomad.d/vault.hcl"
    assert agent.inputs["stdin"] == run.exports["nomad_client_config"]["east"]


def test_an_ipv6_agent_gets_a_resource_name_without_colons(run_program, with_secret_key) -> None:
    agents = json.dumps([{"host": "FD00::1", "role": "client"}])
    (agent,) = run_program(with_secret_key | {"nomadAgents": agents}).of_type(REMOTE)
    assert agent.name == "nomad-agent-fd00__1-22/etc/nomad.d/vault.hcl"
    assert agent.inputs["connection"]["value"]["host"] == "fd00::1"


def run_sh(script: str, stdin: str = "") -> None:
    subprocess.run(["sh", "-c", script], input=stdin, text=True, check=True)


def test_the_write_script_replaces_the_file_whole_with_mode_0644(tmp_path: Path) -> None:
    target = tmp_path / "conf dir" / "vault.hcl"
    target.parent.mkdir()
    target.write_text("old\n")
    os.chmod(target, 0o600)
    script = "\n".join(["set -e", *write_lines(str(target))])
    run_sh(script, "vault {\n  enabled = true\n}\n")
    assert target.read_text() == "vault {\n  enabled = true\n}\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["vault.hcl"], "no temp file left"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "vault.hcl"
    target.write_text("old\n")
    failing = "\n".join(["set -e", *write_lines(str(target))]).replace("cat >", "false >")
    with pytest.raises(subprocess.CalledProcessError):
        run_sh(failing, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["vault.hcl"]


def test_the_same_text_again_is_neither_written_nor_reloaded(tmp_path: Path) -> None:
    target = tmp_path / "vault.hcl"
    reloaded = tmp_path / "reloaded"
    script = "\n".join(["set -e", *write_lines(str(target)), f"touch {reloaded}"])
    run_sh(script, "vault {}\n")
    assert reloaded.exists()
    reloaded.unlink()
    identity = (target.stat().st_ino, target.stat().st_mtime_ns)
    run_sh(script, "vault {}\n")
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == identity
    assert not reloaded.exists(), "no reload for an unchanged file"
    assert [p.name for p in tmp_path.iterdir()] == ["vault.hcl"], "no temp file left"
    run_sh(script, "vault { enabled = true }\n")
    assert reloaded.exists() and target.read_text() == "vault { enabled = true }\n"
