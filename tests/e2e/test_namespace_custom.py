"""A namespace with every name, audience and period customised, on a real OpenBao.

Runs in file order on one deployment: up, agreement with the server, what jobs can do inside
the namespace, no drift, destroy (which must take the namespace too).
"""

import pytest

from tests.e2e.harness import Scenario, changes
from tests.e2e.vault_checks import denied, login, read_secret, write_secret
from tests.hcl import parse_hcl

NS, AUTH, ROLE, POLICY, KV = "nomad", "nomad-jwt", "workloads", "workload-secrets", "kv"
CONFIG = {
    "namespace": NS,
    "kvMount": KV,
    "authPath": AUTH,
    "roleName": ROLE,
    "policyName": POLICY,
    "audiences": ["nomad.example", "vault.io"],
    "tokenPeriod": "45m",
    "identityTtl": "20m",
}


@pytest.fixture(scope="module")
def deployed(new_scenario) -> Scenario:
    scenario = new_scenario()
    scenario.configure(**CONFIG)
    assert changes(scenario.up().summary.resource_changes) == {"create": 6}
    inside = scenario.client(namespace=NS)
    inside.sys.enable_secrets_engine("kv", path=KV, options={"version": "2"})
    write_secret(inside, KV, "default/web", {"password": "in-namespace"})
    write_secret(inside, KV, "default/api", {"password": "api"})
    return scenario


def test_outputs_agree_with_the_server(deployed: Scenario) -> None:
    outputs = deployed.outputs()
    inside = deployed.client(namespace=NS)
    namespace = deployed.vault.read(f"sys/namespaces/{NS}")["data"]
    assert namespace["custom_metadata"] == {
        "created-by": "nomad-vault-setup",
        "stack": "organization/nomad-vault-setup/e2e",
    }
    assert outputs["namespace"] == NS

    assert f"{AUTH}/" not in deployed.vault.sys.list_auth_methods()["data"], "not at the root"
    assert (
        outputs["auth_accessor"] == inside.sys.list_auth_methods()["data"][f"{AUTH}/"]["accessor"]
    )

    role = inside.read(f"auth/{AUTH}/role/{ROLE}")["data"]
    assert role["bound_audiences"] == ["nomad.example", "vault.io"]
    assert (role["token_period"], role["token_policies"]) == (45 * 60, [POLICY])
    assert inside.read(f"auth/{AUTH}/config")["data"]["default_role"] == ROLE
    policy = inside.sys.read_acl_policy(POLICY)["data"]["policy"]
    marker, rules = policy.split("\n", 1)
    assert policy == outputs["policy"] and rules.startswith(f'path "{KV}/data/')
    assert marker.startswith("# Written by nomad-vault-setup (stack ")

    (client,) = parse_hcl(outputs["nomad_client_config"])["vault"]
    assert client == {
        "enabled": True,
        "address": deployed.server.address,
        "namespace": NS,
        "jwt_auth_backend_path": AUTH,
    }
    (server,) = parse_hcl(outputs["nomad_server_config"])["vault"]
    assert server["default_identity"][0]["aud"] == ["nomad.example", "vault.io"]
    assert server["default_identity"][0]["ttl"] == "20m"


def test_a_job_reads_its_secret_inside_the_namespace_only(deployed: Scenario) -> None:
    jwt = deployed.issuer.mint("web", audience=["nomad.example"], alg="EdDSA")
    job = login(deployed, jwt, AUTH, ROLE, namespace=NS)
    assert job.auth.token.lookup_self()["data"]["period"] == 45 * 60
    assert read_secret(job, KV, "default/web") == {"password": "in-namespace"}
    assert denied(read_secret, job, KV, "default/api")
    # Either bound audience is accepted.
    login(deployed, deployed.issuer.mint("web", audience=["vault.io"]), AUTH, ROLE, namespace=NS)


def test_the_root_namespace_has_no_such_login(deployed: Scenario) -> None:
    assert denied(login, deployed, deployed.issuer.mint("web"), AUTH, ROLE)


def test_no_drift_after_up(deployed: Scenario) -> None:
    assert changes(deployed.preview(refresh=True).change_summary) == {}


def test_destroy_removes_the_namespace(deployed: Scenario) -> None:
    assert changes(deployed.destroy().summary.resource_changes) == {"delete": 6}
    assert deployed.vault.read(f"sys/namespaces/{NS}") is None
