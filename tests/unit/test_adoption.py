"""Adopting what `nomad setup vault` made: the pure rules (adoption.py), then the program.

Each difference between a live install and the settings is refused naming the setting that
would make them match; a policy is compared by meaning, not bytes. The mock tier cannot answer
reads of a mount's config or role, so the adopting run replaces the live read (`_live_install`)
with a `nomad setup vault` install and records the import ids the engine is sent.
"""

import json
from dataclasses import replace

import pytest

from devtools import mock_program, nomad_setup
from nomad_vault_setup import ConfigError
from nomad_vault_setup.adoption import LiveInstall, acl_rules, install_differences
from nomad_vault_setup.adoption import namespace_import_problems as import_problems
from nomad_vault_setup.config import StackSettings, parse_settings
from nomad_vault_setup.ownership import marked, marker_line
from nomad_vault_setup.policy import render_workload_policy
from nomad_vault_setup.preflight import PreflightError
from tests.unit.conftest import MOCK_ACCESSOR

ADDRESS = {"nomadVaultAddress": "http://127.0.0.1:8200"}
VARIABLE = "TERRAFORM_VAULT_NAMESPACE_IMPORT"
# The settings that describe a `nomad setup vault` install: its role names entities by job ID.
AS_NOMAD_SETUP = {"identityClaim": "job-id", "adopt": "true"}
NS = nomad_setup.NAME
ROLE = {
    **nomad_setup.role_body(),
    "bound_audiences": ["vault.io"],  # as Vault answers the command's writes
    "token_period": 1800,
}
INSTALL = LiveInstall(
    mount={"type": "jwt", "local": False, "accessor": MOCK_ACCESSOR, "description": ""},
    config={
        "jwks_url": "http://localhost:4646/.well-known/jwks.json",
        "jwt_supported_algs": ["EdDSA", "RS256"],
        "default_role": nomad_setup.NAME,
        "jwks_ca_pem": "",
        "bound_issuer": "",
    },
    role=ROLE,
    policy=nomad_setup.policy_text(MOCK_ACCESSOR),
)


@pytest.fixture(autouse=True)
def no_import_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's shell may have it exported; each test sets it where it needs it."""
    monkeypatch.delenv(VARIABLE, raising=False)


def stack(**raw: str) -> StackSettings:
    return parse_settings(ADDRESS | AS_NOMAD_SETUP | raw)


def differences(live: LiveInstall, **raw: str) -> list[str]:
    return install_differences(stack(**raw).clusters[0], live)


def with_role(**fields: object) -> LiveInstall:
    return replace(INSTALL, role={**ROLE, **fields})


def with_mount(**fields: object) -> LiveInstall:
    return replace(INSTALL, mount={**INSTALL.mount, **fields})


def with_config(**fields: object) -> LiveInstall:
    return replace(INSTALL, config={**INSTALL.config, **fields})


def test_a_nomad_setup_install_with_matching_settings_has_no_differences() -> None:
    assert differences(INSTALL) == []


@pytest.mark.parametrize(
    ("live", "raw", "key", "advice"),
    [
        (INSTALL, {"audiences": '["nomad.example"]'}, "audiences", "set `audiences: [vault.io]`"),
        (INSTALL, {"identityClaim": "unique-id"}, "identityClaim", "set `identityClaim: job-id`"),
        (INSTALL, {"tokenPeriod": "1h"}, "tokenPeriod", "set `tokenPeriod: 30m`"),
        (with_role(token_period=90), {}, "tokenPeriod", "set `tokenPeriod: 1m30s`"),
        (INSTALL, {"kvMount": "kv"}, "kvMount", "set `kvMount: secret`"),
        (
            replace(INSTALL, policy=nomad_setup.policy_text(MOCK_ACCESSOR, "team-kv")),
            {},
            "kvMount",
            "set `kvMount: team-kv`",
        ),
        (with_role(token_policies=["team"]), {}, "policyName", "set `policyName: team`"),
        (
            with_config(jwks_url="https://nomad.example:4646/.well-known/jwks.json"),
            {},
            "jwksUrl",
            "set `jwksUrl: https://nomad.example:4646/.well-known/jwks.json`",
        ),
        (with_config(default_role="ci"), {}, "roleName", "set `roleName: ci`"),
    ],
)
def test_each_compared_field_names_its_setting_and_the_value_to_adopt(
    live, raw, key, advice
) -> None:
    (problem,) = differences(live, **raw)
    assert problem.startswith(f"nomad-vault-setup:{key}: adopting 'jwt-nomad': "), problem
    assert advice in problem


@pytest.mark.parametrize(
    ("live", "key", "says"),
    [
        (with_role(token_ttl=600), "roleName", "token_ttl is 600 in Vault"),
        (with_role(bound_claims={"nomad_namespace": "prod"}), "roleName", "bound_claims is"),
        (with_role(token_type="batch"), "roleName", "the role's token_type is 'batch'"),
        (with_role(user_claim="sub"), "identityClaim", "this program always writes"),
        (with_role(token_policies=["nomad-workloads", "ops"]), "policyName", "always writes"),
        (with_config(bound_issuer="nomad"), "authPath", "bound_issuer is set in Vault"),
        (with_config(jwt_supported_algs=["RS256"]), "authPath", "jwt_supported_algs"),
        (with_mount(type="oidc"), "authPath", "the mount is a 'oidc' mount, not a"),
        (with_mount(local=True), "authPath", "the mount is a local 'jwt' mount"),
    ],
)
def test_what_the_program_cannot_keep_is_refused(live, key, says) -> None:
    (problem,) = differences(live)
    assert problem.startswith(f"nomad-vault-setup:{key}: adopting 'jwt-nomad': "), problem
    assert says in problem


def test_a_mount_never_configured_differs_in_every_config_field() -> None:
    problems = differences(replace(INSTALL, config=None))
    keys = [problem.split(": ", 1)[0].removeprefix("nomad-vault-setup:") for problem in problems]
    assert keys == ["jwksUrl", "roleName", "authPath"], problems


def test_an_extra_role_that_already_exists_is_refused_by_roles() -> None:
    role = {"name": "db", "boundClaims": {"nomad_namespace": "p"}, "policies": ["db"]}
    roles = json.dumps([role])
    (problem,) = differences(replace(INSTALL, extra_roles=("db",)), roles=roles)
    assert problem.startswith("nomad-vault-setup:roles: adopting 'jwt-nomad': role 'db'")


def test_no_mount_to_adopt_is_refused_by_adopt() -> None:
    (problem,) = differences(LiveInstall(), namespace=NS)
    assert problem.startswith("nomad-vault-setup:adopt: there is no auth mount at 'jwt-nomad'")
    assert f"in namespace {NS!r}" in problem


def test_a_clusters_entry_is_named_by_its_scope() -> None:
    entry = {"name": "east", "authPath": "jwt-nomad", "policyName": NS, "kvMount": "kv"}
    raw = {"clusters": json.dumps([entry])}
    (problem,) = install_differences(stack(**raw).clusters[0], INSTALL)
    assert problem.startswith("nomad-vault-setup:clusters[east].kvMount: ")


WORKLOAD = render_workload_policy(MOCK_ACCESSOR, "secret")
BLOCKS = [block + "}\n" for block in WORKLOAD.split("}\n") if block.strip()]


@pytest.mark.parametrize(
    "text",
    [
        "".join(reversed(BLOCKS)),
        WORKLOAD.replace("\n  ", "\n\t\t").replace("\n", "\n\n"),
        WORKLOAD.replace(' {\n  capabilities = ["read"]\n}', ' { capabilities = ["read"] }'),
        marked(WORKLOAD, "organization/nomad-vault-setup/unit"),
    ],
    ids=["reordered", "whitespace", "one-line", "marked"],
)
def test_a_reformatted_policy_is_no_difference(text) -> None:
    assert text != WORKLOAD
    assert differences(replace(INSTALL, policy=text)) == []


@pytest.mark.parametrize(
    "text",
    [
        WORKLOAD + 'path "sys/*" {\n  capabilities = ["read"]\n}\n',
        WORKLOAD.replace('["list"]', '["list", "read"]', 1),
        WORKLOAD.replace('["read"]', '["read"]\n  allowed_parameters = {}', 1),
        render_workload_policy("auth_jwt_99999999", "secret"),
        '{"path": {"secret/*": {"capabilities": ["read"]}}}',
        # Vault merges a repeated path block, and repeated capabilities; pyhcl keeps the last.
        'path "secret/metadata/*" {\n  capabilities = ["sudo", "delete"]\n}\n' + WORKLOAD,
        WORKLOAD
        + 'path "secret/metadata/*" {\n  capabilities = ["list"]\n  capabilities = ["sudo"]\n}\n',
    ],
    ids=[
        "extra-path",
        "extra-capability",
        "extra-key",
        "other-mount",
        "json",
        "path-twice",
        "capabilities-twice",
    ],
)
def test_a_policy_that_grants_otherwise_is_refused(text) -> None:
    (problem,) = differences(replace(INSTALL, policy=text))
    assert problem.startswith("nomad-vault-setup:policyName: adopting 'jwt-nomad': policy ")
    assert "Restore it, or choose another policyName" in problem


@pytest.mark.parametrize(
    "text", ["", "not { hcl", '{"path": {}}', 'path = "x"', 'path "a" { policy = "write" }']
)
def test_acl_rules_of_what_is_not_an_acl_policy_is_none(text) -> None:
    assert acl_rules(text) is None


def test_acl_rules_is_each_paths_capabilities() -> None:
    assert acl_rules('path "a" { capabilities = ["read", "list", "read"] }') == {
        "a": frozenset({"read", "list"})
    }


ROOT_CLUSTER = {"name": "root", "authPath": "jwt-root", "policyName": "root-workloads"}
INSIDE = {"name": "inside", "namespace": NS, "authPath": "jwt-nomad", "adopt": True}


def test_an_unset_variable_with_a_namespace_to_adopt_gives_the_command() -> None:
    (problem,) = import_problems(stack(namespace=NS), "", {"": True}, False)
    assert problem.startswith("nomad-vault-setup:namespace: ")
    assert f"run `{VARIABLE}={NS} pulumi up`, then `pulumi up` (without" in problem


def test_the_variable_is_needed_only_while_a_namespace_has_contents_to_import() -> None:
    assert import_problems(stack(namespace=NS), "", {"": False}, False) == []
    assert import_problems(stack(), "", {"": True}, False) == []  # a root install
    assert import_problems(stack(namespace=NS), NS, {"": True}, False) == []
    assert import_problems(stack(namespace=NS), f"{NS}/", {"": True}, False) == []


@pytest.mark.parametrize(
    ("raw", "value", "inner", "managed", "says"),
    [
        ({"namespace": NS}, NS, {"": False}, False, "no `adopt: true` cluster needs that now"),
        ({}, NS, {"": True}, False, "no `adopt: true` cluster needs that now"),
        ({"namespace": NS}, "other", {"": True}, False, "inside namespace 'other'"),
        ({"namespace": NS}, "/", {"": True}, False, "no `adopt: true` cluster needs that"),
        ({"namespace": NS}, NS, {"": True}, True, "on a stack that manages nothing else"),
        (
            {"clusters": json.dumps([INSIDE, ROOT_CLUSTER])},
            NS,
            {"inside": True, "root": False},
            False,
            "on a stack that manages nothing else",
        ),
    ],
    ids=["not-needed", "no-namespace", "another", "slash", "managed", "beside-a-root-cluster"],
)
def test_the_variable_is_refused_where_it_would_misdirect(raw, value, inner, managed, says) -> None:
    (problem,) = import_problems(stack(**raw), value, inner, managed)
    assert problem.startswith(f"{VARIABLE}={value} makes the Vault provider read and write")
    assert says in problem


# The mock tier: the program itself.


def test_adopting_with_a_managed_kv_mount_is_a_config_error(run_program) -> None:
    with pytest.raises(ConfigError, match=r"nomad-vault-setup:adopt\b.*manageKvMount"):
        run_program({"adopt": "true", "manageKvMount": "true"})
    assert run_program.registered == []


def test_an_existing_mount_without_adopt_points_to_adopt(run_program) -> None:
    with pytest.raises(PreflightError) as caught:
        run_program({}, existing_auth_mounts={"jwt-nomad": MOCK_ACCESSOR})
    text = str(caught.value)
    assert "nomad-vault-setup:authPath: auth mount 'jwt-nomad' already exists" in text
    assert "set `nomad-vault-setup:adopt: true` to adopt it" in text
    assert run_program.registered == []


def test_adopt_with_nothing_to_adopt_is_refused(run_program) -> None:
    with pytest.raises(PreflightError, match="nomad-vault-setup:adopt: there is no auth mount"):
        run_program(AS_NOMAD_SETUP)
    assert run_program.registered == []


@pytest.fixture
def adopting(run_program, monkeypatch: pytest.MonkeyPatch):
    """The runner, reading INSTALL as the live install; `import_ids` maps name -> import id."""
    monkeypatch.setattr("nomad_vault_setup.preflight._live_install", lambda _cluster: INSTALL)
    import_ids: dict[str, str] = {}
    register = mock_program.RecordingMonitor.RegisterResource

    def recording(self, request):
        import_ids[request.name] = request.importId
        return register(self, request)

    monkeypatch.setattr(mock_program.RecordingMonitor, "RegisterResource", recording)
    run_program.import_ids = import_ids
    return run_program


def test_adopting_imports_the_mount_policy_and_role_by_their_ids(adopting) -> None:
    run = adopting(AS_NOMAD_SETUP, existing_policies={NS: INSTALL.policy})
    assert {name: id for name, id in adopting.import_ids.items() if id} == {
        "nomad-auth": "jwt-nomad",
        "nomad-policy": "nomad-workloads",
        "nomad-role": "auth/jwt-nomad/role/nomad-workloads",
    }
    policy = run.one("vault:index/policy:Policy").inputs["policy"]
    assert policy.startswith(marker_line("organization/nomad-vault-setup/unit") + "\n")


def test_a_namespace_is_adopted_after_its_contents(adopting, monkeypatch) -> None:
    tagged = {NS: {"created-by": "nomad-setup"}}
    with pytest.raises(PreflightError, match=f"run `{VARIABLE}={NS} pulumi up`"):
        adopting(AS_NOMAD_SETUP | {"namespace": NS}, existing_namespaces=tagged)

    # With the variable, the provider would read the namespace inside itself: its tag is read
    # straight from Vault instead, with the stack's token.
    monkeypatch.setenv(VARIABLE, NS)
    read = []

    def live_tag(session, path):
        read.append((path, session.namespace))
        return tagged.get(path)

    monkeypatch.setattr("nomad_vault_setup.preflight.namespace_metadata", live_tag)
    run = adopting(AS_NOMAD_SETUP | {"namespace": NS}, existing_namespaces=tagged)
    assert read == [(NS, "")]
    assert run.of_type("vault:index/namespace:Namespace") == []
    assert adopting.import_ids["nomad-auth"] == "jwt-nomad"
    assert run.one("vault:jwt/authBackend:AuthBackend").inputs["namespace"] == NS

    # A namespace `nomad setup vault` did not tag is refused before its contents are imported.
    tagged[NS] = {"team": "ops"}
    with pytest.raises(PreflightError, match="namespace 'nomad-workloads' already exists"):
        adopting(AS_NOMAD_SETUP | {"namespace": NS}, existing_namespaces=tagged)


@pytest.mark.parametrize(
    ("live", "key"),
    [
        (with_role(token_period=0), "tokenPeriod"),
        (with_role(token_policies=["default"]), "policyName"),
        (with_role(bound_audiences=[]), "audiences"),
        (with_config(default_role=""), "roleName"),
        (with_config(jwks_url=""), "jwksUrl"),
    ],
    ids=["period-zero", "builtin-policy", "no-audience", "no-default-role", "no-jwks-url"],
)
def test_a_live_value_no_setting_accepts_is_changed_in_vault_first(live, key) -> None:
    (problem,) = differences(live)
    assert problem.startswith(f"nomad-vault-setup:{key}: ")
    assert "change it in Vault first, or do not adopt" in problem
    assert "set `" not in problem


def test_a_groups_claim_is_refused() -> None:
    (problem,) = differences(with_role(groups_claim="nomad_namespace"))
    assert "groups_claim is 'nomad_namespace' in Vault and this program never sets it" in problem
