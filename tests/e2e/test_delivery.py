"""Delivering the agent config through the real engine and the real command provider: files
in `nomadConfigDir`, and over SSH to two "agents" (a server and a client) on a real sshd.

The tests share one deployment and run in file order: up, what arrived, a no-op up, where the
key is (not), an identityTtl change, destroy. Each agent's `reloadCommand` appends its role to
a marker file, so the tests see exactly when the program reloaded which agent.
"""

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pulumi import automation as auto

from devtools.proc import stop
from nomad_vault_setup.agent_files import BACKUP_SUFFIX, PENDING_SUFFIX, marker_line
from tests.e2e import sshd
from tests.e2e.harness import STACK, Scenario, changes
from tests.hcl import parse_hcl

# The Vault setup's own resources (stack, component, auth mount, policy, role), and the
# AgentConfig component grouping the delivered files; then the files.
VAULT_RESOURCES = 5 + 1
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"  # how the state marks a secret value
# Every delivered file starts with this line, then holds exactly the stack output. The
# organization of a stack in a `file://` backend is always "organization".
MARKER = marker_line(f"organization/nomad-vault-setup/{STACK}") + "\n"


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
        assert path.read_text() == MARKER + outputs[f"nomad_{role}_config"]
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
        assert path.read_text() == MARKER + outputs[f"nomad_{role}_config"]
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
        assert path.read_text() == MARKER + outputs["nomad_server_config"]
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
    client["configPath"] = str(delivered.agent_dir / "client-moved.hcl")
    delivered.scenario.configure(**delivered.settings, identityTtl="2h")
    steps: list[tuple[str, str]] = []  # (op, resource name) of each step, as it completes

    def record(event: auto.EngineEvent) -> None:
        if event.res_outputs_event:
            step = event.res_outputs_event.metadata
            steps.append((step.op.value, step.urn.rsplit("::", 1)[1]))

    result = delivered.scenario.up(on_event=record)
    assert changes(result.summary.resource_changes) == {"create": 1, "delete": 1}
    new = delivered.agent_files["client"]
    assert [op for op, name in steps if "-agent-" in name and op != "same"] == ["create", "delete"]
    assert not old.exists()
    assert new.read_text() == MARKER + delivered.scenario.outputs()["nomad_client_config"]
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


def test_a_fifo_in_the_config_dir_stops_the_preview_instead_of_blocking_it(
    new_scenario, tmp_path: Path
) -> None:
    """Opening a FIFO for reading waits for a writer, for good: the program must report it
    (unread) as what `up` would refuse, and the preview return. Were it to block, the test lets
    the program go (by opening the FIFO once for writing) after two minutes, and fails."""
    directory = tmp_path / "nomad.d"
    directory.mkdir()
    fifo = directory / "vault-server.hcl"
    os.mkfifo(fifo)
    scenario = new_scenario()
    scenario.configure(nomadConfigDir=str(directory))
    outcome: list[BaseException | None] = []

    def preview() -> None:
        try:
            scenario.preview()
            outcome.append(None)
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    thread = threading.Thread(target=preview, daemon=True)
    thread.start()
    thread.join(120)
    blocked = thread.is_alive()
    if blocked:
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(120)
    assert not blocked, "the preview blocked on the FIFO"
    (error,) = outcome
    assert isinstance(error, auto.CommandError), error
    assert f"{fifo} is not a regular file" in str(error)
    assert "refusing to apply this stack, nothing was changed" in str(error)
    assert fifo.exists() and not fifo.is_file(), "left as it was"


# A second, small deployment for files this stack did not write and for a reload that fails:
# one client agent whose file already exists, and a reloadCommand that works only while a flag
# file exists. Its tests run in file order: refused, replaced with a failing reload, the retry,
# destroy.
ORIGINAL = "# the operator's own\nvault {\n  enabled = false\n}\n"


def stderr_lines(error: auto.CommandError, start: str) -> set[str]:
    """The lines the command printed on stderr that start with `start` (the engine's error
    also quotes the whole script, where the same text sits inside quotes on one line)."""
    return {line.strip() for line in str(error).splitlines() if line.strip().startswith(start)}


@dataclass
class Guarded:
    scenario: Scenario
    path: Path  # the agent's config file
    flag: Path  # the reload works only while it exists
    marker: Path  # the reloads, one line each
    settings: dict

    @property
    def backup(self) -> Path:
        return Path(str(self.path) + BACKUP_SUFFIX)

    @property
    def pending(self) -> Path:
        return Path(str(self.path) + PENDING_SUFFIX)

    def listing(self) -> list[str]:
        return sorted(p.name for p in self.path.parent.iterdir())

    def reloads(self) -> int:
        return len(self.marker.read_text().split()) if self.marker.exists() else 0

    def identity(self) -> tuple[int, int, int, str]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_mode & 0o777, self.path.read_text()


@pytest.fixture(scope="module")
def guarded(new_scenario, ssh_server, tmp_path_factory) -> Guarded:
    root = tmp_path_factory.mktemp("guarded")
    (root / "etc-nomad.d").mkdir()
    path = root / "etc-nomad.d" / "vault.hcl"
    path.write_text(ORIGINAL)
    path.chmod(0o600)
    flag, marker = root / "reload-works", root / "reloads"
    agent = {
        "host": ssh_server.host,
        "port": ssh_server.port,
        "user": ssh_server.user,
        "role": "client",
        "configPath": str(path),
        "reloadCommand": f"test -e {flag} && echo client >> {marker}",
        "hostKey": ssh_server.host_key,
    }
    # A token that no path contains: the engine masks a secret's value wherever it appears
    # in its output, and the dev server's usual `root` is in the paths of pytest-of-root/.
    scenario = new_scenario(token="guarded-e2e-token")
    guarded = Guarded(scenario, path, flag, marker, {"nomadAgents": [agent]})
    guarded.scenario.configure(**guarded.settings)
    guarded.scenario.set_secret("nomadAgentsPrivateKey", ssh_server.private_key)
    return guarded


def test_an_agent_file_this_stack_did_not_write_is_refused_and_left_as_it_was(
    guarded: Guarded,
) -> None:
    before = guarded.identity()
    with pytest.raises(auto.CommandError) as refused:
        guarded.scenario.up()
    (said,) = stderr_lines(refused.value, "nomad-vault-setup: refusing to overwrite")
    assert said.startswith(f"nomad-vault-setup: refusing to overwrite {guarded.path} on ")
    assert "the configPath of the nomadAgents entry for 127.0.0.1:" in said
    assert "nomad-vault-setup:replaceExistingFiles" in said
    assert guarded.identity() == before
    assert guarded.listing() == ["vault.hcl"], "no temp, backup or pending file"
    assert guarded.reloads() == 0


def test_a_failed_reload_fails_the_up_and_the_next_up_runs_it_again(guarded: Guarded) -> None:
    """With replaceExistingFiles the original is kept beside ours; the reload then fails (no
    flag), and once it works, the next `up` reloads although the file holds the text already."""
    guarded.scenario.configure(**guarded.settings, replaceExistingFiles=True)
    with pytest.raises(auto.CommandError) as failed:
        guarded.scenario.up()
    reload_command = guarded.settings["nomadAgents"][0]["reloadCommand"]
    (said,) = stderr_lines(failed.value, f"nomad-vault-setup: {guarded.path} on ")
    assert f"is written, but its reload command failed: {reload_command} -- " in said
    written = guarded.identity()
    assert written[3].startswith(MARKER) and written[2] == 0o644
    assert guarded.backup.read_text() == ORIGINAL
    assert guarded.backup.stat().st_mode & 0o777 == 0o600
    assert guarded.pending.exists() and guarded.reloads() == 0

    guarded.flag.touch()
    guarded.scenario.up()
    assert guarded.reloads() == 1, "the pending reload ran"
    assert guarded.identity() == written, "the file was not written again"
    assert written[3] == MARKER + guarded.scenario.outputs()["nomad_client_config"]
    assert guarded.listing() == sorted(["vault.hcl", guarded.backup.name]), "none pending"


def test_destroy_puts_the_replaced_file_back(guarded: Guarded) -> None:
    guarded.scenario.destroy()
    assert guarded.path.read_text() == ORIGINAL
    assert guarded.path.stat().st_mode & 0o777 == 0o600
    assert guarded.listing() == ["vault.hcl"]
    assert guarded.reloads() == 2, "the agent reloads its own config again"
