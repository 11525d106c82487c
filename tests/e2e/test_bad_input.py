"""Bad input through the engine: refused before Vault is touched, or failing clearly and then
converging once fixed."""

import pytest
from pulumi import automation as auto

from devtools.proc import free_port
from tests.e2e.harness import Scenario, changes

BUILTIN_POLICIES = ["default", "root"]


def auth_mounts(scenario: Scenario) -> list[str]:
    return sorted(scenario.vault.sys.list_auth_methods()["data"])


def policies(scenario: Scenario) -> list[str]:
    return sorted(scenario.vault.sys.list_acl_policies()["data"]["keys"])


def test_invalid_config_fails_up_naming_every_bad_key_and_creates_nothing(new_scenario) -> None:
    scenario = new_scenario()
    scenario.configure(
        jwksUrl="ftp://nomad:4646/jwks", tokenPeriod="0s", kvMount="/", roleName="A/B"
    )
    with pytest.raises(auto.CommandError) as failed:
        scenario.up()
    message = str(failed.value)
    for key in ("jwksUrl", "tokenPeriod", "kvMount", "roleName"):
        assert f"nomad-vault-setup:{key}" in message, key
    assert "invalid stack configuration" in message
    assert auth_mounts(scenario) == ["token/"]
    assert policies(scenario) == BUILTIN_POLICIES


def test_an_unreachable_jwks_fails_clearly_then_converges_once_fixed(new_scenario) -> None:
    scenario = new_scenario()
    scenario.configure(jwksUrl=f"http://127.0.0.1:{free_port()}/.well-known/jwks.json")
    with pytest.raises(auto.CommandError) as failed:
        scenario.up()
    assert "error checking jwks URL" in str(failed.value)

    scenario.configure()  # the issuer's real JWKS URL
    scenario.up()
    assert "jwt-nomad/" in auth_mounts(scenario)
    assert "nomad-workloads" in policies(scenario)
    assert changes(scenario.preview(refresh=True).change_summary) == {}


def test_an_existing_namespace_of_someone_else_is_never_taken_over(new_scenario) -> None:
    """Vault answers a create of an existing namespace with success: without the check, the
    stack would own it, and `destroy` would delete it with everything in it."""
    scenario = new_scenario()
    scenario.vault.write_data(
        "sys/namespaces/nomad", data={"custom_metadata": {"created-by": "nomad-setup"}}
    )
    scenario.configure(namespace="nomad")
    with pytest.raises(
        auto.CommandError, match="namespace 'nomad' already exists and was not created"
    ):
        scenario.up()
    assert scenario.vault.read("sys/namespaces/nomad")["data"]["custom_metadata"] == {
        "created-by": "nomad-setup"
    }
    assert "jwt-nomad/" not in scenario.client(namespace="nomad").sys.list_auth_methods()["data"]
    assert scenario.outputs() == {}
