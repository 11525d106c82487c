"""keySource: static-keys through the real engine on a real OpenBao: Vault is handed the keys
the program read from the JWKS, never fetches it, and follows Nomad's key rotation one `up`
at a time. The tests share one deployment and run in file order.
"""

import pytest
from pulumi import automation as auto

from devtools.workload import login_error
from nomad_vault_setup.signing_keys import RETIRING
from tests.e2e.harness import Scenario, changes
from tests.e2e.vault_checks import denied, login, read_secret, write_secret

AUTH, ROLE = "jwt-nomad", "nomad-workloads"


def trusted_keys(scenario: Scenario) -> list[str]:
    return scenario.vault.read(f"auth/{AUTH}/config")["data"]["jwt_validation_pubkeys"]


def logs_in(scenario: Scenario, identity: str) -> bool:
    return login_error(scenario.server.address, identity, AUTH, ROLE) is None


@pytest.fixture(scope="module")
def deployed(new_scenario) -> Scenario:
    scenario = new_scenario()
    scenario.configure(keySource="static-keys")
    result = scenario.up()
    assert changes(result.summary.resource_changes) == {"create": 5}
    write_secret(scenario.vault, "secret", "default/web", {"password": "web"})
    write_secret(scenario.vault, "secret", "default/api", {"password": "api"})
    return scenario


def test_vault_is_given_the_keys_not_the_url(deployed: Scenario) -> None:
    config = deployed.vault.read(f"auth/{AUTH}/config")["data"]
    assert config["jwks_url"] == ""
    # The RSA and the Ed25519 key of the issuer, as PEM.
    assert len(config["jwt_validation_pubkeys"]) == 2
    assert all(key.startswith("-----BEGIN PUBLIC KEY-----") for key in trusted_keys(deployed))
    assert sorted(deployed.outputs()["jwks_keys"]) == sorted(trusted_keys(deployed))


@pytest.mark.parametrize("alg", ["RS256", "EdDSA"])
def test_jobs_log_in_while_the_jwks_is_unreachable(deployed: Scenario, alg: str) -> None:
    deployed.issuer_server.unavailable = True
    deployed.issuer_server.jwks_requested.clear()
    try:
        job = login(deployed, deployed.issuer.mint("web", alg=alg), AUTH, ROLE)
        assert read_secret(job, "secret", "default/web") == {"password": "web"}
        assert denied(read_secret, job, "secret", "default/api")
    finally:
        deployed.issuer_server.unavailable = False
    assert not deployed.issuer_server.jwks_requested.is_set(), "Vault fetched the JWKS"


def test_an_unreachable_jwks_stops_up_before_any_write(deployed: Scenario) -> None:
    before = trusted_keys(deployed)
    deployed.issuer_server.unavailable = True
    try:
        with pytest.raises(auto.CommandError) as failed:
            deployed.up()
    finally:
        deployed.issuer_server.unavailable = False
    message = str(failed.value)
    assert "refusing to apply this stack, nothing was changed" in message
    assert (
        f"nomad-vault-setup:jwksUrl: keySource is static-keys: {deployed.jwks_url} answered"
        " HTTP 503"
    ) in message
    assert trusted_keys(deployed) == before


def test_a_prepublished_key_is_shown_by_preview_and_trusted_after_up(deployed: Scenario) -> None:
    old = deployed.issuer.rsa_kid
    new = deployed.issuer.prepublish()
    # A scheduled drift check alerts: the JWKS has changed since the last up.
    with pytest.raises(auto.CommandError) as drift:
        deployed.preview(expect_no_changes=True)
    assert "the JWKS has 1 key(s) more than at the last `up`" in str(drift.value)
    result = deployed.up()
    assert changes(result.summary.resource_changes) == {"update": 1}
    assert len(trusted_keys(deployed)) == 3
    # Nomad then signs with the new key; identities signed before still log in.
    deployed.issuer.rotate(new)
    assert logs_in(deployed, deployed.issuer.mint("web"))
    assert logs_in(deployed, deployed.issuer.mint_with(old, "web"))
    deployed.old_kid = old  # type: ignore[attr-defined]


def test_a_retired_key_is_trusted_for_one_more_up(deployed: Scenario) -> None:
    old = deployed.old_kid  # type: ignore[attr-defined]
    deployed.issuer.retire(old)
    with pytest.raises(auto.CommandError) as drift:
        deployed.preview(expect_no_changes=True)
    assert "1 key(s) left the JWKS since the last `up`" in str(drift.value)
    first = deployed.up()
    # The mount keeps the old key this time, labelled as retiring.
    assert changes(first.summary.resource_changes) == {"update": 1}
    keys = trusted_keys(deployed)
    assert len(keys) == 3
    assert [key.split("\n")[0] for key in keys if not key.startswith("-----BEGIN")] == [
        RETIRING.strip()
    ]
    assert len(deployed.outputs()["jwks_keys"]) == 2
    assert logs_in(deployed, deployed.issuer.mint_with(old, "web"))
    second = deployed.up()
    assert changes(second.summary.resource_changes) == {"update": 1}
    assert len(trusted_keys(deployed)) == 2
    refusal = login_error(
        deployed.server.address, deployed.issuer.mint_with(old, "web"), AUTH, ROLE
    )
    assert refusal is not None
    assert logs_in(deployed, deployed.issuer.mint("web"))
    assert logs_in(deployed, deployed.issuer.mint("web", alg="EdDSA"))
    # Converged: nothing more to do.
    assert changes(deployed.preview(expect_no_changes=True).change_summary) == {}


def test_switching_between_url_and_static_keys_keeps_the_mount(deployed: Scenario) -> None:
    accessor = deployed.outputs()["auth_accessor"]
    for source in ("jwks-url", "static-keys"):
        deployed.configure(keySource=source)
        result = deployed.up()
        assert changes(result.summary.resource_changes) == {"update": 1}, source
        config = deployed.vault.read(f"auth/{AUTH}/config")["data"]
        if source == "jwks-url":
            assert config["jwks_url"] == deployed.jwks_url
            assert not config["jwt_validation_pubkeys"]
        else:
            assert config["jwks_url"] == "" and len(config["jwt_validation_pubkeys"]) == 2
        assert deployed.outputs()["auth_accessor"] == accessor
        assert logs_in(deployed, deployed.issuer.mint("web"))


def test_destroy_removes_the_mount(deployed: Scenario) -> None:
    deployed.destroy()
    assert f"{AUTH}/" not in deployed.vault.sys.list_auth_methods()["data"]
