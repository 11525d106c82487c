"""A sealed server, an expired or revoked token, a token missing one capability: each is
refused before the first write, naming the cause (for a capability: the path and the
capability), and Vault is left as it was. A read-only token may still preview.
"""

import re
import time
from pathlib import Path

import pytest
from pulumi import automation as auto

from tests.e2e.harness import PROJECT_DIR, Scenario, changes

DEPLOYER_POLICY = (PROJECT_DIR / "deployer-policy.hcl").read_text()
ROLE_PATH = "auth/jwt-nomad/role/nomad-workloads"


def failure(action) -> str:
    with pytest.raises(auto.CommandError) as failed:
        action()
    return str(failed.value)


def untouched(scenario: Scenario) -> None:
    """Nothing of the stack's exists: no auth mount, no policy beside Vault's own."""
    root = scenario.vault
    assert set(root.sys.list_auth_methods()["data"]) == {"token/"}
    policies = set(root.sys.list_acl_policies()["data"]["keys"])
    assert policies <= {"default", "root", "deployer", "reader", "no-role-update"}


@pytest.fixture(scope="module")
def scenario(new_scenario) -> Scenario:
    scenario = new_scenario()
    scenario.configure()
    return scenario


def token(scenario: Scenario, policy: str, **options) -> str:
    name = options.pop("name", "deployer")
    scenario.vault.sys.create_or_update_acl_policy(name, policy)
    created = scenario.vault.auth.token.create(policies=[name], no_default_policy=True, **options)
    return created["auth"]["client_token"]


def test_a_revoked_token_is_refused_naming_it(scenario: Scenario) -> None:
    revoked = token(scenario, DEPLOYER_POLICY, ttl="1h")
    scenario.vault.auth.token.revoke(revoked)
    scenario.deploy_with_token(revoked)
    message = failure(scenario.up)
    assert "vault:token: the Vault server at " in message
    assert "refuses this token (HTTP 403: permission denied): it has expired, been revoked" in (
        message
    )
    untouched(scenario)


def test_an_expired_token_is_refused_naming_it(scenario: Scenario) -> None:
    expiring = token(scenario, DEPLOYER_POLICY, ttl="2s", explicit_max_ttl="2s")
    scenario.deploy_with_token(expiring)
    lookup = scenario.client(token=expiring).auth.token.lookup_self()["data"]
    assert lookup["ttl"] <= 2
    time.sleep(3)  # let it expire: the refusal, not the time, is what is asserted
    assert "refuses this token (HTTP 403: permission denied)" in failure(scenario.up)
    untouched(scenario)


def test_a_token_missing_one_capability_is_refused_naming_path_and_capability(
    scenario: Scenario,
) -> None:
    without_update = re.sub(
        r'(path "auth/jwt-nomad/role/nomad-workloads" \{\n  capabilities = )\[[^]]*\]',
        r'\1["create", "read", "delete"]',
        DEPLOYER_POLICY,
    )
    assert without_update != DEPLOYER_POLICY
    scenario.deploy_with_token(token(scenario, without_update, ttl="1h", name="no-role-update"))
    message = failure(scenario.up)
    assert f"vault:token: the token may not update `{ROLE_PATH}`, which this stack needs" in (
        message
    )
    assert message.count("the token may not") == 1, message
    untouched(scenario)


def test_a_read_only_token_may_preview_but_not_up(scenario: Scenario) -> None:
    # Reads only; reading an auth mount's entry (sys/auth/<path>) also takes sudo.
    reads_only = re.sub(
        r'(path "([^"]*)" \{\n  )capabilities = \[[^]]*\]',
        lambda rule: (
            rule[0]
            if "read" not in rule[0]
            else rule[1]
            + 'capabilities = ["read"'
            + (', "sudo"]' if rule[2].startswith("sys/auth/") else "]")
        ),
        DEPLOYER_POLICY,
    )
    assert 'path "sys/auth/jwt-nomad" {\n  capabilities = ["read", "sudo"]' in reads_only
    scenario.deploy_with_token(token(scenario, reads_only, ttl="1h", name="reader"))
    assert set(changes(scenario.preview().change_summary)) == {"create"}, "previewed"
    message = failure(scenario.up)
    assert "vault:token: the token may not create, delete, update `sys/auth/jwt-nomad`" in message
    untouched(scenario)


def test_a_sealed_server_is_refused_naming_it(scenario: Scenario) -> None:
    scenario.deploy_with_token(scenario.server.token)
    log = Path(scenario.server.log_path).read_text()
    unseal_key = re.search(r"Unseal Key: (\S+)", log)[1]
    scenario.vault.sys.seal()
    try:
        message = failure(scenario.up)
        assert f"vault:address: the Vault server at {scenario.server.address} (OpenBao " in message
        assert "is sealed, so it serves nothing: unseal it" in message
    finally:
        scenario.vault.sys.submit_unseal_key(unseal_key)
    untouched(scenario)
