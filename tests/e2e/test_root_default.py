"""The default configuration at the root of a real OpenBao, through the real engine.

The tests share one deployment and run in file order: up, what it created, what jobs can and
cannot do, idempotence, drift, an in-place change, and last the destroy.
"""

import time

import pytest

from devtools.workload import login_error
from tests.e2e.harness import Scenario, changes
from tests.e2e.vault_checks import denied, login, read_secret, refused, write_secret
from tests.hcl import parse_hcl

AUTH, ROLE, POLICY, KV = "jwt-nomad", "nomad-workloads", "nomad-workloads", "secret"
SECRETS = {
    "default/web": {"password": "web-root"},
    "default/web/db": {"password": "web-db"},
    "default/api": {"password": "api-root"},
    "prod/web": {"password": "prod-web"},
}


@pytest.fixture(scope="module")
def deployed(new_scenario) -> Scenario:
    scenario = new_scenario()
    scenario.configure()
    result = scenario.up()
    assert changes(result.summary.resource_changes) == {"create": 5}
    for path, data in SECRETS.items():
        write_secret(scenario.vault, KV, path, data)
    return scenario


def test_outputs_agree_with_the_server(deployed: Scenario) -> None:
    outputs = deployed.outputs()
    mounts = deployed.vault.sys.list_auth_methods()["data"]
    assert mounts[f"{AUTH}/"]["type"] == "jwt"
    assert outputs["auth_accessor"] == mounts[f"{AUTH}/"]["accessor"]
    assert (outputs["auth_path"], outputs["role_name"], outputs["policy_name"]) == (
        AUTH,
        ROLE,
        POLICY,
    )
    assert outputs["namespace"] == ""

    config = deployed.vault.read(f"auth/{AUTH}/config")["data"]
    assert config["jwks_url"] == deployed.jwks_url
    assert config["jwt_supported_algs"] == ["EdDSA", "RS256"]
    assert config["default_role"] == ROLE

    role = deployed.vault.read(f"auth/{AUTH}/role/{ROLE}")["data"]
    assert role["role_type"] == "jwt"
    assert role["bound_audiences"] == ["vault.io"]
    assert (role["user_claim"], role["user_claim_json_pointer"]) == (
        "/extra_claims/unique_id",
        True,
    )
    assert role["claim_mappings"] == {
        "nomad_job_id": "nomad_job_id",
        "nomad_namespace": "nomad_namespace",
        "nomad_task": "nomad_task",
    }
    assert (role["token_type"], role["token_period"], role["token_explicit_max_ttl"]) == (
        "service",
        1800,
        0,
    )
    assert role["token_policies"] == [POLICY]

    policy = deployed.vault.sys.read_acl_policy(POLICY)["data"]["policy"]
    assert policy == outputs["policy"]
    assert f"identity.entity.aliases.{outputs['auth_accessor']}.metadata.nomad_job_id" in policy

    (client,) = parse_hcl(outputs["nomad_client_config"])["vault"]
    assert client == {
        "enabled": True,
        "address": deployed.server.address,
        "jwt_auth_backend_path": AUTH,
    }
    (server,) = parse_hcl(outputs["nomad_server_config"])["vault"]
    assert server["default_identity"] == [
        {
            "aud": ["vault.io"],
            "ttl": "1h",
            "extra_claims": [{"unique_id": "${job.region}:${job.namespace}:${job.id}"}],
        }
    ]


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_a_job_reads_only_its_own_secrets(deployed: Scenario, alg: str) -> None:
    job = login(deployed, deployed.issuer.mint("web", namespace="default", alg=alg), AUTH, ROLE)

    token = job.auth.token.lookup_self()["data"]
    assert token["type"] == "service"
    assert token["period"] == 1800
    assert sorted(token["policies"]) == ["default", POLICY]
    assert token["meta"]["nomad_job_id"] == "web"

    assert read_secret(job, KV, "default/web") == SECRETS["default/web"]
    assert read_secret(job, KV, "default/web/db") == SECRETS["default/web/db"]
    assert "web" in job.list(f"{KV}/metadata/default")["data"]["keys"]
    assert "default/" in job.list(f"{KV}/metadata")["data"]["keys"]

    assert denied(read_secret, job, KV, "default/api"), "another job's secret"
    assert denied(read_secret, job, KV, "prod/web"), "the same job ID in another namespace"
    assert denied(write_secret, job, KV, "default/web", {"password": "overwritten"}), "write"
    assert denied(job.sys.list_mounted_secrets_engines), "sys/"
    # As with `nomad setup vault`: `<kv>/metadata/*` list shows secret names (never values)
    # of every namespace; the values stay denied above.
    assert "web" in job.list(f"{KV}/metadata/prod")["data"]["keys"]


def test_logins_with_bad_tokens_are_refused(deployed: Scenario) -> None:
    issuer, now = deployed.issuer, int(time.time())
    bad_tokens = {
        "wrong audience": issuer.mint("web", audience=["other.io"]),
        "expired": issuer.mint("web", now=now - 7200, ttl=600),
        "not yet valid": issuer.mint("web", nbf=now + 600, iat=now + 600),
        "unknown kid": issuer.mint_with_unknown_kid("web"),
        "key not in the JWKS": issuer.mint_with_foreign_key("web"),
        "HS256": issuer.mint_hs256("web"),
        "alg none": issuer.mint_alg_none("web"),
        "no user claim": issuer.mint("web", extra_claims=None),
    }
    address = deployed.server.address
    accepted = [
        reason
        for reason, jwt in bad_tokens.items()
        if login_error(address, jwt, AUTH, ROLE) is None
    ]
    assert accepted == []
    # The same issuer's well-formed token is let in: the refusals are about the tokens.
    assert login_error(address, issuer.mint("web"), AUTH, ROLE) is None


@pytest.mark.parametrize("job_id", ["web/db", "*", "web+"])
def test_a_job_id_with_path_characters_gains_no_other_path(deployed: Scenario, job_id: str) -> None:
    """`web/db` would render to job web's sub-path; `*`/`+` are globs on older Vault."""
    job = login(deployed, deployed.issuer.mint(job_id, namespace="default"), AUTH, ROLE)
    for path in ("default/web/db", "default/web", "default/api", f"default/{job_id}"):
        assert refused(read_secret, job, KV, path), path


def test_a_second_preview_shows_no_changes(deployed: Scenario) -> None:
    assert changes(deployed.preview().change_summary) == {}
    assert changes(deployed.preview(refresh=True).change_summary) == {}


def test_hand_edits_are_reported_and_repaired(deployed: Scenario) -> None:
    role_path = f"auth/{AUTH}/role/{ROLE}"
    role = deployed.vault.read(role_path)["data"]
    deployed.vault.write_data(role_path, data=role | {"token_period": 60})
    deployed.vault.sys.create_or_update_acl_policy(
        POLICY, 'path "sys/*" { capabilities = ["read"] }'
    )

    assert changes(deployed.preview(refresh=True).change_summary) == {"update": 2}
    assert changes(deployed.up(refresh=True).summary.resource_changes) == {"update": 2}

    assert deployed.vault.read(role_path)["data"]["token_period"] == 1800
    assert (
        deployed.vault.sys.read_acl_policy(POLICY)["data"]["policy"] == deployed.outputs()["policy"]
    )
    assert changes(deployed.preview(refresh=True).change_summary) == {}


def test_a_token_period_change_updates_the_role_in_place(deployed: Scenario) -> None:
    accessor = deployed.outputs()["auth_accessor"]
    deployed.configure(tokenPeriod="1h")
    result = deployed.up()
    assert changes(result.summary.resource_changes) == {"update": 1}
    assert deployed.vault.read(f"auth/{AUTH}/role/{ROLE}")["data"]["token_period"] == 3600
    assert deployed.outputs()["auth_accessor"] == accessor
    assert deployed.vault.sys.list_auth_methods()["data"][f"{AUTH}/"]["accessor"] == accessor


def test_destroy_leaves_nothing(deployed: Scenario) -> None:
    result = deployed.destroy()
    assert changes(result.summary.resource_changes) == {"delete": 5}
    assert f"{AUTH}/" not in deployed.vault.sys.list_auth_methods()["data"]
    assert POLICY not in deployed.vault.sys.list_acl_policies()["data"]["keys"]
    assert deployed.outputs() == {}
