"""Two Nomad clusters in one OpenBao, each with its own issuer, mount, policy and KV mount
(one of them in a namespace, with the program managing both KV mounts)."""

import pytest

from tests.e2e.harness import Scenario, changes
from tests.e2e.vault_checks import denied, login, login_refused, read_secret, write_secret
from tests.hcl import parse_hcl


@pytest.fixture(scope="module")
def two_clusters(new_scenario) -> Scenario:
    scenario: Scenario = new_scenario()
    scenario.west_issuer, west_jwks = scenario.add_issuer()
    scenario.configure(
        manageKvMount=True,
        clusters=[
            {"name": "east", "kvMount": "kv-east"},
            {"name": "west", "jwksUrl": west_jwks, "kvMount": "kv-west", "namespace": "west"},
        ],
    )
    result = scenario.up()
    # namespace + per cluster: component, KV mount, auth, policy, role
    assert changes(result.summary.resource_changes) == {"create": 1 + 1 + 2 * 5}
    write_secret(scenario.vault, "kv-east", "default/web", {"cluster": "east"})
    write_secret(scenario.client(namespace="west"), "kv-west", "default/web", {"cluster": "west"})
    return scenario


def test_outputs_are_maps_by_cluster(two_clusters: Scenario) -> None:
    outputs = two_clusters.outputs()
    assert outputs["auth_path"] == {"east": "jwt-nomad-east", "west": "jwt-nomad-west"}
    assert outputs["namespace"] == {"east": "", "west": "west"}
    (west,) = parse_hcl(outputs["nomad_client_config"]["west"])["vault"]
    assert (west["namespace"], west["jwt_auth_backend_path"]) == ("west", "jwt-nomad-west")
    inside = two_clusters.client(namespace="west")
    assert (
        inside.sys.list_auth_methods()["data"]["jwt-nomad-west/"]["accessor"]
        == (outputs["auth_accessor"]["west"])
    )
    assert inside.sys.list_mounted_secrets_engines()["data"]["kv-west/"]["options"] == {
        "version": "2"
    }


def test_each_cluster_reads_its_own_secrets_only(two_clusters: Scenario) -> None:
    east_jwt = two_clusters.issuer.mint("web")
    west_jwt = two_clusters.west_issuer.mint("web")
    east = login(two_clusters, east_jwt, "jwt-nomad-east", "nomad-workloads")
    west = login(two_clusters, west_jwt, "jwt-nomad-west", "nomad-workloads", namespace="west")
    assert read_secret(east, "kv-east", "default/web") == {"cluster": "east"}
    assert read_secret(west, "kv-west", "default/web") == {"cluster": "west"}
    # east's token, sent into west's namespace, may not read west's secret.
    east_in_west = two_clusters.client(token=east.token, namespace="west")
    assert denied(read_secret, east_in_west, "kv-west", "default/web")


def test_a_token_of_one_cluster_is_refused_at_the_others_mount(two_clusters: Scenario) -> None:
    west_jwt = two_clusters.west_issuer.mint("web")
    east_jwt = two_clusters.issuer.mint("web")
    refused_at_east = login_refused(two_clusters, west_jwt, "jwt-nomad-east", "nomad-workloads")
    refused_at_west = login_refused(
        two_clusters, east_jwt, "jwt-nomad-west", "nomad-workloads", namespace="west"
    )
    assert "failed to verify" in refused_at_east and "failed to verify" in refused_at_west


def test_destroy_removes_both_clusters_and_the_namespace(two_clusters: Scenario) -> None:
    assert changes(two_clusters.preview(refresh=True).change_summary) == {}
    two_clusters.destroy()
    mounts = two_clusters.vault.sys.list_auth_methods()["data"]
    assert "jwt-nomad-east/" not in mounts
    assert "kv-east/" not in two_clusters.vault.sys.list_mounted_secrets_engines()["data"]
    assert two_clusters.vault.read("sys/namespaces/west") is None
