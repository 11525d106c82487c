"""The deployer policy the README gives is enough: up, a no-op up, a refreshing preview and
destroy, with a token that holds only that policy (no root, no default policy). Each of its
rules was measured necessary by removing it and running this test."""

from tests.e2e.harness import PROJECT_DIR, Scenario, changes

DEPLOYER_POLICY = PROJECT_DIR / "deployer-policy.hcl"


def test_up_noop_up_and_destroy_with_only_the_deployer_policy(new_scenario) -> None:
    scenario: Scenario = new_scenario()
    root = scenario.vault
    root.sys.create_or_update_acl_policy("deployer", DEPLOYER_POLICY.read_text())
    deployer = root.auth.token.create(policies=["deployer"], no_default_policy=True, ttl="1h")
    scenario.deploy_with_token(deployer["auth"]["client_token"])
    scenario.configure()
    assert changes(scenario.up().summary.resource_changes) == {"create": 5}
    assert changes(scenario.up().summary.resource_changes) == {}
    assert changes(scenario.preview(refresh=True).change_summary) == {}
    assert changes(scenario.destroy().summary.resource_changes) == {"delete": 5}
    assert "jwt-nomad/" not in root.sys.list_auth_methods()["data"]
