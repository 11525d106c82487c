"""Static signing keys: the JWKS to PEM, the one-`up` grace of a retired key, and the program
with `keySource: static-keys` under mocks (tests/e2e/test_static_keys.py runs it for real)."""

import json
import re
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from devtools.issuer import Issuer
from devtools.mock_program import ProgramRunner
from nomad_vault_setup import stack as stack_module
from nomad_vault_setup.config import ConfigError
from nomad_vault_setup.preflight import PreflightError
from nomad_vault_setup.resource_types import AUTH_BACKEND
from nomad_vault_setup.signing_keys import (
    MAX_JWKS_BYTES,
    RETIRING,
    JwksUnavailable,
    fetch_jwks,
    public_keys,
    signing_keys,
)
from tests.keys import self_signed

ISSUER = Issuer()
JWKS = ISSUER.jwks()


def pem_of(private_key: Any) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
        .strip()
    )


def test_every_rsa_and_ed25519_key_becomes_pem() -> None:
    pems, skipped = public_keys(JWKS)
    assert set(pems) == {pem_of(ISSUER.rsa_key), pem_of(ISSUER.ed25519_key)}
    assert list(pems) == sorted(pems) and skipped == ()


def test_keys_vault_cannot_use_are_left_out_and_said() -> None:
    jwks = {
        "keys": [
            *JWKS["keys"],
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "a", "y": "b"},
            {**JWKS["keys"][0], "kid": "enc", "use": "enc"},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
    }
    pems, skipped = public_keys(jwks)
    assert len(pems) == 2
    assert [entry.split(":")[0] for entry in skipped] == ["ec", "enc", "broken", "#5"]


def test_weak_mislabelled_or_malformed_keys_are_not_trusted() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    rsa_jwk = JWKS["keys"][0]
    jwks = {
        "keys": [
            *JWKS["keys"],
            {**json.loads(RSAAlgorithm.to_jwk(weak.public_key())), "kid": "weak"},
            {"kty": "RSA", "kid": "tiny", "n": "Dw", "e": "Aw"},
            {**rsa_jwk, "kid": "hs", "alg": "HS256"},
            {"kty": ["RSA"], "kid": "list"},
        ]
    }
    pems, skipped = public_keys(jwks)
    assert len(pems) == 2
    assert skipped[0] == "weak: a 1024-bit RSA key, below 2048 bits"
    assert skipped[1].startswith("tiny: ")
    assert skipped[2] == "hs: says alg 'HS256', but is a RS256 key"
    assert skipped[3] == "list: a ['RSA']  key, not for signing identities"


def test_a_jwks_publishing_a_private_key_is_refused(jwks_server, monkeypatch) -> None:
    leaked = {**json.loads(RSAAlgorithm.to_jwk(ISSUER.rsa_key)), "kid": "leaked"}
    body = json.dumps({"keys": [*JWKS["keys"], leaked]}).encode()
    monkeypatch.setattr(_Jwks, "answer", (200, body))
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/.well-known/jwks.json"
    with pytest.raises(JwksUnavailable, match=r"publishes private key material \(key leaked\)"):
        fetch_jwks(url)


def test_a_jwks_too_big_is_not_read_to_the_end(jwks_server, monkeypatch) -> None:
    monkeypatch.setattr(_Jwks, "answer", (200, b" " * (MAX_JWKS_BYTES + 10)))
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/.well-known/jwks.json"
    with pytest.raises(JwksUnavailable, match="larger than 1048576 bytes"):
        fetch_jwks(url)


def test_a_jwks_that_trickles_is_given_up(monkeypatch) -> None:
    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(100):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Whole, it would take 10 s and not be JSON: the deadline is what refuses it.
        with pytest.raises(JwksUnavailable, match="did not arrive in time"):
            fetch_jwks(f"http://127.0.0.1:{server.server_address[1]}/jwks.json", timeout=1)
    finally:
        server.shutdown()
        server.server_close()


def test_a_retired_key_is_trusted_for_one_more_run() -> None:
    first = signing_keys(["a", "b"], None)
    assert (first.trusted, first.added, first.retired) == (("a", "b"), (), ())
    prepublished = signing_keys(["a", "b", "c"], first.fetched)
    assert (prepublished.trusted, prepublished.added) == (("a", "b", "c"), ("c",))
    retired = signing_keys(["b", "c"], prepublished.fetched)
    assert (retired.trusted, retired.retired) == (("b", "c", RETIRING + "a"), ("a",))
    after = signing_keys(["b", "c"], retired.fetched)
    assert (after.trusted, after.added, after.retired) == (("b", "c"), (), ())


class _Jwks(BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, json.dumps(JWKS).encode())

    def do_GET(self) -> None:
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ((503, b"down"), "answered HTTP 503"),
        ((200, b"<html>"), "did not answer with JSON"),
        ((200, b'{"issuer": "x"}'), "did not answer with a JWKS"),
    ],
)
def test_a_jwks_that_cannot_be_read_says_why(
    jwks_server, monkeypatch: pytest.MonkeyPatch, answer: tuple[int, bytes], reason: str
) -> None:
    monkeypatch.setattr(_Jwks, "answer", answer)
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/.well-known/jwks.json"
    with pytest.raises(JwksUnavailable, match=reason):
        fetch_jwks(url)


def test_an_unreachable_jwks_says_where() -> None:
    with pytest.raises(JwksUnavailable, match=re.escape("cannot reach http://127.0.0.1:9/")):
        fetch_jwks("http://127.0.0.1:9/.well-known/jwks.json", timeout=2)


def test_the_jwks_is_read_over_http(jwks_server) -> None:
    url = f"http://127.0.0.1:{jwks_server.server_address[1]}/.well-known/jwks.json"
    assert fetch_jwks(url) == JWKS


# --- the program, under mocks ----------------------------------------------------------


@pytest.fixture
def served_jwks(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the program reads at jwksUrl: the fetch replaced, so no server is needed."""
    served: dict[str, Any] = {"jwks": JWKS}

    def fetch(url: str, ca_pem: str = "", timeout: float = 10) -> Any:
        if isinstance(served["jwks"], Exception):
            raise served["jwks"]
        return served["jwks"]

    monkeypatch.setattr(stack_module, "fetch_jwks", fetch)
    return served


STATIC = {"jwksUrl": "https://nomad.example.test/.well-known/jwks.json", "keySource": "static-keys"}


def test_static_keys_give_vault_the_keys_not_the_url(
    run_program: ProgramRunner, served_jwks: dict[str, Any]
) -> None:
    run = run_program(STATIC)
    auth = run.one(AUTH_BACKEND).inputs
    assert "jwksUrl" not in auth
    assert sorted(auth["jwtValidationPubkeys"]) == sorted(public_keys(JWKS)[0])
    assert run.exports["jwks_keys"] == list(public_keys(JWKS)[0])


def test_the_keys_recorded_by_the_last_up_stay_trusted_once(
    run_program: ProgramRunner, served_jwks: dict[str, Any]
) -> None:
    recorded = [*public_keys(JWKS)[0], "-----BEGIN PUBLIC KEY-----\nold\n-----END PUBLIC KEY-----"]
    previous = {
        "vault_server": {"cluster_id": "cluster-unit", "namespace": ""},
        "jwks_keys": recorded,
        "auth_path": "jwt-nomad",
        "namespace": "",
    }
    run = run_program(STATIC, previous_outputs=previous)
    assert run.one(AUTH_BACKEND).inputs["jwtValidationPubkeys"] == [
        *public_keys(JWKS)[0],
        RETIRING + recorded[-1],
    ]
    assert run.exports["jwks_keys"] == list(public_keys(JWKS)[0])


def test_the_default_still_has_vault_fetch_the_jwks(run_program: ProgramRunner) -> None:
    auth = run_program({"jwksUrl": STATIC["jwksUrl"]}).one(AUTH_BACKEND).inputs
    assert auth["jwksUrl"] == STATIC["jwksUrl"] and "jwtValidationPubkeys" not in auth


def test_an_unreadable_jwks_stops_the_program_before_any_resource(
    run_program: ProgramRunner, served_jwks: dict[str, Any]
) -> None:
    served_jwks["jwks"] = JwksUnavailable("https://nomad.example.test/... answered HTTP 503")
    with pytest.raises(PreflightError, match="nomad-vault-setup:jwksUrl: keySource is static-keys"):
        run_program(STATIC)
    assert [r for r in run_program.registered if not r.typ.startswith("pulumi:")] == []


def test_a_jwks_without_usable_keys_is_refused(
    run_program: ProgramRunner, served_jwks: dict[str, Any]
) -> None:
    served_jwks["jwks"] = {"keys": [{"kty": "EC", "kid": "ec"}]}
    with pytest.raises(PreflightError, match="holds no RSA or Ed25519 signing key"):
        run_program(STATIC)


def test_adopting_needs_the_jwks_url(run_program: ProgramRunner) -> None:
    with pytest.raises(ConfigError, match="adopt it with keySource jwks-url"):
        run_program({**STATIC, "adopt": "true"})
    with pytest.raises(ConfigError, match="keySource = 'pem'"):
        run_program({**STATIC, "keySource": "pem"})


def test_an_https_jwks_is_trusted_through_its_ca_only(tmp_path) -> None:
    """jwksCaFile's CA alone: the right one reads the JWKS, another fails verification."""
    certificate, key = self_signed("nomad.test", ip="127.0.0.1")
    (tmp_path / "cert.pem").write_text(certificate)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Jwks)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    try:
        assert fetch_jwks(url, ca_pem=certificate) == JWKS
        other, _ = self_signed("someone-else.test", ip="127.0.0.1")
        with pytest.raises(JwksUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            fetch_jwks(url, ca_pem=other)
    finally:
        server.shutdown()
        server.server_close()
