"""The dev stack's pure helpers: generated config, engine environment, port logic."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from devtools import dev_stack, proc
from devtools.openbao import DevServer
from devtools.project_copy import PROJECT_DIR

JWKS = "http://127.0.0.1:4242/.well-known/jwks.json"
SERVER = DevServer("http://127.0.0.1:8200", "root", 123, "/tmp/openbao.log")


def test_generated_config_keeps_salt_and_keys_and_sets_jwks_url() -> None:
    tracked = (PROJECT_DIR / "Pulumi.dev.yaml").read_text()
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


def test_the_dev_env_forces_the_dev_passphrase_backend_and_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "PULUMI_CONFIG_PASSPHRASE": "the user's own",
        "PULUMI_CONFIG_PASSPHRASE_FILE": "/home/u/pass",
        "PULUMI_BACKEND_URL": "https://api.pulumi.com",
        "VAULT_ADDR": "https://vault.prod:8200",
        "VAULT_TOKEN": "prod-token",
        "VAULT_NAMESPACE": "admin",
    }.items():
        monkeypatch.setenv(name, value)
    layout = dev_stack.Layout(Path("/p"))
    env = dev_stack.dev_env(layout, SERVER)
    assert env["PULUMI_CONFIG_PASSPHRASE"] == dev_stack.PASSPHRASE
    assert env["PULUMI_CONFIG_PASSPHRASE_FILE"] == ""
    assert env["PULUMI_BACKEND_URL"] == "file:///p/.state"
    assert (env["VAULT_ADDR"], env["VAULT_TOKEN"]) == (SERVER.address, SERVER.token)
    assert vault_settings(env) == {"VAULT_ADDR", "VAULT_TOKEN"}, "VAULT_NAMESPACE is blanked"
    assert env["PULUMI_SKIP_CHECKPOINTS"] == "true", "the dev stack is a throwaway"
    assert vault_settings(dev_stack.dev_env(layout, None)) == set(), "no server: none at all"


def vault_settings(env: dict[str, str]) -> set[str]:
    """The VAULT_* variables an environment sets to something (empty counts as unset)."""
    return {name for name, value in env.items() if name.startswith("VAULT_") and value}


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
