"""The committed stack files: valid settings, protection where it matters, no secrets."""

import pytest
import yaml

from nomad_vault_setup.config import PROJECT, parse_settings
from nomad_vault_setup.provider_guard import token_binding_problem
from tests.unit.conftest import PROJECT_DIR


def stack_config(stack: str) -> dict:
    return yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()).get("config") or {}


def project_settings(config: dict) -> dict:
    prefix = f"{PROJECT}:"
    return {
        key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)
    }


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_staging_and_prod_name_their_own_server_and_are_protected(stack: str) -> None:
    config = stack_config(stack)
    address = config["vault:address"]
    assert f".{stack}." in address
    settings = parse_settings(project_settings(config) | {"nomadVaultAddress": address})
    assert all(cluster.settings.protect for cluster in settings.clusters)
    # Until the operator sets the stack's own token, the program refuses the stack.
    assert token_binding_problem(stack, address, None, False)
    assert token_binding_problem(stack, address, "a-token", True) is None


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_no_stack_file_holds_a_token_or_any_secret(stack: str) -> None:
    text = (PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text()
    config = stack_config(stack)
    assert "vault:token" not in config
    assert "secure:" not in text


def test_the_dev_stack_is_not_protected_and_names_no_server() -> None:
    config = stack_config("dev")
    assert "vault:address" not in config, "make up passes the dev server through VAULT_ADDR"
    settings = parse_settings(
        project_settings(config) | {"nomadVaultAddress": "http://127.0.0.1:1"}
    )
    assert not settings.clusters[0].settings.protect
