"""Delivering the agent config under mocks: which commands, with which names, scripts,
options and connection; and the write script itself, run for real by `sh`."""

import contextlib
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from pulumi_command import local, remote

from nomad_vault_setup.agent_files import (
    BACKUP_SUFFIX,
    PENDING_SUFFIX,
    DeliveredFile,
    delete_lines,
    local_file_problems,
    marker_line,
    script,
    write_lines,
)
from nomad_vault_setup.config import ClusterSettings as Settings
from nomad_vault_setup.config.schema import DEFAULT_RELOAD_COMMAND
from nomad_vault_setup.resource_types import AGENT_CONFIG_COMPONENT
from nomad_vault_setup.resource_types import CLUSTER_COMPONENT as COMPONENT_TYPE
from tests.hcl import parse_hcl
from tests.unit.conftest import resolve

# The organization, project and stack the unit runner gives the program.
OWNER = "organization/nomad-vault-setup/unit"
MARKER = marker_line(OWNER) + "\n"
LOCAL = "command:local:Command"
REMOTE = "command:remote:Command"
_KEY = Ed25519PrivateKey.generate()  # a real key: the settings load it to check it
KEY = _KEY.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
HOST_KEY = (
    Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH)
).decode()
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


SECRET_KEYS = ("nomad-vault-setup:nomadAgentsPrivateKey",)


@pytest.fixture
def with_secret_key() -> dict[str, str]:
    """The key as the engine hands it over: decrypted in the config (a run with it passes
    `secret_keys=SECRET_KEYS`, so its name is a secret key)."""
    return {"nomadAgentsPrivateKey": KEY}


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


def test_local_files_carry_the_marker_then_exactly_the_outputs(run_program) -> None:
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
        output = run.exports[f"nomad_{kind}_config"]
        assert "Written by" not in output, "the stack outputs stay the bare config"
        assert inputs["stdin"] == MARKER + output
        assert parse_hcl(inputs["stdin"])["vault"][0]["enabled"] is True, "# is HCL1's comment"
        assert "triggers" not in inputs
        file = DeliveredFile(path, OWNER, "nomad-vault-setup:nomadConfigDir (/srv/nomad)")
        assert inputs["create"] == script(["mkdir -p /srv/nomad", *write_lines(file)])
        assert inputs["delete"] == script(delete_lines(file))
        assert "refusing to overwrite" in inputs["create"]


def test_replace_existing_files_turns_the_refusal_into_a_kept_original(run_program) -> None:
    run = run_program({"nomadConfigDir": "/srv/nomad", "replaceExistingFiles": "true"})
    for inputs in by_name(run, LOCAL).values():
        assert "refusing to overwrite" not in inputs["create"]
        assert "foreign=1" in inputs["create"] and BACKUP_SUFFIX in inputs["create"]


def test_each_agent_gets_its_roles_file_over_ssh(run_program, with_secret_key) -> None:
    run = run_program(
        with_secret_key | {"nomadAgents": json.dumps(AGENTS)}, secret_keys=SECRET_KEYS
    )
    agents = by_name(run, REMOTE)
    assert sorted(agents) == [
        "nomad-agent-10.0.0.2-2222/etc/nomad.d/vault.hcl",
        "nomad-agent-client-1.internal-22/etc/nomad/conf.d/vault.hcl",
        "nomad-agent-nomad-1.internal-22/etc/nomad.d/vault.hcl",
    ]
    server = agents["nomad-agent-nomad-1.internal-22/etc/nomad.d/vault.hcl"]
    assert server["stdin"] == MARKER + run.exports["nomad_server_config"]
    assert "triggers" not in server
    setting = "the configPath of the nomadAgents entry for nomad-1.internal:22"
    file = DeliveredFile(
        "/etc/nomad.d/vault.hcl",
        OWNER,
        setting,
        "nomad-1.internal:22",
        False,
        DEFAULT_RELOAD_COMMAND,
    )
    assert server["create"] == script(write_lines(file))
    assert server["delete"] == script(delete_lines(file))
    assert f"\nstep=reload\nsh -c -- '{DEFAULT_RELOAD_COMMAND}'\n" in server["create"]
    connection = server["connection"]["value"]  # the SDK's secret wrapper
    assert connection["host"] == "nomad-1.internal"
    assert (connection["port"], connection["user"], connection["privateKey"]) == (22, "root", KEY)
    assert "hostKey" not in connection

    pinned = agents["nomad-agent-10.0.0.2-2222/etc/nomad.d/vault.hcl"]["connection"]["value"]
    assert (pinned["port"], pinned["user"], pinned["hostKey"]) == (2222, "ops", HOST_KEY)

    client = agents["nomad-agent-client-1.internal-22/etc/nomad/conf.d/vault.hcl"]
    assert client["stdin"] == MARKER + run.exports["nomad_client_config"]
    reload = "\nsh -c -- 'sudo systemctl restart nomad-client'\n"
    assert reload in client["create"]
    assert "/etc/nomad/conf.d/vault.hcl.reload-pending" in client["create"]
    assert reload in client["delete"]
    assert "nomadAgents entry for client-1.internal:22" in client["create"]


def test_the_private_key_reaches_only_the_connections_and_only_as_a_secret(
    run_program, with_secret_key, constructed
) -> None:
    run = run_program(
        with_secret_key | {"nomadAgents": json.dumps(AGENTS)}, secret_keys=SECRET_KEYS
    )
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


def test_commands_are_children_of_the_agent_config_and_servers_go_one_at_a_time(
    run_program, with_secret_key, constructed
) -> None:
    agents = [*AGENTS, {"host": "nomad-3.internal", "role": "server"}]
    run_program(
        with_secret_key | {"nomadAgents": json.dumps(agents), "nomadConfigDir": "/n"},
        secret_keys=SECRET_KEYS,
    )
    commands = constructed["local"] + constructed["remote"]
    assert len(commands) == 6
    for call in commands:
        opts: pulumi.ResourceOptions = call["opts"]
        assert resolve(opts.parent.urn).endswith(f"{AGENT_CONFIG_COMPONENT}::nomad"), call["name"]
        # Upgraded stacks had them as children of the cluster component: aliased, not replaced.
        (alias,) = opts.aliases
        assert resolve(alias.parent.urn).endswith(f"{COMPONENT_TYPE}::nomad")
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
        with_secret_key | {"clusters": json.dumps(clusters), "nomadConfigDir": "/etc/nomad-vault"},
        secret_keys=SECRET_KEYS,
    )
    files = {r.name: r.inputs["stdin"] for r in run.of_type(LOCAL)}
    assert sorted(files) == [
        "nomad-east-local/etc/nomad-vault/east/vault-client.hcl",
        "nomad-east-local/etc/nomad-vault/east/vault-server.hcl",
        "nomad-west-local/opt/west/vault-client.hcl",
        "nomad-west-local/opt/west/vault-server.hcl",
    ]
    west_server = files["nomad-west-local/opt/west/vault-server.hcl"]
    assert west_server == MARKER + run.exports["nomad_server_config"]["west"]
    assert 'ttl = "15m"' in west_server
    (agent,) = run.of_type(REMOTE)
    assert agent.name == "nomad-east-agent-east-1-22/etc/nomad.d/vault.hcl"
    assert agent.inputs["stdin"] == MARKER + run.exports["nomad_client_config"]["east"]


def test_an_ipv6_agent_gets_a_resource_name_without_colons(run_program, with_secret_key) -> None:
    agents = json.dumps([{"host": "FD00::1", "role": "client"}])
    (agent,) = run_program(
        with_secret_key | {"nomadAgents": agents}, secret_keys=SECRET_KEYS
    ).of_type(REMOTE)
    assert agent.name == "nomad-agent-fd00__1-22/etc/nomad.d/vault.hcl"
    assert agent.inputs["connection"]["value"]["host"] == "fd00::1"


# The scripts themselves, run for real: by /bin/sh (dash here: what local.Command runs) and by
# bash (the usual login shell, which runs them over SSH), on files in a temp directory.
SHELLS = ["/bin/sh", "bash"]
SERVER_TEXT = "vault {\n  enabled = true\n}\n"
NEW_TEXT = 'vault {\n  enabled = true\n  default_identity {\n    ttl = "2h"\n  }\n}\n'


@pytest.fixture(params=SHELLS)
def shell(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class Agent:
    """A config directory, a file in it, and a reload command that logs each reload outside
    it; `flag` must exist for the reload to succeed."""

    shell: str
    dir: Path
    log: Path
    flag: Path
    replace_existing: bool = False
    owner: str = OWNER

    @property
    def path(self) -> Path:
        return self.dir / "vault.hcl"

    @property
    def backup(self) -> Path:
        return Path(str(self.path) + BACKUP_SUFFIX)

    @property
    def pending(self) -> Path:
        return Path(str(self.path) + PENDING_SUFFIX)

    @property
    def file(self) -> DeliveredFile:
        reload = self.reload_command or f"test -e {self.flag} && echo reloaded >> {self.log}"
        setting = "the configPath of the nomadAgents entry for agent:22"
        return DeliveredFile(
            str(self.path), self.owner, setting, "agent:22", self.replace_existing, reload
        )

    reload_command: str = ""  # "" for the default: `flag` must exist, and each reload is logged

    def run(self, script_text: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        """Run a script; one that blocks (on a FIFO, say) fails the test instead of hanging."""
        return subprocess.run(
            [self.shell, "-c", script_text], input=stdin, text=True, capture_output=True, timeout=20
        )

    def up(self, text: str = SERVER_TEXT) -> subprocess.CompletedProcess[str]:
        return self.run(script(write_lines(self.file)), marker_line(self.owner) + "\n" + text)

    def destroy(self) -> subprocess.CompletedProcess[str]:
        return self.run(script(delete_lines(self.file)))

    def reloads(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def listing(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir())

    def identity(self) -> tuple[int, int, int, str]:
        stat = self.path.stat()
        return stat.st_ino, stat.st_mtime_ns, stat.st_mode & 0o777, self.path.read_text()


@pytest.fixture
def agent(tmp_path: Path, shell: str) -> Agent:
    directory = tmp_path / "etc nomad.d"  # a space: every path must be quoted
    directory.mkdir()
    flag = tmp_path / "reload-works"
    flag.touch()
    return Agent(shell, directory, tmp_path / "reloads", flag)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr
    return result


def test_a_fresh_write_lands_whole_with_the_marker_mode_0644_and_one_reload(agent: Agent) -> None:
    ok(agent.up())
    assert agent.path.read_text() == MARKER + SERVER_TEXT
    assert agent.path.stat().st_mode & 0o777 == 0o644
    assert agent.reloads() == 1
    assert agent.listing() == ["vault.hcl"], "no temp or pending file left"


def test_a_file_of_ours_is_replaced_whole_whatever_its_mode(agent: Agent) -> None:
    agent.path.write_text(MARKER + "old\n")
    os.chmod(agent.path, 0o600)
    ok(agent.up())
    assert agent.path.read_text() == MARKER + SERVER_TEXT
    assert agent.path.stat().st_mode & 0o777 == 0o644
    assert agent.reloads() == 1 and agent.listing() == ["vault.hcl"]


def test_the_same_text_again_is_neither_written_nor_reloaded(agent: Agent) -> None:
    ok(agent.up())
    before = agent.identity()
    ok(agent.up())
    assert agent.identity() == before
    assert agent.reloads() == 1, "no reload for an unchanged file"
    assert agent.listing() == ["vault.hcl"]
    ok(agent.up(NEW_TEXT))
    assert agent.path.read_text() == MARKER + NEW_TEXT and agent.reloads() == 2


def test_a_local_file_without_reload_is_written_once_too(agent: Agent, shell: str) -> None:
    file = DeliveredFile(str(agent.path), OWNER, "nomad-vault-setup:nomadConfigDir (x)")
    create = script(write_lines(file))
    ok(agent.run(create, MARKER + SERVER_TEXT))
    before = agent.identity()
    ok(agent.run(create, MARKER + SERVER_TEXT))
    assert agent.identity() == before
    ok(agent.run(create, MARKER + NEW_TEXT))
    assert agent.path.read_text() == MARKER + NEW_TEXT
    assert agent.listing() == ["vault.hcl"], "no pending file without a reload command"


def test_a_failed_reload_is_retried_by_the_next_run_though_the_text_is_the_same(
    agent: Agent,
) -> None:
    ok(agent.up())
    agent.flag.unlink()  # the agent's reload breaks
    failed = agent.up(NEW_TEXT)
    assert failed.returncode != 0
    assert f"its reload command failed: {agent.file.reload_command}" in failed.stderr
    assert "the next pulumi up runs the reload again" in failed.stderr
    assert agent.path.read_text() == MARKER + NEW_TEXT, "the file is written all the same"
    assert agent.listing() == ["vault.hcl", "vault.hcl" + PENDING_SUFFIX]

    written = agent.identity()
    assert agent.up(NEW_TEXT).returncode != 0, "still failing: still pending"
    agent.flag.touch()  # the operator repairs the agent
    ok(agent.up(NEW_TEXT))
    assert agent.reloads() == 2, "reloaded although the text was already there"
    assert agent.identity() == written, "the identical file is not rewritten"
    assert agent.listing() == ["vault.hcl"], "no longer pending"
    ok(agent.up(NEW_TEXT))
    assert agent.reloads() == 2, "and once done, an unchanged run reloads nothing again"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(agent: Agent) -> None:
    ok(agent.up())
    before = agent.identity()
    failing = script(write_lines(agent.file)).replace('cat > "$tmp"', 'false > "$tmp"')
    assert failing != script(write_lines(agent.file))
    assert agent.run(failing, MARKER + NEW_TEXT).returncode != 0
    assert agent.identity() == before
    assert agent.listing() == ["vault.hcl"] and agent.reloads() == 1


@pytest.mark.parametrize(
    "existing",
    [
        "# my own vault block\nvault { enabled = false }\n",
        marker_line("nomad-vault-setup/other-stack") + "\nvault {}\n",
        "",
    ],
    ids=["hand-written", "another-stack", "empty"],
)
def test_a_file_this_stack_did_not_write_is_refused_and_left_as_it_was(
    agent: Agent, existing: str
) -> None:
    agent.path.write_text(existing)
    os.chmod(agent.path, 0o600)
    before = agent.identity()
    refused = agent.up()
    assert refused.returncode != 0
    assert f"refusing to overwrite {agent.path} on agent:22" in refused.stderr
    assert "the configPath of the nomadAgents entry for agent:22" in refused.stderr
    assert "nomad-vault-setup:replaceExistingFiles" in refused.stderr
    assert agent.identity() == before
    assert agent.listing() == ["vault.hcl"], "no temp, pending or backup file"
    assert agent.reloads() == 0


def test_replace_existing_files_keeps_the_original_once_and_destroy_puts_it_back(
    agent: Agent,
) -> None:
    original = "# hand-written\nvault { enabled = false }\n"
    agent.path.write_text(original)
    os.chmod(agent.path, 0o600)
    if os.geteuid() == 0:
        os.chown(agent.path, 4321, 4321)  # `cp -p` keeps the owner too (as root)
    owner = (agent.path.stat().st_uid, agent.path.stat().st_gid)
    agent.replace_existing = True
    backup = Path(str(agent.path) + BACKUP_SUFFIX)

    ok(agent.up())
    assert agent.path.read_text() == MARKER + SERVER_TEXT
    assert agent.path.stat().st_mode & 0o777 == 0o644
    assert backup.read_text() == original
    assert backup.stat().st_mode & 0o777 == 0o600
    assert (backup.stat().st_uid, backup.stat().st_gid) == owner
    assert agent.listing() == ["vault.hcl", backup.name] and agent.reloads() == 1

    ok(agent.up(NEW_TEXT))  # ours now: rewritten, and the kept original stays the original
    assert agent.path.read_text() == MARKER + NEW_TEXT
    assert backup.read_text() == original and agent.reloads() == 2

    result = ok(agent.destroy())
    assert agent.path.read_text() == original
    assert agent.path.stat().st_mode & 0o777 == 0o600
    assert (agent.path.stat().st_uid, agent.path.stat().st_gid) == owner
    assert agent.listing() == ["vault.hcl"], "backup moved back"
    assert agent.reloads() == 3, "the agent reloads its original config"
    assert result.stderr == ""


def assert_backup_refusal(agent: Agent, refused: subprocess.CompletedProcess[str]) -> None:
    """`up` refused to replace the foreign file because the backup's name is taken, naming
    both paths and the ways out."""
    assert refused.returncode != 0
    said = refused.stderr
    assert f"refusing to replace {agent.path} on agent:22: " in said
    assert f"and {agent.backup} already exists" in said
    assert "nothing was changed" in said and "move away the one to keep" in said


def test_a_foreign_file_is_refused_when_an_older_backup_is_already_kept(agent: Agent) -> None:
    """The operator's current file must not be overwritten unkept, nor the stale backup be
    what destroy puts back: up refuses, touching neither, until one of them is moved away."""
    agent.replace_existing = True
    agent.path.write_text("OPERATOR-CURRENT-FILE\n")
    agent.backup.write_text("STALE-OLD\n")
    before = agent.identity()

    assert_backup_refusal(agent, agent.up())
    assert agent.identity() == before
    assert agent.backup.read_text() == "STALE-OLD\n"
    assert agent.listing() == ["vault.hcl", agent.backup.name], "no temp or pending file"
    assert agent.reloads() == 0

    ok(agent.destroy())  # nothing of ours to remove: both stay
    assert agent.path.read_text() == "OPERATOR-CURRENT-FILE\n"
    assert agent.backup.read_text() == "STALE-OLD\n"

    agent.backup.unlink()  # the operator throws the stale one away
    ok(agent.up())
    assert agent.backup.read_text() == "OPERATOR-CURRENT-FILE\n"
    ok(agent.destroy())
    assert agent.path.read_text() == "OPERATOR-CURRENT-FILE\n"
    assert agent.listing() == ["vault.hcl"]


def test_a_hand_edit_after_a_replacing_up_is_refused_not_lost(agent: Agent) -> None:
    agent.replace_existing = True
    agent.path.write_text("original\n")
    ok(agent.up())
    agent.path.write_text("edited by hand\n")  # the marker is gone: foreign again
    before = agent.identity()

    assert_backup_refusal(agent, agent.up(NEW_TEXT))
    assert agent.identity() == before, "the hand edit is neither overwritten nor lost"
    assert agent.backup.read_text() == "original\n"
    assert agent.reloads() == 1

    result = ok(agent.destroy())  # leaves both, and says where the original is
    assert agent.path.read_text() == "edited by hand\n"
    assert agent.backup.read_text() == "original\n"
    assert f"still at {agent.backup}" in result.stderr


@pytest.mark.parametrize("kind", ["directory", "file", "dangling"])
def test_a_symlink_at_the_backup_name_is_refused_not_followed(
    agent: Agent, tmp_path: Path, kind: str
) -> None:
    """`-e` follows a link (a link to a directory "exists", so no backup was made; `mv` would
    move the copy into the directory); a dangling link does not "exist" at all."""
    elsewhere = tmp_path / "elsewhere"
    if kind == "directory":
        elsewhere.mkdir()
    elif kind == "file":
        elsewhere.write_text("someone else's\n")
    agent.backup.symlink_to(elsewhere)
    agent.replace_existing = True
    agent.path.write_text("OPERATOR-CURRENT-FILE\n")
    before = agent.identity()

    assert_backup_refusal(agent, agent.up())
    assert agent.identity() == before
    assert agent.backup.is_symlink() and os.readlink(agent.backup) == str(elsewhere)
    if kind == "directory":
        assert list(elsewhere.iterdir()) == []
    if kind == "file":
        assert elsewhere.read_text() == "someone else's\n"
    assert agent.listing() == ["vault.hcl", agent.backup.name] and agent.reloads() == 0


def release_fifo(path: Path) -> None:
    """Let a reader that a failing run left blocked on the FIFO at `path` go (it reads EOF)."""
    with contextlib.suppress(OSError):  # no reader: nothing to release
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


def assert_not_regular_refusal(agent: Agent, refused: subprocess.CompletedProcess[str]) -> None:
    assert refused.returncode != 0
    said = refused.stderr
    assert f"refusing to write {agent.path} on agent:22: it is a symbolic link or not a" in said
    assert "nothing was changed" in said
    assert "the configPath of the nomadAgents entry for agent:22" in said


@pytest.mark.parametrize("replace_existing", [False, True], ids=["refusing", "replacing"])
@pytest.mark.parametrize("kind", ["link-to-ours", "link-to-directory", "fifo", "directory"])
def test_a_target_that_is_not_a_regular_file_is_refused_unread(
    agent: Agent, tmp_path: Path, kind: str, replace_existing: bool
) -> None:
    """Not followed (a link, even to a file with our marker, could lead anywhere; with `mv`, a
    link to a directory would take our file into it) and not read (a FIFO blocks `head`)."""
    agent.replace_existing = replace_existing
    elsewhere = tmp_path / "elsewhere"
    if kind == "link-to-ours":
        elsewhere.write_text(MARKER + "old\n")
        agent.path.symlink_to(elsewhere)
    elif kind == "link-to-directory":
        elsewhere.mkdir()
        agent.path.symlink_to(elsewhere)
    elif kind == "fifo":
        os.mkfifo(agent.path)
    else:
        agent.path.mkdir()
    try:
        assert_not_regular_refusal(agent, agent.up())
    finally:
        if kind == "fifo":
            release_fifo(agent.path)
    assert agent.listing() == ["vault.hcl"], "no temp, pending or backup file"
    assert agent.reloads() == 0
    if kind.startswith("link"):
        assert agent.path.is_symlink() and os.readlink(agent.path) == str(elsewhere)
    if kind == "link-to-ours":
        assert elsewhere.read_text() == MARKER + "old\n"
    if kind == "link-to-directory":
        assert list(elsewhere.iterdir()) == []


def test_destroy_leaves_a_symlink_at_either_name_and_says_so(agent: Agent, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(MARKER + SERVER_TEXT)  # even one holding our text
    agent.path.symlink_to(elsewhere)
    result = ok(agent.destroy())
    assert agent.path.is_symlink() and elsewhere.read_text() == MARKER + SERVER_TEXT
    assert f"left {agent.path} on agent:22 as it is: it is a symbolic link" in result.stderr

    agent.path.unlink()
    ok(agent.up())  # ours again; then something puts a link at the backup's name
    agent.backup.symlink_to(elsewhere)
    result = ok(agent.destroy())
    assert not agent.path.exists(), "ours is removed"
    assert agent.backup.is_symlink(), "but the link is not put back in its place"
    assert f"left {agent.backup} as it is: it is a symbolic link" in result.stderr


def test_a_symlink_at_the_pending_name_is_not_written_through(agent: Agent, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    agent.pending.symlink_to(victim)
    ok(agent.up())
    assert victim.read_text() == "precious\n"
    assert agent.listing() == ["vault.hcl"] and agent.reloads() == 1


def test_a_reload_command_that_is_not_valid_shell_fails_alone_and_is_retried(
    agent: Agent,
) -> None:
    """Its `)` neither closes a subshell of the script nor runs half of the command: `sh`
    rejects the command as a whole, the reload fails, and the script's own steps hold (the
    file is written, the reload stays pending, the next run retries it)."""
    agent.reload_command = f"echo reloaded >> {shlex.quote(str(agent.log))} )"
    failed = agent.up()
    assert failed.returncode != 0
    assert "syntax error" in failed.stderr.lower()
    assert f"is written, but its reload command failed: {agent.reload_command} --" in failed.stderr
    assert agent.reloads() == 0, "no part of the broken command ran"
    assert agent.path.read_text() == MARKER + SERVER_TEXT
    assert agent.listing() == ["vault.hcl", agent.pending.name]

    agent.reload_command = ""  # the operator fixes it: the same text, the reload runs now
    ok(agent.up())
    assert agent.reloads() == 1 and agent.listing() == ["vault.hcl"]


@pytest.mark.parametrize(
    ("command", "succeeds"),
    [
        ("false ) || ( true", False),  # would close the script's subshell and open another
        ("exit 0", True),  # leaves only its own shell: the script goes on
        ("cd / && exit 3", False),
    ],
)
def test_a_reload_command_cannot_change_the_script_around_it(
    agent: Agent, command: str, succeeds: bool
) -> None:
    agent.reload_command = command
    result = agent.up()
    assert (result.returncode == 0) is succeeds, result.stderr
    assert agent.path.read_text() == MARKER + SERVER_TEXT
    pending = [] if succeeds else [agent.pending.name]
    assert agent.listing() == ["vault.hcl", *pending]


def test_a_reload_command_reaches_sh_exactly_as_written(agent: Agent) -> None:
    log = shlex.quote(str(agent.log))
    agent.reload_command = f"""printf '%s|%s\\n' "it's" '$HOME "x"' >> {log} # a comment"""
    ok(agent.up())
    assert agent.log.read_text() == 'it\'s|$HOME "x"\n'


def test_destroy_removes_our_file_and_a_pending_reload(agent: Agent) -> None:
    ok(agent.up())
    agent.flag.unlink()
    assert agent.up(NEW_TEXT).returncode != 0  # leaves a pending reload
    agent.flag.touch()
    ok(agent.destroy())
    assert agent.listing() == []
    assert agent.reloads() == 2


def test_destroy_leaves_a_file_replaced_by_hand_and_says_so(agent: Agent) -> None:
    agent.replace_existing = True
    agent.path.write_text("original\n")
    ok(agent.up())
    agent.path.write_text("replaced by hand\n")
    result = ok(agent.destroy())
    assert agent.path.read_text() == "replaced by hand\n"
    assert f"left {agent.path} on agent:22 as it is" in result.stderr
    backup = Path(str(agent.path) + BACKUP_SUFFIX)
    assert backup.read_text() == "original\n", "the kept original is not thrown away either"
    assert f"still at {backup}" in result.stderr
    assert agent.reloads() == 2


def test_destroy_of_another_stacks_file_leaves_it(agent: Agent) -> None:
    ok(agent.up())
    other = Agent(agent.shell, agent.dir, agent.log, agent.flag, owner="nomad-vault-setup/other")
    result = ok(other.destroy())
    assert agent.path.read_text() == MARKER + SERVER_TEXT
    assert "left" in result.stderr


def settings_for(directory: Path, **more: Any) -> Settings:
    return Settings.model_validate(
        {"nomadConfigDir": str(directory), "nomadVaultAddress": "https://vault.test:8200", **more}
    )


def test_local_file_problems_name_each_foreign_file_and_the_settings(tmp_path: Path) -> None:
    directory = tmp_path / "nomad.d"
    assert local_file_problems(settings_for(directory), OWNER) == [], "nothing there yet"
    directory.mkdir()
    (directory / "vault-client.hcl").write_text(MARKER + "vault {}\n")
    assert local_file_problems(settings_for(directory), OWNER) == [], "ours"
    (directory / "vault-server.hcl").write_text("vault { enabled = true }\n")
    (problem,) = local_file_problems(settings_for(directory), OWNER)
    assert problem.startswith(f"nomad-vault-setup:nomadConfigDir = '{directory}': ")
    assert f"{directory}/vault-server.hcl already exists" in problem
    assert "nomad-vault-setup:replaceExistingFiles" in problem
    problems = local_file_problems(settings_for(directory), "nomad-vault-setup/other")
    assert len(problems) == 2, "a file of another stack is foreign too"
    replacing = settings_for(directory, replaceExistingFiles=True)
    assert local_file_problems(replacing, OWNER) == []
    assert (directory / "vault-server.hcl").read_text() == "vault { enabled = true }\n"


def test_local_file_problems_default_to_this_programs_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pulumi, "get_organization", lambda: "organization")
    monkeypatch.setattr(pulumi, "get_project", lambda: "nomad-vault-setup")
    monkeypatch.setattr(pulumi, "get_stack", lambda: "unit")
    (tmp_path / "vault-server.hcl").write_text(MARKER)
    (tmp_path / "vault-client.hcl").write_text(
        marker_line("organization/nomad-vault-setup/prod") + "\n"
    )
    (problem,) = local_file_problems(settings_for(tmp_path))
    assert "vault-client.hcl" in problem


# local_file_problems in a child process, for what may block it or read without end: a
# timeout stops a hang and a memory limit an endless read, so such a bug fails the test.
_CHILD = """
import json, resource, sys
from nomad_vault_setup.agent_files import local_file_problems
from nomad_vault_setup.config import ClusterSettings as Settings
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
settings = Settings.model_validate(json.loads(sys.argv[1]))
print(json.dumps(local_file_problems(settings, sys.argv[2])))
"""


def problems_in_a_child(directory: Path, **more: Any) -> list[str]:
    config = {"nomadConfigDir": str(directory), "nomadVaultAddress": "https://vault.test:8200"}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(config | more), OWNER],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("replace_existing", [False, True], ids=["refusing", "replacing"])
def test_local_file_problems_neither_block_nor_follow_a_special_file(
    tmp_path: Path, replace_existing: bool
) -> None:
    """A FIFO (opening it for reading blocks) and a link to /dev/zero (it never ends) are
    reported, unread, as what `up` refuses: no regular file."""
    os.mkfifo(tmp_path / "vault-server.hcl")
    (tmp_path / "vault-client.hcl").symlink_to("/dev/zero")
    try:
        problems = problems_in_a_child(tmp_path, replaceExistingFiles=replace_existing)
    finally:
        release_fifo(tmp_path / "vault-server.hcl")
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"{tmp_path}/{name} is not a regular file (a symbolic link, directory, FIFO or device):"
        " pulumi up reads and replaces only regular files, so it would refuse it. Remove it, or"
        " choose another directory."
        for name in ("vault-server.hcl", "vault-client.hcl")
    ]


def test_local_file_problems_do_not_follow_a_link_to_a_file_of_ours(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.hcl"
    elsewhere.write_text(MARKER + SERVER_TEXT)
    directory = tmp_path / "nomad.d"
    directory.mkdir()
    (directory / "vault-server.hcl").symlink_to(elsewhere)
    (directory / "vault-client.hcl").mkdir()
    problems = local_file_problems(settings_for(directory), OWNER)
    assert len(problems) == 2
    assert all("is not a regular file" in problem for problem in problems)


def test_local_file_problems_read_only_the_start_of_a_file(tmp_path: Path) -> None:
    """A huge file without a newline (sparse: it takes no space) is judged by its start."""
    with open(tmp_path / "vault-server.hcl", "wb") as huge:
        huge.truncate(1 << 34)
    (problem,) = problems_in_a_child(tmp_path)
    assert f"{tmp_path}/vault-server.hcl already exists and does not start with" in problem


def test_local_file_problems_with_replace_existing_files_name_a_taken_backup(
    tmp_path: Path,
) -> None:
    replacing = settings_for(tmp_path, replaceExistingFiles=True)
    server, client = tmp_path / "vault-server.hcl", tmp_path / "vault-client.hcl"
    server.write_text("OPERATOR-CURRENT-FILE\n")
    client.write_text(MARKER + "vault {}\n")
    assert local_file_problems(replacing, OWNER) == [], "a foreign file is kept: no problem"

    Path(str(client) + BACKUP_SUFFIX).write_text("kept\n")
    assert local_file_problems(replacing, OWNER) == [], "ours, with its backup: as it should be"
    Path(str(server) + BACKUP_SUFFIX).symlink_to(tmp_path / "nowhere")  # even a dangling link
    (problem,) = local_file_problems(replacing, OWNER)
    assert f"{server} already exists and does not start with" in problem
    assert f"and {server}{BACKUP_SUFFIX} exists too" in problem
    assert "pulumi up would refuse" in problem
    assert server.read_text() == "OPERATOR-CURRENT-FILE\n"
