"""Adopting a `nomad setup vault` install through the real engine on OpenBao.

The install is written with the command's own raw API calls (devtools.nomad_setup), and a job
logs in before the adoption and keeps its token: the adoption imports the objects (the mount's
accessor, which that token's entity alias hangs on, stays), so the token still reads the job's
secret and nothing else. Differences are refused before anything changes; once adopted, the
`adopt` setting can go and the preview is clean; destroy removes exactly what was adopted.
"""

from typing import Any

import hvac
import pytest
from pulumi import automation as auto

from devtools import nomad_setup
from nomad_vault_setup.adoption import NAMESPACE_IMPORT_VARIABLE
from nomad_vault_setup.ownership import marker_line, namespace_metadata
from tests.e2e.harness import STACK, Scenario, changes
from tests.e2e.vault_checks import denied, login, read_secret, write_secret

OWNER = f"organization/nomad-vault-setup/{STACK}"
# The settings that describe what `nomad setup vault` made: its role names entities by job ID.
AS_NOMAD_SETUP = {"identityClaim": "job-id"}
NAMESPACE = nomad_setup.NAME
AUTH = f"auth/{nomad_setup.AUTH_PATH}"


def failure(action) -> str:
    with pytest.raises(auto.CommandError) as failed:
        action()
    return str(failed.value)


class Steps:
    """What an `up` did to each Vault resource: `{(operation, type): count}`, from the
    engine's events (the program's components and the stack itself left out)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], int] = {}

    def __call__(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre and pre.metadata.type.startswith("vault:"):
            key = (pre.metadata.op.value, pre.metadata.type.rsplit(":", 1)[-1])
            self.seen[key] = self.seen.get(key, 0) + 1


def vault_steps(scenario: Scenario) -> dict[tuple[str, str], int]:
    """Run `up`; what it did to Vault resources, the no-ops left out."""
    steps = Steps()
    scenario.up(on_event=steps)
    return {key: n for key, n in steps.seen.items() if key[0] != "same"}


# An adoption: every object imported, the policy then gains its marker line, nothing else.
ADOPTED = {
    ("import", "AuthBackend"): 1,
    ("import", "Policy"): 1,
    ("import", "AuthBackendRole"): 1,
    ("update", "Policy"): 1,
}


class Installed:
    """A scenario with a `nomad setup vault` install, secrets for jobs `web` and `api`, and a
    token job `web` got before anything was adopted."""

    def __init__(self, scenario: Scenario, namespace: str = "", kv_path: str = "secret") -> None:
        self.scenario = scenario
        self.namespace = namespace
        self.kv_path = kv_path
        self.install = nomad_setup.install(
            scenario.server.address, scenario.server.token, scenario.jwks_url, namespace, kv_path
        )
        self.client = scenario.client(namespace=namespace or None)
        if kv_path != "secret" or namespace:  # the dev server mounts only `secret/` at root
            self.client.sys.enable_secrets_engine("kv", path=kv_path, options={"version": "2"})
        write_secret(self.client, kv_path, "default/web/db", {"password": "web"})
        write_secret(self.client, kv_path, "default/api/db", {"password": "api"})
        identity = scenario.issuer.mint("web")
        self.job = login(
            scenario, identity, nomad_setup.AUTH_PATH, nomad_setup.NAME, namespace or None
        )
        self.job_still_reads_only_its_own()

    def job_still_reads_only_its_own(self) -> None:
        assert read_secret(self.job, self.kv_path, "default/web/db") == {"password": "web"}
        assert denied(read_secret, self.job, self.kv_path, "default/api/db")

    def snapshot(self) -> dict[str, Any]:
        """Everything the install holds, to show that a refused run changed nothing."""
        read = self.client.read
        return {
            "mounts": self.client.sys.list_auth_methods()["data"],
            "config": read(f"{AUTH}/config")["data"],
            "role": read(f"{AUTH}/role/{nomad_setup.NAME}")["data"],
            "policy": self.client.sys.read_acl_policy(nomad_setup.NAME)["data"]["policy"],
            "namespaces": self.scenario.vault.sys.list_namespaces()["data"]
            if self.namespace
            else None,
        }

    def accessor(self) -> str:
        mounts = self.client.sys.list_auth_methods()["data"]
        return mounts[f"{nomad_setup.AUTH_PATH}/"]["accessor"]

    def policy(self) -> str:
        return self.client.sys.read_acl_policy(nomad_setup.NAME)["data"]["policy"]


def set_import_variable(scenario: Scenario, value: str | None) -> None:
    env = scenario.stack.workspace.env_vars
    if value is None:
        env.pop(NAMESPACE_IMPORT_VARIABLE, None)
    else:
        env[NAMESPACE_IMPORT_VARIABLE] = value


def test_a_root_install_is_adopted_and_its_jobs_keep_their_tokens(new_scenario) -> None:
    scenario = new_scenario()
    installed = Installed(scenario)
    scenario.configure(adopt=True, **AS_NOMAD_SETUP)

    assert vault_steps(scenario) == ADOPTED
    assert installed.accessor() == installed.install.accessor
    installed.job_still_reads_only_its_own()
    assert installed.policy().startswith(marker_line(OWNER) + "\n")
    assert scenario.outputs()["auth_accessor"] == installed.install.accessor

    # Adopted once: the setting can go, and nothing is left to change, refreshed or not.
    scenario.configure(**AS_NOMAD_SETUP)
    assert changes(scenario.preview().change_summary) == {}
    assert changes(scenario.preview(refresh=True).change_summary) == {}
    assert vault_steps(scenario) == {}

    # Destroy removes exactly the adopted mount (and its role) and policy: the KV and its
    # secrets, which `nomad setup vault` did not make, stay.
    scenario.destroy()
    assert f"{nomad_setup.AUTH_PATH}/" not in scenario.vault.sys.list_auth_methods()["data"]
    assert nomad_setup.NAME not in scenario.vault.sys.list_acl_policies()["data"]["keys"]
    assert read_secret(scenario.vault, "secret", "default/web/db") == {"password": "web"}


def test_each_difference_is_refused_naming_its_setting_with_vault_unchanged(new_scenario) -> None:
    scenario = new_scenario()
    installed = Installed(scenario)
    before = installed.snapshot()
    # Audience, token period, KV mount and user claim all differ from the install.
    scenario.configure(adopt=True, audiences=["nomad.example"], tokenPeriod="1h", kvMount="kv")

    for action in (scenario.up, scenario.preview):
        message = failure(action)
        for expected in (
            "nomad-vault-setup:audiences: adopting 'jwt-nomad': the role's bound audiences",
            "set `audiences: [vault.io]`",
            "nomad-vault-setup:tokenPeriod: adopting 'jwt-nomad': the role's token period",
            "set `tokenPeriod: 30m`",
            "nomad-vault-setup:kvMount: adopting 'jwt-nomad': the KV mount the policy reads",
            "set `kvMount: secret`",
            "nomad-vault-setup:identityClaim: adopting 'jwt-nomad': the role's user claim",
            "set `identityClaim: job-id`",
        ):
            assert expected in message, message
        assert "nothing was changed" in message

    assert installed.snapshot() == before
    assert installed.accessor() == installed.install.accessor
    installed.job_still_reads_only_its_own()

    # Without `adopt`, the install is someone else's: refused, pointing at `adopt`, untouched.
    scenario.configure(**AS_NOMAD_SETUP)
    message = failure(scenario.up)
    assert "nomad-vault-setup:authPath: auth mount 'jwt-nomad' already exists" in message
    assert "set `nomad-vault-setup:adopt: true` to adopt it" in message
    assert "nomad-vault-setup:policyName: policy 'nomad-workloads' already exists" in message
    assert installed.snapshot() == before


def test_an_install_with_its_own_kv_path_is_adopted(new_scenario) -> None:
    scenario = new_scenario()
    installed = Installed(scenario, kv_path="team-kv")
    scenario.configure(adopt=True, **AS_NOMAD_SETUP)
    assert "set `kvMount: team-kv`" in failure(scenario.up)

    scenario.configure(adopt=True, kvMount="team-kv", **AS_NOMAD_SETUP)
    assert vault_steps(scenario) == ADOPTED
    assert installed.accessor() == installed.install.accessor
    installed.job_still_reads_only_its_own()
    scenario.configure(kvMount="team-kv", **AS_NOMAD_SETUP)
    assert changes(scenario.preview(refresh=True).change_summary) == {}


def test_a_namespace_install_is_adopted_in_two_steps(new_scenario) -> None:
    scenario = new_scenario()
    installed = Installed(scenario, namespace=NAMESPACE)
    before = installed.snapshot()
    scenario.configure(adopt=True, namespace=NAMESPACE, **AS_NOMAD_SETUP)

    # Without the provider's variable, the objects inside cannot be imported: refused, with
    # the command that does it.
    message = failure(scenario.up)
    assert f"run `{NAMESPACE_IMPORT_VARIABLE}={NAMESPACE} pulumi up`" in message
    assert installed.snapshot() == before

    # Step 1: the objects inside the namespace, and nothing else.
    set_import_variable(scenario, NAMESPACE)
    assert vault_steps(scenario) == ADOPTED  # and no Namespace registered
    installed.job_still_reads_only_its_own()

    # The variable is only for that step: left set, it is refused.
    assert "no `adopt: true` cluster needs that now: unset it" in failure(scenario.up)

    # Step 2: the namespace itself; its `nomad setup vault` tag becomes this stack's.
    set_import_variable(scenario, None)
    assert vault_steps(scenario) == {("import", "Namespace"): 1, ("update", "Namespace"): 1}
    metadata = scenario.vault.read(f"sys/namespaces/{NAMESPACE}")["data"]["custom_metadata"]
    assert metadata == namespace_metadata(OWNER)
    assert installed.accessor() == installed.install.accessor
    installed.job_still_reads_only_its_own()

    scenario.configure(namespace=NAMESPACE, **AS_NOMAD_SETUP)
    assert changes(scenario.preview(refresh=True).change_summary) == {}

    # Destroy removes the adopted namespace, and with it everything inside, as
    # `nomad setup vault -destroy` does; nothing at root is touched.
    scenario.destroy()
    with pytest.raises(hvac.exceptions.InvalidPath):  # no namespace left to list
        scenario.vault.sys.list_namespaces()
    assert "jwt-nomad/" not in scenario.vault.sys.list_auth_methods()["data"]


def test_the_import_variable_is_refused_where_it_would_misdirect(new_scenario) -> None:
    scenario = new_scenario()
    Installed(scenario, namespace=NAMESPACE)
    # A root cluster beside it: the variable would send its objects into the namespace.
    scenario.configure(
        clusters=[
            {
                "name": "inside",
                "adopt": True,
                "namespace": NAMESPACE,
                "authPath": nomad_setup.AUTH_PATH,
                "policyName": nomad_setup.NAME,
                **AS_NOMAD_SETUP,
            },
            {"name": "root", "authPath": "jwt-root", "policyName": "root-workloads"},
        ]
    )
    set_import_variable(scenario, NAMESPACE)
    message = failure(scenario.up)
    assert "on a stack that manages nothing else" in message, message
    assert "jwt-root/" not in scenario.vault.sys.list_auth_methods()["data"]
    assert "jwt-root/" not in scenario.client(namespace=NAMESPACE).sys.list_auth_methods()["data"]


def test_a_namespace_nomad_setup_did_not_make_is_refused_before_its_contents(new_scenario) -> None:
    scenario = new_scenario()
    scenario.vault.sys.create_namespace(NAMESPACE)  # by hand, untagged, before the command ran
    installed = Installed(scenario, namespace=NAMESPACE)
    before = installed.snapshot()
    scenario.configure(adopt=True, namespace=NAMESPACE, **AS_NOMAD_SETUP)
    set_import_variable(scenario, NAMESPACE)

    message = failure(scenario.up)

    assert "nomad-vault-setup:namespace: namespace 'nomad-workloads' already exists" in message
    assert "custom metadata: none" in message
    assert installed.snapshot() == before
    assert scenario.outputs() == {}
