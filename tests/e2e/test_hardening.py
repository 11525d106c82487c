"""Hardening through the real engine on OpenBao: the token goes only where the stack says,
and a policy this stack did not write is neither changed by `up` nor deleted by `destroy`.

One audited server for the module: its raw audit log shows which tokens it was sent.
"""

import pytest
from pulumi import automation as auto

from nomad_vault_setup.ownership import marker_line
from tests.e2e.harness import STACK, Scenario, changes
from tests.e2e.vault_checks import login, refused

SHELL_TOKEN = "s.shell-token-of-another-environment"
FOREIGN = 'path "secret/data/ops/*" {\n  capabilities = ["read"]\n}\n'
OPS_ROLE = {"name": "ops", "boundClaims": {"nomad_namespace": "ops"}, "policy": FOREIGN}
MARKER = marker_line(f"organization/nomad-vault-setup/{STACK}")


@pytest.fixture(scope="module")
def scenario(new_scenario) -> Scenario:
    scenario = new_scenario(audited=True)
    scenario.configure()
    # A shell that holds some other environment's token: it must never reach this server.
    scenario.stack.workspace.env_vars.update(
        VAULT_ADDR=scenario.server.address, VAULT_TOKEN=SHELL_TOKEN
    )
    return scenario


def failure(action) -> str:
    with pytest.raises(auto.CommandError) as failed:
        action()
    return str(failed.value)


def test_an_empty_stack_token_never_sends_the_shells(scenario: Scenario) -> None:
    scenario.stack.set_config("vault:token", auto.ConfigValue("", secret=True))
    for action in (scenario.up, scenario.preview):
        assert "vault:token: set but empty" in failure(action)
    assert SHELL_TOKEN not in scenario.audit_log.read_text()
    assert scenario.vault.sys.list_auth_methods()["data"].keys() == {"token/"}


def test_a_plain_text_stack_token_is_refused(scenario: Scenario) -> None:
    scenario.stack.set_config("vault:token", auto.ConfigValue(scenario.server.token))
    assert scenario.server.token in scenario.stack_file.read_text(), "plain in the stack file"
    assert "vault:token: stored in plain text" in failure(scenario.up)
    assert scenario.vault.sys.list_auth_methods()["data"].keys() == {"token/"}
    assert SHELL_TOKEN not in scenario.audit_log.read_text()
    scenario.deploy_with_token(scenario.server.token)


@pytest.mark.parametrize(
    ("settings", "name", "setting"),
    [
        ({}, "nomad-workloads", "policyName"),
        (
            {
                "roles": [
                    {"name": "ops", "boundClaims": {"nomad_namespace": "ops"}, "policy": FOREIGN}
                ]
            },
            "nomad-workloads-ops",
            "roles[0].policy",
        ),
    ],
)
def test_a_foreign_policy_survives_up_and_destroy(scenario, settings, name, setting) -> None:
    scenario.vault.sys.create_or_update_acl_policy(name, FOREIGN)
    scenario.configure(**settings)
    message = failure(scenario.up)
    assert f"nomad-vault-setup:{setting}: policy {name!r} already exists" in message
    assert scenario.vault.sys.read_acl_policy(name)["data"]["policy"] == FOREIGN
    assert scenario.vault.sys.list_auth_methods()["data"].keys() == {"token/"}, "nothing written"
    scenario.destroy()
    assert scenario.vault.sys.read_acl_policy(name)["data"]["policy"] == FOREIGN
    scenario.vault.sys.delete_acl_policy(name)


def test_a_policy_handed_over_on_purpose_is_managed_and_marked(scenario: Scenario) -> None:
    scenario.vault.sys.create_or_update_acl_policy("nomad-workloads", f"{MARKER}\n{FOREIGN}")
    scenario.configure()
    assert changes(scenario.up().summary.resource_changes) == {"create": 5}
    live = scenario.vault.sys.read_acl_policy("nomad-workloads")["data"]["policy"]
    assert live.splitlines()[0] == MARKER, "OpenBao keeps the owner's comment line"
    assert "identity.entity.aliases" in live
    assert changes(scenario.preview(refresh=True).change_summary) == {}
    scenario.destroy()
    assert "nomad-workloads" not in scenario.vault.sys.list_acl_policies()["data"]["keys"]
    assert SHELL_TOKEN not in scenario.audit_log.read_text()


def test_destroy_leaves_login_entities_that_grant_nothing(scenario: Scenario) -> None:
    """As documented: the entities and aliases logins made stay at the root, inert."""
    scenario.configure()
    scenario.up()
    accessor = scenario.outputs()["auth_accessor"]
    jwt = scenario.issuer.mint("web", namespace="default")
    job = login(scenario, jwt, "jwt-nomad", "nomad-workloads")
    assert job.auth.token.lookup_self()["data"]["entity_id"]
    scenario.destroy()
    aliases = scenario.vault.list("identity/entity-alias/id")["data"]["key_info"].values()
    assert [alias["mount_accessor"] for alias in aliases] == [accessor]
    assert refused(job.auth.token.lookup_self), "the job's token died with the mount"


def test_another_stacks_namespace_is_neither_taken_nor_deleted(scenario: Scenario) -> None:
    """Tagged by this program, but for another stack: destroying it is not this stack's call."""
    theirs = {"created-by": "nomad-vault-setup", "stack": "organization/nomad-vault-setup/prod"}
    scenario.vault.write("sys/namespaces/shared", custom_metadata=theirs)
    scenario.configure(namespace="shared", manageKvMount=True)
    message = failure(scenario.up)
    assert "nomad-vault-setup:namespace: namespace 'shared' already exists" in message
    assert "stack=organization/nomad-vault-setup/prod" in message
    scenario.destroy()
    listed = scenario.vault.list("sys/namespaces")["data"]["keys"]
    assert "shared/" in listed
