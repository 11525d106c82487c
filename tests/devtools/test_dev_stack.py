"""The dev stack's pure helpers: generated config, pulumi environment, stack and port logic."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from devtools import dev_stack, proc
from devtools.openbao import DevServer

REPO_ROOT = Path(__file__).resolve().parents[2]
JWKS = "http://127.0.0.1:4242/.well-known/jwks.json"
SERVER = DevServer("http://127.0.0.1:8200", "root", 123, "/tmp/openbao.log")


def test_generated_config_keeps_salt_and_keys_and_sets_jwks_url() -> None:
    tracked = (REPO_ROOT / "Pulumi.dev.yaml").read_text()
    generated = yaml.safe_load(dev_stack.dev_config_text(tracked, JWKS))
    original = yaml.safe_load(tracked)
    assert generated["encryptionsalt"] == original["encryptionsalt"]
    assert generated["config"] == {**original["config"], dev_stack.JWKS_URL_KEY: JWKS}


def test_generated_config_overrides_a_tracked_jwks_url_and_keeps_secure_values() -> None:
    tracked = (
        "config:\n"
        "  nomad-vault-setup:jwksUrl: https://nomad.example:4646/.well-known/jwks.json\n"
        "  vault:token:\n"
        "    secure: v1:abc\n"
        "encryptionsalt: v1:salt\n"
    )
    generated = yaml.safe_load(dev_stack.dev_config_text(tracked, JWKS))
    assert generated == {
        "config": {dev_stack.JWKS_URL_KEY: JWKS, "vault:token": {"secure": "v1:abc"}},
        "encryptionsalt": "v1:salt",
    }


@pytest.mark.parametrize("tracked", ["", "config:\n", "encryptionsalt: v1:salt\n"])
def test_generated_config_without_config_section(tracked: str) -> None:
    generated = yaml.safe_load(dev_stack.dev_config_text(tracked, JWKS))
    assert generated["config"] == {dev_stack.JWKS_URL_KEY: JWKS}


def test_generated_config_says_it_is_generated() -> None:
    assert dev_stack.dev_config_text("", JWKS).startswith("# GENERATED")


def test_generated_config_rejects_a_non_mapping() -> None:
    with pytest.raises(dev_stack.DevStackError):
        dev_stack.dev_config_text("- a list\n", JWKS)


def test_env_forces_the_dev_passphrase_backend_and_server() -> None:
    user_env = {
        "PATH": "/usr/bin",
        "PULUMI_CONFIG_PASSPHRASE": "the user's own",
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/home/u/pass",
        "PULUMI_BACKEND_URL": "https://api.pulumi.com",
        "VAULT_ADDR": "https://vault.prod:8200",
        "VAULT_TOKEN": "prod-token",
        "VAULT_NAMESPACE": "admin",
    }
    env = dev_stack.pulumi_env(user_env, Path("/p/.state"), SERVER)
    assert env["PULUMI_CONFIG_PASSPHRASE"] == dev_stack.PASSPHRASE
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in env
    assert env["PULUMI_BACKEND_URL"] == "file:///p/.state"
    assert (env["VAULT_ADDR"], env["VAULT_TOKEN"]) == (SERVER.address, SERVER.token)
    assert "VAULT_NAMESPACE" not in env
    assert env["PATH"] == "/usr/bin"
    assert user_env["PULUMI_CONFIG_PASSPHRASE"] == "the user's own"  # input left alone


def test_env_without_a_server_sets_no_vault_address() -> None:
    env = dev_stack.pulumi_env({"VAULT_ADDR": "https://vault.prod:8200"}, Path("/p/.state"), None)
    assert not [name for name in env if name.startswith("VAULT_")]
    assert env["PULUMI_CONFIG_PASSPHRASE"] == dev_stack.PASSPHRASE


def test_pulumi_command_targets_the_dev_stack_non_interactively() -> None:
    command = dev_stack.pulumi_command("up", "--yes", config_file=Path("/p/.dev/Pulumi.dev.yaml"))
    assert command[:3] == ["pulumi", "up", "--yes"]
    assert command[command.index("--stack") + 1] == "dev"
    assert "--non-interactive" in command
    assert command[command.index("--config-file") + 1] == "/p/.dev/Pulumi.dev.yaml"
    assert "--config-file" not in dev_stack.pulumi_command("stack", "init")


@pytest.mark.parametrize(
    ("listing", "exists"),
    [
        ("[]", False),
        ("", False),
        ('[{"name": "prod"}]', False),
        ('[{"name": "dev", "current": false}]', True),
        ('[{"name": "organization/nomad-vault-setup/dev"}]', True),
        ('[{"name": "organization/nomad-vault-setup/dev2"}]', False),
    ],
)
def test_stack_exists(listing: str, exists: bool) -> None:
    assert dev_stack.stack_exists(listing) is exists


@pytest.mark.parametrize(
    ("url", "free", "port"),
    [
        ("http://127.0.0.1:8200", True, 8200),
        ("http://127.0.0.1:8200", False, None),
        ("http://127.0.0.1:4646/.well-known/jwks.json", True, 4646),
        ("http://127.0.0.1", True, None),
        (None, True, None),
        ("http://[::1", True, None),
    ],
)
def test_reusable_port(url: str | None, free: bool, port: int | None) -> None:
    assert proc.reusable_port(url, lambda _port: free) == port


def test_port_free_sees_a_listener() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        assert not proc.port_free(taken)
