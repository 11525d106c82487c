"""Delivering the agent config through the real engine and the real command provider: files
in `nomadConfigDir`, and over SSH to two "agents" (a server and a client) on a real sshd.

The tests share one deployment and run in file order: up, what arrived, a no-op up, where the
key is (not), an identityTtl change, destroy. Each agent's `reloadCommand` appends its role to
a marker file, so the tests see exactly when the program reloaded which agent.
"""

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi import automation as auto

from devtools.proc import stop
from tests.e2e import sshd
from tests.e2e.harness import STACK, Scenario, changes
from tests.hcl import parse_hcl

# The Vault setup's own resources (stack, component, auth mount, policy, role), then ours.
VAULT_RESOURCES = 5
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # how the state marks a secret value


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sshd.SshServer]:
    """A real sshd; without one the tier fails (never skips) and says how to install it."""
    try:
        server = sshd.start(tmp_path_factory.mktemp("sshd"))
    except FileNotFoundError as missing:
        pytest.fail(str(missing), pytrace=False)
    yield server
    stop(server.pid)


@dataclass
class Delivery:
    scenario: Scenario
    ssh: sshd.SshServer
    local_dir: Path
    agent_dir: Path  # the agents' "/etc/nomad.d", on the sshd's (here: this) machine
    marker: Path
    settings: dict

    @property
    def local_files(self) -> dict[str, Path]:
        return {
            "server": self.local_dir / "vault-server.hcl",
            "client": self.local_dir / "vault-client.hcl",
        }

    @property
    def agent_files(self) -> dict[str, Path]:
        return {agent["role"]: Path(agent["configPath"]) for agent in self.settings["nomadAgents"]}

    def reloads(self) -> list[str]:
        return self.marker.read_text().split() if self.marker.exists() else []

    def file_identities(self) -> dict[str, tuple[int, int]]:
        """(inode, mtime) of every delivered file: a rewrite changes at least one."""
        files = {f"local-{k}": p for k, p in self.local_files.items()}
        files |= {f"agent-{k}": p for k, p in self.agent_files.items()}
        return {name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in files.items()}


@pytest.fixture(scope="module")
def delivered(new_scenario, ssh_server, tmp_path_factory) -> Delivery:
    root = tmp_path_factory.mktemp("delivery")
    agent_dir = root / "agent-etc-nomad.d"
    agent_dir.mkdir()
    marker = root / "reloads"
    agents = [
        {
            "host": ssh_server.host,
            "port": ssh_server.port,
            "user": ssh_server.user,
            "role": role,
            "configPath": str(agent_dir / f"{role}.hcl"),
            "reloadCommand": f"echo {role} >> {marker}",
            "hostKey": ssh_server.host_key,
        }
        for role in ("server", "client")
    ]
    delivery = Delivery(
        new_scenario(),
        ssh_server,
        root / "local" / "nomad.d",
        agent_dir,
        marker,
        {"nomadConfigDir": str(root / "local" / "nomad.d"), "nomadAgents": agents},
    )
    delivery.scenario.configure(**delivery.settings)
    delivery.scenario.set_secret("nomadAgentsPrivateKey", ssh_server.private_key)
    result = delivery.scenario.up()
    assert changes(result.summary.resource_changes) == {"create": VAULT_RESOURCES + 4}
    return delivery


def test_local_files_hold_the_outputs_with_live_values(delivered: Delivery) -> None:
    outputs = delivered.scenario.outputs()
    for role, path in delivered.local_files.items():
        assert path.read_text() == outputs[f"nomad_{role}_config"]
        assert path.stat().st_mode & 0o777 == 0o644
    (client,) = parse_hcl(delivered.local_files["client"].read_text())["vault"]
    assert client["address"] == delivered.scenario.server.address
    assert client["jwt_auth_backend_path"] == outputs["auth_path"] == "jwt-nomad"
    (server,) = parse_hcl(delivered.local_files["server"].read_text())["vault"]
    assert server["default_identity"][0]["ttl"] == "1h"
    assert sorted(p.name for p in delivered.local_dir.iterdir()) == [
        "vault-client.hcl",
        "vault-server.hcl",
    ], "no temp file left behind"


def test_each_agent_received_its_roles_file_and_was_reloaded_once(delivered: Delivery) -> None:
    outputs = delivered.scenario.outputs()
    for role, path in delivered.agent_files.items():
        assert path.read_text() == outputs[f"nomad_{role}_config"]
        assert path.stat().st_mode & 0o777 == 0o644
    assert sorted(delivered.reloads()) == ["client", "server"]
    assert "Accepted publickey" in delivered.ssh.log_path.read_text()


def test_a_no_op_up_rewrites_nothing_and_reloads_nothing(delivered: Delivery) -> None:
    before = delivered.file_identities()
    reloads = delivered.reloads()
    assert changes(delivered.scenario.preview().change_summary) == {}
    assert changes(delivered.scenario.up().summary.resource_changes) == {}
    assert delivered.file_identities() == before
    assert delivered.reloads() == reloads


def test_a_connection_change_alone_rewrites_nothing_and_reloads_nothing(
    delivered: Delivery,
) -> None:
    """Dropping (then restoring) the pinned host key re-runs both agent commands: the text is
    the same, so the files stay as they are and no agent restarts."""
    before = delivered.file_identities()
    reloads = delivered.reloads()
    unpinned = [agent | {"hostKey": ""} for agent in delivered.settings["nomadAgents"]]
    delivered.scenario.configure(**delivered.settings | {"nomadAgents": unpinned})
    assert changes(delivered.scenario.up().summary.resource_changes) == {"update": 2}
    delivered.scenario.configure(**delivered.settings)
    assert changes(delivered.scenario.up().summary.resource_changes) == {"update": 2}
    assert delivered.file_identities() == before
    assert delivered.reloads() == reloads


def plain_export(scenario: Scenario) -> str:
    """`pulumi stack export` as a user runs it (the Automation API's adds --show-secrets)."""
    return subprocess.run(
        ["pulumi", "stack", "export", "--stack", STACK],
        cwd=scenario.work_dir,
        env=os.environ | scenario.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_private_key_is_nowhere_in_plain_text(delivered: Delivery) -> None:
    scenario = delivered.scenario
    # The key's own bytes: its last base64 lines (the first is the same for every such key).
    secret_lines = delivered.ssh.private_key.splitlines()[2:-1]
    assert secret_lines
    revealed = json.dumps(scenario.stack.export_stack().deployment)  # --show-secrets
    assert all(line in revealed for line in secret_lines), "the state does hold the key"

    on_disk = [p.read_text() for p in (scenario.root / "state").rglob("*") if p.is_file()]
    places = {
        "pulumi stack export": plain_export(scenario),
        "the stack file": scenario.stack_file.read_text(),
        "the outputs": json.dumps(scenario.outputs()),
        "the backend's files": "\n".join(on_disk),
    }
    for place, text in places.items():
        for line in secret_lines:
            assert line not in text, place

    resources = json.loads(places["pulumi stack export"])["deployment"]["resources"]
    agents = [r for r in resources if r["type"] == "command:remote:Command"]
    assert len(agents) == 2
    for agent in agents:
        for state in ("inputs", "outputs"):
            assert SECRET_SIGNATURE in agent[state]["connection"], (agent["urn"], state)


def test_an_identity_ttl_change_rewrites_and_reloads_only_the_server_files(
    delivered: Delivery,
) -> None:
    before = delivered.file_identities()
    reloads = delivered.reloads()
    delivered.scenario.configure(**delivered.settings, identityTtl="2h")
    result = delivered.scenario.up()
    assert changes(result.summary.resource_changes) == {"update": 2}

    outputs = delivered.scenario.outputs()
    for path in (delivered.local_files["server"], delivered.agent_files["server"]):
        assert path.read_text() == outputs["nomad_server_config"]
        (server,) = parse_hcl(path.read_text())["vault"]
        assert server["default_identity"][0]["ttl"] == "2h"
    after = delivered.file_identities()
    assert after["local-server"] != before["local-server"]
    assert after["agent-server"] != before["agent-server"]
    assert after["local-client"] == before["local-client"]
    assert after["agent-client"] == before["agent-client"]
    assert delivered.reloads() == [*reloads, "server"]


def test_a_moved_agent_file_is_written_anew_and_the_old_one_removed(delivered: Delivery) -> None:
    old = delivered.agent_files["client"]
    reloads = delivered.reloads()
    client = delivered.settings["nomadAgents"][1]
    client["configPath"] = str(delivered.agent_dir / "moved" / ".." / "client-moved.hcl")
    delivered.scenario.configure(**delivered.settings, identityTtl="2h")
    steps: list[tuple[str, str]] = []  # (op, resource name) of each step, as it completes

    def record(event: auto.EngineEvent) -> None:
        if event.res_outputs_event:
            step = event.res_outputs_event.metadata
            steps.append((step.op.value, step.urn.rsplit("::", 1)[1]))

    result = delivered.scenario.up(on_event=record)
    assert changes(result.summary.resource_changes) == {"create": 1, "delete": 1}
    client["configPath"] = str(delivered.agent_dir / "client-moved.hcl")  # as normalised
    new = delivered.agent_files["client"]
    assert [op for op, name in steps if "-agent-" in name and op != "same"] == ["create", "delete"]
    assert not old.exists()
    assert new.read_text() == delivered.scenario.outputs()["nomad_client_config"]
    assert delivered.reloads() == [*reloads, "client", "client"]


def test_destroy_removes_every_file_and_reloads_the_agents(delivered: Delivery) -> None:
    reloads = delivered.reloads()
    result = delivered.scenario.destroy()
    assert changes(result.summary.resource_changes) == {"delete": VAULT_RESOURCES + 4}
    for path in [*delivered.local_files.values(), *delivered.agent_files.values()]:
        assert not path.exists(), path
    assert sorted(delivered.reloads()[len(reloads) :]) == ["client", "server"]
    assert not os.listdir(delivered.agent_dir)


def test_agents_without_a_secret_key_stop_the_preview(new_scenario, ssh_server) -> None:
    scenario = new_scenario()
    scenario.configure(nomadAgents=[{"host": ssh_server.host, "role": "client"}])
    with pytest.raises(auto.CommandError) as missing:
        scenario.preview()
    assert "nomad-vault-setup:nomadAgentsPrivateKey: not set, but nomadAgents" in str(missing.value)

    plain = auto.ConfigValue(ssh_server.private_key, secret=False)
    scenario.stack.set_config("nomad-vault-setup:nomadAgentsPrivateKey", plain)
    with pytest.raises(auto.CommandError) as refused:
        scenario.preview()
    assert "nomad-vault-setup:nomadAgentsPrivateKey: must be a secret" in str(refused.value)
    assert ssh_server.private_key.splitlines()[2] not in str(refused.value)
