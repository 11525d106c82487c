"""The whole program under mocks: what it registers, with which inputs, and what it exports."""

import json

import pytest

from nomad_vault_setup import ConfigError
from nomad_vault_setup.resource_types import CLUSTER_COMPONENT as COMPONENT_TYPE
from tests.hcl import parse_hcl
from tests.keys import CERTIFICATE_PEM
from tests.unit.conftest import MOCK_ACCESSOR, ON_OPENBAO

NAMESPACE = "vault:index/namespace:Namespace"
BACKEND = "vault:jwt/authBackend:AuthBackend"
POLICY = "vault:index/policy:Policy"
ROLE = "vault:jwt/authBackendRole:AuthBackendRole"

MOUNT = "vault:index/mount:Mount"
ROLES = json.dumps(
    [
        {
            "name": "db-admin",
            "boundClaims": {"nomad_namespace": "prod", "nomad_job_id": ["db-*", "migrate"]},
            "policies": ["database-admin"],
            "policy": 'path "database/creds/admin" { capabilities = ["read"] }',
            "tokenPeriod": "10m",
        },
        {"name": "ci", "boundClaims": {"nomad_namespace": "ci-*"}, "policies": ["ci-deploy"]},
    ]
)

CUSTOM = {
    "namespace": "nomad",
    "authPath": "/nomad-jwt/",
    "roleName": "workloads",
    "policyName": "workload-secrets",
    "kvMount": "kv",
    "audiences": '["nomad.example", "vault.io"]',
    "tokenPeriod": "1h",
    "identityTtl": "15m",
    "jwksUrl": "https://nomad.example:4646/.well-known/jwks.json",
    "nomadVaultAddress": "https://vault.example:8200",
}


def test_default_config_registers_exactly_the_seed_objects(run_program) -> None:
    """The objects of `nomad setup vault`, except that each job gets its own entity."""
    run = run_program()
    assert [r.typ for r in run.resources] == [COMPONENT_TYPE, BACKEND, POLICY, ROLE]

    backend = run.one(BACKEND).inputs
    assert backend["path"] == "jwt-nomad" and backend["type"] == "jwt"
    assert backend["jwksUrl"] == "http://localhost:4646/.well-known/jwks.json"
    assert backend["jwtSupportedAlgs"] == ["EdDSA", "RS256"]
    assert backend["defaultRole"] == "nomad-workloads"
    assert "jwksCaPem" not in backend and "namespace" not in backend

    policy = run.one(POLICY).inputs
    assert policy["name"] == "nomad-workloads" and "namespace" not in policy

    role = run.one(ROLE).inputs
    assert role == {
        "backend": "jwt-nomad",
        "roleName": "nomad-workloads",
        "roleType": "jwt",
        "boundAudiences": ["vault.io"],
        "userClaim": "/extra_claims/unique_id",
        "userClaimJsonPointer": True,
        "claimMappings": {
            "nomad_job_id": "nomad_job_id",
            "nomad_namespace": "nomad_namespace",
            "nomad_task": "nomad_task",
        },
        "tokenType": "service",
        "tokenPeriod": 1800,
        "tokenExplicitMaxTtl": 0,
        "tokenPolicies": ["nomad-workloads"],
    }


def test_job_id_mode_is_exactly_the_seed(run_program) -> None:
    exports = run_program({"identityClaim": "job-id"})
    assert exports.one(ROLE).inputs["userClaim"] == "/nomad_job_id"
    (server,) = parse_hcl(exports.exports["nomad_server_config"])["vault"]
    assert server["default_identity"] == [{"aud": ["vault.io"], "ttl": "1h"}]


def test_namespace_and_custom_config_reach_every_resource(run_program, tmp_path) -> None:
    ca = tmp_path / "nomad-ca.pem"
    ca.write_text(CERTIFICATE_PEM)
    run = run_program(CUSTOM | {"jwksCaFile": str(ca)})
    assert [r.typ for r in run.resources] == [COMPONENT_TYPE, NAMESPACE, BACKEND, POLICY, ROLE]

    assert run.one(NAMESPACE).inputs == {
        "path": "nomad",
        "customMetadata": {
            "created-by": "nomad-vault-setup",
            "stack": "organization/nomad-vault-setup/unit",
        },
    }
    for typ in (BACKEND, POLICY, ROLE):
        assert run.one(typ).inputs["namespace"] == "nomad", typ

    backend = run.one(BACKEND).inputs
    assert backend["path"] == "nomad-jwt"
    assert backend["jwksUrl"] == CUSTOM["jwksUrl"]
    assert backend["jwksCaPem"] == ca.read_text()
    assert backend["defaultRole"] == "workloads"

    assert run.one(POLICY).inputs["name"] == "workload-secrets"
    assert run.one(POLICY).inputs["policy"].splitlines()[1].startswith('path "kv/data/')

    role = run.one(ROLE).inputs
    assert role["backend"] == "nomad-jwt" and role["roleName"] == "workloads"
    assert role["boundAudiences"] == ["nomad.example", "vault.io"]
    assert role["tokenPeriod"] == 3600
    assert role["tokenPolicies"] == ["workload-secrets"]


def test_policy_text_is_rendered_from_the_backends_accessor_output(run_program) -> None:
    run = run_program({"kvMount": "kv"})
    text = run.one(POLICY).inputs["policy"]
    assert f"identity.entity.aliases.{MOCK_ACCESSOR}.metadata.nomad_job_id" in text
    assert run.exports["auth_accessor"] == MOCK_ACCESSOR
    assert run.exports["policy"] == text


def test_role_takes_its_policy_from_the_policy_resource(run_program) -> None:
    """The role's token_policies is the Policy's output (so the role waits for the policy)."""
    run = run_program(stored_policy_name=lambda name: f"{name}-as-stored")
    assert run.one(ROLE).inputs["tokenPolicies"] == ["nomad-workloads-as-stored"]


def test_namespaced_resources_take_the_namespace_from_its_resource(run_program) -> None:
    run = run_program({"namespace": "nomad"}, stored_namespace_path=lambda path: f"{path}-stored")
    for typ in (BACKEND, POLICY, ROLE):
        assert run.one(typ).inputs["namespace"] == "nomad-stored", typ


def test_every_vault_resource_is_a_child_of_the_component_replaced_delete_first(
    run_program,
) -> None:
    """Vault writes overwrite: a create-before-delete replacement would delete itself."""
    config = {"namespace": "nomad", "manageKvMount": "true", "roles": ROLES}
    run = run_program(config)
    vault_resources = [r for r in run.resources if r.typ.startswith("vault:")]
    assert len(vault_resources) == 8  # namespace, kv, auth, policy, role, 2 roles, inline policy
    stack_urn = "urn:pulumi:unit::nomad-vault-setup::pulumi:pulumi:Stack::nomad-vault-setup-unit"
    component_urn = (
        "urn:pulumi:unit::nomad-vault-setup::"
        "pulumi:pulumi:Stack$nomad-vault-setup:index:NomadVaultSetup::nomad"
    )
    for resource in vault_resources:
        options = run.options[resource.name]
        # The namespace is the stack's, so clusters can share it; the rest the cluster's.
        parent = stack_urn if resource.typ == NAMESPACE else component_urn
        assert options.parent == parent, resource.name
        assert options.delete_before_replace, resource.name
        assert not options.protect, resource.name


def test_outputs_for_the_default_config(run_program) -> None:
    exports = run_program().exports
    assert sorted(exports) == sorted(
        [
            "nomad_server_config",
            "nomad_client_config",
            "auth_path",
            "auth_accessor",
            "role_name",
            "policy_name",
            "namespace",
            "policy",
            "kv_mount",
            "vault_policies",
            "jwks_keys",
            "vault_server",
            "single_form_mount",
        ]
    )
    assert exports["single_form_mount"] == {"namespace": "", "auth_path": "jwt-nomad"}
    assert exports["kv_mount"] == "secret"
    assert exports["vault_policies"] == ["nomad-workloads"]
    assert (exports["auth_path"], exports["role_name"], exports["policy_name"]) == (
        "jwt-nomad",
        "nomad-workloads",
        "nomad-workloads",
    )
    assert exports["namespace"] == ""
    (client,) = parse_hcl(exports["nomad_client_config"])["vault"]
    assert client == {
        "enabled": True,
        "address": "https://vault.example.test:8200",
        "jwt_auth_backend_path": "jwt-nomad",
    }
    (server,) = parse_hcl(exports["nomad_server_config"])["vault"]
    assert server["default_identity"] == [
        {
            "aud": ["vault.io"],
            "ttl": "1h",
            "extra_claims": [{"unique_id": "${job.region}:${job.namespace}:${job.id}"}],
        }
    ]


def test_outputs_carry_the_custom_settings(run_program) -> None:
    exports = run_program(CUSTOM, vault={"namespace": "team"}).exports
    assert (exports["namespace"], exports["kv_mount"]) == ("nomad", "kv")
    (client,) = parse_hcl(exports["nomad_client_config"])["vault"]
    assert client == {
        "enabled": True,
        "address": "https://vault.example:8200",
        "namespace": "team/nomad",
        "jwt_auth_backend_path": "nomad-jwt",
    }
    (server,) = parse_hcl(exports["nomad_server_config"])["vault"]
    assert server["default_identity"][0]["aud"] == ["nomad.example", "vault.io"]
    assert server["default_identity"][0]["ttl"] == "15m"


@pytest.mark.parametrize(
    "bad",
    [{"jwksUrl": "ftp://x"}, {"kvMount": ""}, {"tokenPeriod": "0s", "roleName": "a/b"}],
)
def test_bad_config_registers_no_resource(run_program, bad) -> None:
    with pytest.raises(ConfigError) as caught:
        run_program(bad)
    for key in bad:
        assert f"nomad-vault-setup:{key}" in str(caught.value)
    assert run_program.registered == []


def test_extra_roles_get_the_workload_policy_and_their_own(run_program) -> None:
    run = run_program({"roles": ROLES})
    policies = {r.inputs["name"]: r.inputs["policy"] for r in run.of_type(POLICY)}
    assert sorted(policies) == ["nomad-workloads", "nomad-workloads-db-admin"]
    assert policies["nomad-workloads-db-admin"].endswith(
        '\npath "database/creds/admin" { capabilities = ["read"] }'
    )

    roles = {r.inputs["roleName"]: r.inputs for r in run.of_type(ROLE)}
    assert sorted(roles) == ["ci", "db-admin", "nomad-workloads"]
    db_admin = roles["db-admin"]
    assert db_admin["boundClaims"] == {"nomad_namespace": "prod", "nomad_job_id": "db-*,migrate"}
    assert db_admin["boundClaimsType"] == "glob"
    assert db_admin["tokenPolicies"] == [
        "nomad-workloads",
        "database-admin",
        "nomad-workloads-db-admin",
    ]
    assert db_admin["tokenPeriod"] == 600
    assert roles["ci"]["tokenPolicies"] == ["nomad-workloads", "ci-deploy"]
    assert roles["ci"]["tokenPeriod"] == 1800
    default = roles["nomad-workloads"]
    for role in (db_admin, roles["ci"]):
        for same in ("backend", "roleType", "userClaim", "claimMappings", "boundAudiences"):
            assert role[same] == default[same], same
    assert "boundClaims" not in default


def test_manage_kv_mount_creates_a_kv_v2_mount_in_the_namespace(run_program) -> None:
    run = run_program({"manageKvMount": "true", "kvMount": "nomad-kv", "namespace": "nomad"})
    assert run.one(MOUNT).inputs == {
        "path": "nomad-kv",
        "type": "kv",
        "options": {"version": "2"},
        "description": "Nomad workload secrets (managed by nomad-vault-setup)",
        "namespace": "nomad",
    }
    assert run_program().of_type(MOUNT) == []


CLUSTERS = json.dumps(
    [
        {"name": "east", "jwksUrl": "https://east.example/.well-known/jwks.json"},
        {"name": "west", "namespace": "nomad", "kvMount": "west-kv", "identityClaim": "job-id"},
        {"name": "edge", "namespace": "nomad", "authPath": "edge", "roles": ROLES},
    ]
)


def test_each_cluster_is_a_component_and_a_shared_namespace_is_created_once(run_program) -> None:
    run = run_program({"clusters": CLUSTERS, "namespace": "", "tokenPeriod": "1h"})
    components = sorted(r.name for r in run.of_type(COMPONENT_TYPE))
    assert components == ["nomad-east", "nomad-edge", "nomad-west"], (
        "registration order is the engine's"
    )
    (namespace,) = run.of_type(NAMESPACE)
    assert (namespace.name, namespace.inputs["path"]) == ("namespace-nomad", "nomad")

    backends = {r.name: r.inputs for r in run.of_type(BACKEND)}
    assert backends["nomad-east-auth"]["path"] == "jwt-nomad-east"
    assert backends["nomad-east-auth"]["jwksUrl"] == "https://east.example/.well-known/jwks.json"
    assert "namespace" not in backends["nomad-east-auth"]
    assert backends["nomad-west-auth"]["path"] == "jwt-nomad-west"
    assert backends["nomad-west-auth"]["namespace"] == "nomad"
    assert backends["nomad-edge-auth"]["path"] == "edge"

    roles = {r.name: r.inputs for r in run.of_type(ROLE)}
    assert roles["nomad-west-role"]["userClaim"] == "/nomad_job_id"
    assert roles["nomad-east-role"]["userClaim"] == "/extra_claims/unique_id"
    assert roles["nomad-east-role"]["tokenPeriod"] == 3600, "top-level settings are inherited"
    assert "nomad-edge-role-db-admin" in roles
    policies = sorted(r.inputs["name"] for r in run.of_type(POLICY))
    assert policies == [
        "nomad-workloads-east",
        "nomad-workloads-edge",
        "nomad-workloads-edge-db-admin",
        "nomad-workloads-west",
    ]


def test_with_clusters_every_output_is_a_map_by_cluster(run_program) -> None:
    exports = run_program({"clusters": CLUSTERS}).exports
    assert exports.pop("vault_server") == ON_OPENBAO, "one server for the stack"
    assert exports.pop("single_form_mount") is None, "never a single-cluster stack"
    for name, value in exports.items():
        assert sorted(value) == ["east", "edge", "west"], name
    assert exports["auth_path"] == {
        "east": "jwt-nomad-east",
        "west": "jwt-nomad-west",
        "edge": "edge",
    }
    assert exports["namespace"]["west"] == "nomad" and exports["namespace"]["east"] == ""
    (west,) = parse_hcl(exports["nomad_client_config"]["west"])["vault"]
    assert (west["namespace"], west["jwt_auth_backend_path"]) == ("nomad", "jwt-nomad-west")
    (east_server,) = parse_hcl(exports["nomad_server_config"]["east"])["vault"]
    (west_server,) = parse_hcl(exports["nomad_server_config"]["west"])["vault"]
    assert "extra_claims" in east_server["default_identity"][0]
    assert "extra_claims" not in west_server["default_identity"][0]


@pytest.mark.parametrize("protect", [True, False])
def test_protect_guards_the_mount_the_namespace_and_a_managed_kv_mount(
    run_program, protect
) -> None:
    config = {"namespace": "nomad", "manageKvMount": "true", "protect": str(protect).lower()}
    run = run_program(config)
    guarded = {NAMESPACE, BACKEND, MOUNT}
    for resource in run.resources:
        if resource.typ.startswith("vault:"):
            expected = protect and resource.typ in guarded
            assert run.options[resource.name].protect == expected, resource.name


@pytest.mark.parametrize(
    ("entries", "heir"),
    [
        ([{"name": "new"}, {"name": "old", "authPath": "jwt-nomad"}], "nomad-old"),
        ([{"name": "old", "authPath": "jwt-nomad"}, {"name": "new"}], "nomad-old"),
        ([{"name": "a"}, {"name": "b"}], None),  # no entry has the recorded mount
        ([{"name": "a", "authPath": "jwt-nomad", "namespace": "t"}], None),  # another namespace
    ],
)
def test_the_cluster_with_the_single_forms_mount_takes_over_its_names(
    run_program, entries, heir
) -> None:
    """Chosen by its mount, not its position: a new cluster listed first never inherits (and
    so moves) the mount running jobs log in at."""
    recorded = {"auth_path": "jwt-nomad", "namespace": "", "vault_server": ON_OPENBAO}
    run = run_program({"clusters": json.dumps(entries)}, previous_outputs=recorded)
    took_over = [name for name, options in run.options.items() if options.aliases == ("nomad",)]
    assert took_over == ([heir] if heir else [])


def test_the_heirs_children_carry_their_single_form_names(run_program) -> None:
    """Explicit, not only inherited from the component: a move an interrupted run left half
    done must still find each child (an inherited alias does not)."""
    recorded = {"auth_path": "jwt-nomad", "namespace": "", "vault_server": ON_OPENBAO}
    entries = [{"name": "new"}, {"name": "old", "authPath": "jwt-nomad", "roles": ROLES}]
    run = run_program({"clusters": json.dumps(entries)}, previous_outputs=recorded)
    children = {n: o.aliases for n, o in run.options.items() if n.startswith("nomad-old-")}
    assert children["nomad-old-auth"] == ("nomad-auth",)
    assert children["nomad-old-role-db-admin-policy"] == ("nomad-role-db-admin-policy",)
    assert not any(o.aliases for n, o in run.options.items() if n.startswith("nomad-new-"))


def test_the_single_forms_mount_is_carried_forward(run_program) -> None:
    """Once in the `clusters` form (even if a targeted or failed run wrote its outputs), the
    heir is still the entry holding the single form's mount."""
    carried = {"namespace": "", "auth_path": "jwt-nomad"}
    entries = [{"name": "new"}, {"name": "old", "authPath": "jwt-nomad"}]
    recorded = {
        "auth_path": {"new": "jwt-nomad-new", "old": "jwt-nomad"},
        "namespace": {"new": "", "old": ""},
        "single_form_mount": carried,
    }
    run = run_program({"clusters": json.dumps(entries)}, previous_outputs=recorded)
    assert run.options["nomad-old"].aliases == ("nomad",)
    assert run.exports["single_form_mount"] == carried


def test_the_same_path_in_another_namespace_is_not_the_heir(run_program) -> None:
    recorded = {"auth_path": "jwt-nomad", "namespace": "", "vault_server": ON_OPENBAO}
    entries = [{"name": "a", "authPath": "jwt-nomad", "namespace": "team"}]
    run = run_program({"clusters": json.dumps(entries)}, previous_outputs=recorded)
    assert not [name for name, options in run.options.items() if options.aliases == ("nomad",)]


@pytest.mark.parametrize(
    ("recorded", "config", "says"),
    [
        (  # renaming an entry
            {"auth_path": {"a": "jwt-x"}, "namespace": {"a": ""}},
            {"clusters": json.dumps([{"name": "a2", "authPath": "jwt-x"}])},
            "belongs to cluster 'a' in this stack, not to cluster 'a2'",
        ),
        (  # leaving the clusters form
            {"auth_path": {"a": "jwt-nomad"}, "namespace": {"a": ""}},
            {},
            "belongs to cluster 'a' in this stack, not to the single-cluster form",
        ),
    ],
)
def test_a_recorded_mount_under_another_cluster_name_is_refused(
    run_program, recorded, config, says
) -> None:
    with pytest.raises(ConfigError, match=says):
        run_program(config, previous_outputs=recorded | {"vault_server": ON_OPENBAO})
