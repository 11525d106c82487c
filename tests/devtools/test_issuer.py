"""The dev issuer must produce tokens a JWKS verifier treats like Nomad's."""

from __future__ import annotations

import base64
import json
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from devtools.issuer import Issuer, IssuerServer
from devtools.proc import pid_alive
from tests.devtool_cli import run_devtool


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def server(issuer: Issuer):
    with IssuerServer(issuer) as srv:
        yield srv


def _verify(server: IssuerServer, token: str, **options: Any) -> dict[str, Any]:
    """Verify the way OpenBao does: pick the JWKS key by kid, check aud/exp/nbf."""
    key = jwt.PyJWKClient(server.jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    return jwt.decode(token, key, algorithms=["RS256", "EdDSA"], audience="vault.io", **options)


def test_jwks_serves_one_rsa_and_one_ed25519_key(issuer: Issuer, server: IssuerServer) -> None:
    keys = requests.get(server.jwks_url, timeout=5).json()["keys"]
    assert keys == issuer.jwks()["keys"]
    by_kty = {k["kty"]: k for k in keys}
    assert set(by_kty["RSA"]) == {"kty", "alg", "use", "kid", "n", "e"}
    assert (by_kty["RSA"]["alg"], by_kty["RSA"]["use"], by_kty["RSA"]["kid"]) == (
        "RS256",
        "sig",
        issuer.rsa_kid,
    )
    assert set(by_kty["OKP"]) == {"kty", "crv", "alg", "use", "kid", "x"}
    assert (by_kty["OKP"]["crv"], by_kty["OKP"]["alg"], by_kty["OKP"]["kid"]) == (
        "Ed25519",
        "EdDSA",
        issuer.ed25519_kid,
    )


def test_other_paths_are_404(server: IssuerServer) -> None:
    assert requests.get(server.url + "/v1/jwks", timeout=5).status_code == 404


@pytest.mark.parametrize(("alg", "kid_attr"), [("RS256", "rsa_kid"), ("EdDSA", "ed25519_kid")])
def test_tokens_verify_against_served_jwks(
    issuer: Issuer, server: IssuerServer, alg: str, kid_attr: str
) -> None:
    token = issuer.mint("web", alg=alg)
    assert _segment(token, 0) == {
        "alg": alg,
        "kid": getattr(issuer, kid_attr),
        "typ": "JWT",
    }
    assert _verify(server, token)["nomad_job_id"] == "web"


def test_claims_have_nomad_shape(issuer: Issuer) -> None:
    now = int(time.time())
    claims = _segment(issuer.mint("web", namespace="prod", task="api", ttl=600, now=now), 1)
    assert claims["nomad_namespace"] == "prod"
    assert claims["nomad_job_id"] == "web"
    assert claims["nomad_task"] == "api"
    assert uuid.UUID(claims["nomad_allocation_id"]).version == 4
    assert uuid.UUID(claims["jti"]).version == 4
    assert claims["sub"] == "global:prod:web:api:api:vault_default"
    assert claims["aud"] == ["vault.io"]
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (now, now, now + 600)
    assert claims["extra_claims"] == {"unique_id": "global:prod:web"}


def test_task_defaults_to_job_and_unique_id_is_optional(issuer: Issuer) -> None:
    claims = _segment(issuer.mint("web", unique_id=False), 1)
    assert claims["nomad_task"] == "web"
    assert claims["sub"] == "global:default:web:web:web:vault_default"
    assert "extra_claims" not in claims


def test_overrides_replace_and_none_removes(issuer: Issuer) -> None:
    claims = _segment(
        issuer.mint("web", nomad_namespace="other", nomad_job_id=None, vault_role="r"),
        1,
    )
    assert claims["nomad_namespace"] == "other"
    assert claims["vault_role"] == "r"
    assert "nomad_job_id" not in claims


def test_expired_and_future_tokens_are_rejected(issuer: Issuer, server: IssuerServer) -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(server, issuer.mint("web", now=int(time.time()) - 7200, ttl=60))
    with pytest.raises(jwt.ImmatureSignatureError):
        _verify(server, issuer.mint("web", nbf=int(time.time()) + 3600))


def test_wrong_audience_is_rejected(issuer: Issuer, server: IssuerServer) -> None:
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(server, issuer.mint("web", audience=["nomad.io"]))


def test_keys_persist_across_instances(tmp_path: Path) -> None:
    first, second = Issuer(tmp_path), Issuer(tmp_path)
    assert first.jwks() == second.jwks()
    assert (first.rsa_kid, first.ed25519_kid) == (second.rsa_kid, second.ed25519_kid)
    for pem in tmp_path.iterdir():
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert Issuer(tmp_path / "other").rsa_kid != first.rsa_kid


def test_foreign_key_token_fails_verification(issuer: Issuer, server: IssuerServer) -> None:
    token = issuer.mint_with_foreign_key("web")
    assert _segment(token, 0)["kid"] == issuer.rsa_kid
    with pytest.raises(jwt.InvalidSignatureError):
        _verify(server, token)


def test_unknown_kid_is_not_in_jwks(issuer: Issuer, server: IssuerServer) -> None:
    token = issuer.mint_with_unknown_kid("web")
    assert _segment(token, 0)["kid"] not in {issuer.rsa_kid, issuer.ed25519_kid}
    with pytest.raises(jwt.PyJWKClientError):
        _verify(server, token)


def test_hs256_token_is_rejected_by_asymmetric_verifier(
    issuer: Issuer, server: IssuerServer
) -> None:
    token = issuer.mint_hs256("web")
    assert _segment(token, 0) == {"alg": "HS256", "kid": issuer.rsa_kid, "typ": "JWT"}
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(server, token)


def test_alg_none_token_is_unsigned(issuer: Issuer, server: IssuerServer) -> None:
    token = issuer.mint_alg_none("web")
    assert token.endswith(".")
    assert _segment(token, 0) == {"alg": "none", "typ": "JWT", "kid": issuer.rsa_kid}
    assert _segment(token, 1)["nomad_job_id"] == "web"
    with pytest.raises(jwt.InvalidAlgorithmError):
        _verify(server, token)


def test_unsupported_alg_is_refused(issuer: Issuer) -> None:
    with pytest.raises(ValueError, match="RS256 or EdDSA"):
        issuer.mint("web", alg="ES256")


def _cli(*args: str) -> str:
    done = run_devtool("issuer", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_background_server_verifies_cli_minted_tokens(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path)]
    first = json.loads(_cli("start", *state))
    try:
        assert json.loads(_cli("start", *state)) == first
        token = _cli("mint", *state, "--job", "web", "--alg", "EdDSA").strip()
        key = jwt.PyJWKClient(first["jwks_url"]).get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="vault.io")
        assert claims["extra_claims"] == {"unique_id": "global:default:web"}
    finally:
        _cli("stop", *state)
    assert not pid_alive(first["pid"])
    assert not (tmp_path / "issuer.json").exists()
