"""The one local-stack helper: the engine's environment, the CLI check, stacks opened without
being selected, timed raw commands, and stack files edited as a user would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from pulumi import automation as auto

from devtools import workspace
from devtools.openbao import DevServer
from devtools.project_copy import PROJECT_DIR

SERVER = DevServer("http://127.0.0.1:8200", "s.dev", 123, "/tmp/openbao.log")
CALLER = {
    "PATH": "/usr/bin",
    "PULUMI_CONFIG_PASSPHRASE_FILE": "/home/u/pass",
    "PULUMI_ACCESS_TOKEN": "pul-abc",
    "PULUMI_SKIP_CHECKPOINTS": "true",
    "VAULT_ADDR": "https://vault.prod:8200",
    "VAULT_TOKEN": "prod-token",
    "VAULT_NAMESPACE": "admin",
}


def test_every_command_skips_pips_version_check() -> None:
    for env in (
        workspace.pulumi_env(base=CALLER),
        workspace.pulumi_env(state_dir=Path("/s"), skip_checkpoints=True, base=CALLER),
    ):
        assert env["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"
        assert env["PULUMI_SKIP_UPDATE_CHECK"] == "true"


def test_only_throwaway_stacks_skip_checkpoints_whatever_the_shell_says() -> None:
    assert workspace.pulumi_env(base=CALLER)["PULUMI_SKIP_CHECKPOINTS"] == "false"
    throwaway = workspace.pulumi_env(state_dir=Path("/s"), skip_checkpoints=True, base=CALLER)
    assert throwaway["PULUMI_SKIP_CHECKPOINTS"] == "true"


def test_a_real_stack_keeps_the_callers_backend_passphrase_and_vault() -> None:
    env = workspace.pulumi_env(base=CALLER)
    assert not set(env) & set(CALLER) - {"PULUMI_SKIP_CHECKPOINTS"}
    assert "PULUMI_BACKEND_URL" not in env and "PULUMI_CONFIG_PASSPHRASE" not in env


def test_a_local_stack_reaches_only_its_own_backend_and_server() -> None:
    env = workspace.pulumi_env(
        state_dir=Path("/p/.state"), passphrase="public", vault=SERVER, base=CALLER
    )
    assert env["PULUMI_BACKEND_URL"] == "file:///p/.state"
    assert env["PULUMI_CONFIG_PASSPHRASE"] == "public"
    # Laid over the caller's environment: blank is how a variable is taken away.
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == env["PULUMI_ACCESS_TOKEN"] == ""
    assert env["VAULT_NAMESPACE"] == ""
    assert (env["VAULT_ADDR"], env["VAULT_TOKEN"]) == (SERVER.address, SERVER.token)
    assert "PATH" not in env
    without_server = workspace.pulumi_env(state_dir=Path("/p/.state"), base=CALLER)
    assert without_server["VAULT_ADDR"] == without_server["VAULT_TOKEN"] == ""


def test_a_missing_cli_is_named_with_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(workspace.PulumiMissing) as missing:
        workspace.require_cli()
    assert "not on PATH" in str(missing.value)
    assert "https://www.pulumi.com/docs/install/" in str(missing.value)
    with pytest.raises(workspace.PulumiMissing):
        workspace.open_stack("dev", tmp_path, {})


def test_configure_replaces_the_programs_settings_and_keeps_the_rest(tmp_path: Path) -> None:
    stack = SimpleNamespace(name="org/e2e", workspace=SimpleNamespace(work_dir=str(tmp_path)))
    (tmp_path / "Pulumi.e2e.yaml").write_text(
        yaml.safe_dump(
            {
                "config": {
                    "vault:address": "http://127.0.0.1:8200",
                    "vault:token": {"secure": "v1:token"},
                    "nomad-vault-setup:tokenPeriod": "1h",
                    "nomad-vault-setup:agentsPrivateKey": {"secure": "v1:key"},
                },
                "encryptionsalt": "v1:salt",
            }
        )
    )
    workspace.configure(stack, jwksUrl="http://nomad/jwks", clusters=[{"name": "east"}])
    assert yaml.safe_load((tmp_path / "Pulumi.e2e.yaml").read_text()) == {
        "config": {
            "vault:address": "http://127.0.0.1:8200",
            "vault:token": {"secure": "v1:token"},
            "nomad-vault-setup:agentsPrivateKey": {"secure": "v1:key"},
            "nomad-vault-setup:jwksUrl": "http://nomad/jwks",
            "nomad-vault-setup:clusters": [{"name": "east"}],
        },
        "encryptionsalt": "v1:salt",
    }


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project holding only Pulumi.yaml, and a local stack environment for it."""
    work_dir = tmp_path / "project"
    work_dir.mkdir()
    shutil.copy2(PROJECT_DIR / "Pulumi.yaml", work_dir / "Pulumi.yaml")
    (tmp_path / "state").mkdir()
    return work_dir, workspace.pulumi_env(state_dir=tmp_path / "state", passphrase="test")


def cli(work_dir: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(
        ["pulumi", *args, "--non-interactive"],
        cwd=work_dir,
        env=os.environ | env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_stacks_are_created_and_opened_without_changing_the_users_selection(
    project: tuple[Path, dict[str, str]],
) -> None:
    work_dir, env = project
    cli(work_dir, env, "stack", "init", "mine")  # selects it, as `pulumi stack init` does
    created = workspace.open_stack("throwaway", work_dir, env, create=True)
    opened = workspace.open_stack("throwaway", work_dir, env)
    assert created.name == opened.name == "throwaway"
    stacks = {
        entry["name"]: entry["current"]
        for entry in json.loads(cli(work_dir, env, "stack", "ls", "--json"))
    }
    assert stacks == {"mine": True, "throwaway": False}

    with pytest.raises(workspace.StackMissing, match=r"no stack prod in file://"):
        workspace.open_stack("prod", work_dir, env)


def test_a_raw_command_is_timed_and_fails_as_asked(project: tuple[Path, dict[str, str]]) -> None:
    work_dir, env = project
    stack = workspace.open_stack("timed", work_dir, env, create=True)
    stack.set_config("nomad-vault-setup:jwksUrl", auto.ConfigValue("http://nomad/jwks"))
    found = workspace.run(stack, "config", "get", "nomad-vault-setup:jwksUrl")
    assert found.ok and found.seconds > 0 and "http://nomad/jwks" in found.output
    missing = workspace.run(stack, "config", "get", "nomad-vault-setup:nope", check=False)
    assert not missing.ok and "configuration key 'nope' not found" in missing.output
    with pytest.raises(auto.CommandError):
        workspace.run(stack, "config", "get", "nomad-vault-setup:nope")
