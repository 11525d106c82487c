"""The whole program under mocks: what it registers, with which inputs, and what it exports."""

import pytest

from components import ConfigError
from components.vault_setup import COMPONENT_TYPE
from tests.hcl import parse_hcl
from tests.unit.conftest import MOCK_ACCESSOR, resolve

NAMESPACE = "vault:index/namespace:Namespace"
BACKEND = "vault:jwt/authBackend:AuthBackend"
POLICY = "vault:index/policy:Policy"
ROLE = "vault:jwt/authBackendRole:AuthBackendRole"

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
        "userClaim": "/nomad_job_id",
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


def test_namespace_and_custom_config_reach_every_resource(run_program, tmp_path) -> None:
    ca = tmp_path / "nomad-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    run = run_program(CUSTOM | {"jwksCaFile": str(ca)})
    assert [r.typ for r in run.resources] == [COMPONENT_TYPE, NAMESPACE, BACKEND, POLICY, ROLE]

    assert run.one(NAMESPACE).inputs == {
        "path": "nomad",
        "customMetadata": {"created-by": "nomad-vault-setup"},
    }
    for typ in (BACKEND, POLICY, ROLE):
        assert run.one(typ).inputs["namespace"] == "nomad", typ

    backend = run.one(BACKEND).inputs
    assert backend["path"] == "nomad-jwt"
    assert backend["jwksUrl"] == CUSTOM["jwksUrl"]
    assert backend["jwksCaPem"] == ca.read_text()
    assert backend["defaultRole"] == "workloads"

    assert run.one(POLICY).inputs["name"] == "workload-secrets"
    assert run.one(POLICY).inputs["policy"].startswith('path "kv/data/')

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


def test_every_vault_resource_is_a_child_of_the_component(run_program) -> None:
    setup = run_program({"namespace": "nomad"}).globals["setup"]
    children = [setup.namespace_resource, setup.auth_backend, setup.policy_resource, setup.role]
    for urn in resolve([child.urn for child in children]):
        assert f"{COMPONENT_TYPE}$vault:" in urn, urn


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
        ]
    )
    assert exports["kv_mount"] == "secret"
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
    assert server["default_identity"] == [{"aud": ["vault.io"], "ttl": "1h"}]


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
    assert server["default_identity"] == [{"aud": ["nomad.example", "vault.io"], "ttl": "15m"}]


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
