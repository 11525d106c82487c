"""Delivering the agent config under mocks: which commands, with which names, scripts,
options and connection; and the write script itself, run for real by `sh`."""

import json
import os
import subprocess
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

from components.delivery import (
    BACKUP_SUFFIX,
    PENDING_SUFFIX,
    DeliveredFile,
    delete_lines,
    local_file_problems,
    marker_line,
    script,
    write_lines,
)
from components.settings import DEFAULT_RELOAD_COMMAND, Settings
from components.vault_setup import COMPONENT_TYPE
from tests.hcl import parse_hcl
from tests.unit.conftest import resolve

OWNER = "nomad-vault-setup/unit"  # the project and stack the unit runner gives the program
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
    assert f"\nstep=reload\n( {DEFAULT_RELOAD_COMMAND}\n)\n" in server["create"]
    connection = server["connection"]["value"]  # the SDK's secret wrapper
    assert connection["host"] == "nomad-1.internal"
    assert (connection["port"], connection["user"], connection["privateKey"]) == (22, "root", KEY)
    assert "hostKey" not in connection

    pinned = agents["nomad-agent-10.0.0.2-2222/etc/nomad.d/vault.hcl"]["connection"]["value"]
    assert (pinned["port"], pinned["user"], pinned["hostKey"]) == (2222, "ops", HOST_KEY)

    client = agents["nomad-agent-client-1.internal-22/etc/nomad/conf.d/vault.hcl"]
    assert client["stdin"] == MARKER + run.exports["nomad_client_config"]
    assert "\n( sudo systemctl restart nomad-client\n)\n" in client["create"]
    assert "/etc/nomad/conf.d/vault.hcl.reload-pending" in client["create"]
    assert "\n( sudo systemctl restart nomad-client\n)\n" in client["delete"]
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


def test_commands_are_children_of_the_component_and_servers_go_one_at_a_time(
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
    def file(self) -> DeliveredFile:
        reload = f"test -e {self.flag} && echo reloaded >> {self.log}"
        setting = "the configPath of the nomadAgents entry for agent:22"
        return DeliveredFile(
            str(self.path), self.owner, setting, "agent:22", self.replace_existing, reload
        )

    def run(self, script_text: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.shell, "-c", script_text], input=stdin, text=True, capture_output=True
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
    assert backup.read_text() == original and agent.reloads() == 2
    agent.path.write_text("edited by hand\n")  # foreign again: replaced, but kept only once
    ok(agent.up(NEW_TEXT))
    assert agent.path.read_text() == MARKER + NEW_TEXT
    assert backup.read_text() == original and agent.reloads() == 3

    result = ok(agent.destroy())
    assert agent.path.read_text() == original
    assert agent.path.stat().st_mode & 0o777 == 0o600
    assert (agent.path.stat().st_uid, agent.path.stat().st_gid) == owner
    assert agent.listing() == ["vault.hcl"], "backup moved back"
    assert agent.reloads() == 4, "the agent reloads its original config"
    assert result.stderr == ""


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
    monkeypatch.setattr(pulumi, "get_project", lambda: "nomad-vault-setup")
    monkeypatch.setattr(pulumi, "get_stack", lambda: "unit")
    (tmp_path / "vault-server.hcl").write_text(MARKER)
    (tmp_path / "vault-client.hcl").write_text(marker_line("nomad-vault-setup/prod") + "\n")
    (problem,) = local_file_problems(settings_for(tmp_path))
    assert "vault-client.hcl" in problem
