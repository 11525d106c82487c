"""The questions asked straight of Vault (vault_http.py) keep the token to the stack's own
address and out of every message, and tell a refused token from a server problem."""

import json

import pytest

from nomad_vault_setup.vault_http import (
    Refused,
    Session,
    VaultUnreachable,
    inside,
    token_namespace,
)
from tests.unit.test_server_kind import Stub, serve

TOKEN = "hvs.SECRET-TOKEN"


def answering(status: int, body: dict | None = None) -> Stub:
    payload = json.dumps(body).encode() if body is not None else b""
    return Stub(lambda path: (status, payload, {"Content-Type": "application/json"}))


def test_the_token_never_appears_in_an_error_or_a_repr() -> None:
    for stub in serve(answering(200, {})):
        session = Session(stub.address, TOKEN + "\n")
        with pytest.raises(VaultUnreachable) as failed:
            session.ask("auth/token/lookup-self")
        assert TOKEN not in str(failed.value)
        assert TOKEN not in repr(session)
        assert not stub.requests, "nothing was sent"


def test_a_loopback_vault_is_never_asked_through_a_proxy(monkeypatch) -> None:
    for proxy in serve(answering(200, {"data": {}})):
        monkeypatch.setenv("http_proxy", proxy.address)
        monkeypatch.setenv("HTTP_PROXY", proxy.address)
        for vault in serve(answering(200, {"data": {"namespace_path": "admin/"}})):
            assert token_namespace(Session(vault.address, TOKEN, "admin/team")) == "admin"
            assert proxy.requests == [], "the token went to the proxy"
            ((path, headers),) = vault.requests
            assert path == "/v1/auth/token/lookup-self"
            assert headers["X-Vault-Token"] == TOKEN
            assert "X-Vault-Namespace" not in headers, "asked where the provider asks it"


@pytest.mark.parametrize("status", [400, 403])
def test_a_refused_token_is_told_from_a_missing_path(status: int) -> None:
    for stub in serve(answering(status, {"errors": ["permission denied"]})):
        with pytest.raises(Refused) as refused:
            token_namespace(Session(stub.address, TOKEN))
        assert refused.value.status == status
        assert str(refused.value) == f"HTTP {status}: permission denied"


def test_a_write_that_finds_nothing_is_a_failure_not_a_success() -> None:
    for stub in serve(answering(404, {"errors": []})):
        session = Session(stub.address, TOKEN)
        assert session.ask("auth/jwt-nomad/config") is None, "a read finds nothing"
        with pytest.raises(Refused) as refused:
            session.ask("auth/jwt-nomad/config", {"jwks_url": "http://x"})
        assert refused.value.status == 404


def test_a_clusters_namespace_is_joined_under_the_providers() -> None:
    assert inside(Session("http://v", TOKEN, "admin"), "team").namespace == "admin/team"
    assert inside(Session("http://v", TOKEN), "team").namespace == "team"
    assert inside(Session("http://v", TOKEN, "admin"), "").namespace == "admin"
