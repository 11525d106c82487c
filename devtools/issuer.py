"""A stand-in for Nomad's workload identity issuer.

Nomad is not available in the dev environment, so this module mints JWTs with
the same header and claim shape as Nomad workload identities and serves the
matching JWKS at ``/.well-known/jwks.json``.  That is enough for OpenBao's JWT
auth method to verify them exactly as it would verify real Nomad tokens.
The ``mint_*`` helpers craft deliberately broken tokens for negative tests.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from devtools.proc import (
    answers,
    free_port,
    read_state,
    reusable_port,
    runs,
    spawn,
    stop,
    stop_recorded,
    wait_until_answers,
    write_state,
)
from devtools.project_copy import PROJECT_DIR

JWKS_PATH = "/.well-known/jwks.json"
RSA_KEY_FILE = "rsa.pem"
ED25519_KEY_FILE = "ed25519.pem"
STATE_FILE = "issuer.json"
LOG_FILE = "issuer.log"
KEY_DIR = "issuer-keys"
SERVE_MARKER = "devtools.issuer"
START_TIMEOUT = 15.0
DEFAULT_AUDIENCE = ("vault.io",)

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _kid(key: PrivateKey) -> str:
    """Derive the kid from the public key so it is stable across restarts."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(uuid.UUID(bytes=hashlib.sha256(der).digest()[:16]))


def _load_or_create(path: Path | None, generate: Any) -> PrivateKey:
    """Load a PEM key, or generate one and persist it owner-only (0600)."""
    if path is not None and path.exists():
        return serialization.load_pem_private_key(path.read_bytes(), password=None)  # type: ignore[return-value]
    key = generate()
    if path is not None:
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    return key


def _new_rsa() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class Issuer:
    """Holds one RSA-2048 and one Ed25519 signing key, like a Nomad keyring."""

    def __init__(self, key_dir: Path | None = None) -> None:
        if key_dir is not None:
            key_dir = Path(key_dir)
            key_dir.mkdir(parents=True, exist_ok=True)
        self.rsa_key: rsa.RSAPrivateKey = _load_or_create(  # type: ignore[assignment]
            key_dir / RSA_KEY_FILE if key_dir else None, _new_rsa
        )
        self.ed25519_key: ed25519.Ed25519PrivateKey = _load_or_create(  # type: ignore[assignment]
            key_dir / ED25519_KEY_FILE if key_dir else None,
            ed25519.Ed25519PrivateKey.generate,
        )
        self.rsa_kid = _kid(self.rsa_key)
        self.ed25519_kid = _kid(self.ed25519_key)
        # Key rotation as Nomad does it: every RSA key by kid, and which the JWKS publishes
        # (the signing key, keys prepublished before they sign, old keys until retired).
        self.rsa_keys: dict[str, rsa.RSAPrivateKey] = {self.rsa_kid: self.rsa_key}
        self.published = [self.rsa_kid]

    def prepublish(self) -> str:
        """A new RSA key in the JWKS, not signing yet (Nomad's prepublished next key)."""
        key = _new_rsa()
        kid = _kid(key)
        self.rsa_keys[kid] = key
        self.published.append(kid)
        return kid

    def rotate(self, kid: str) -> None:
        """Sign RS256 identities with the published key `kid` from now on."""
        if kid not in self.published:
            raise ValueError(f"key {kid} is not in the JWKS")
        self.rsa_key, self.rsa_kid = self.rsa_keys[kid], kid

    def retire(self, kid: str) -> None:
        """Take the key `kid` out of the JWKS (it must not be the signing key)."""
        if kid == self.rsa_kid:
            raise ValueError("the signing key cannot be retired: rotate first")
        self.published.remove(kid)

    def mint_with(self, kid: str, job_id: str, **kwargs: Any) -> str:
        """RS256, signed by the (possibly retired) key `kid`, as a still-valid identity Nomad
        signed before rotating would be."""
        return self._sign(self.claims(job_id, **kwargs), self.rsa_keys[kid], "RS256", kid)

    def jwks(self) -> dict[str, Any]:
        """Public keys in the shape Nomad serves them."""
        okp_jwk = OKPAlgorithm.to_jwk(self.ed25519_key.public_key(), as_dict=True)
        rsa_jwks = {
            kid: RSAAlgorithm.to_jwk(self.rsa_keys[kid].public_key(), as_dict=True)
            for kid in self.published
        }
        return {
            "keys": [
                *(
                    {
                        "kty": "RSA",
                        "alg": "RS256",
                        "use": "sig",
                        "kid": kid,
                        "n": jwk["n"],
                        "e": jwk["e"],
                    }
                    for kid, jwk in rsa_jwks.items()
                ),
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": self.ed25519_kid,
                    "x": okp_jwk["x"],
                },
            ]
        }

    def claims(
        self,
        job_id: str,
        namespace: str = "default",
        task: str | None = None,
        audience: Sequence[str] | None = DEFAULT_AUDIENCE,
        ttl: int = 3600,
        region: str = "global",
        unique_id: bool = True,
        now: int | None = None,
        **overrides: Any,
    ) -> dict[str, Any]:
        """Build a Nomad-shaped claim set; an override of ``None`` drops the claim."""
        task = task or job_id
        iat = int(time.time()) if now is None else now
        claims: dict[str, Any] = {
            "nomad_namespace": namespace,
            "nomad_job_id": job_id,
            "nomad_allocation_id": str(uuid.uuid4()),
            "nomad_task": task,
            "sub": f"{region}:{namespace}:{job_id}:{task}:{task}:vault_default",
            "aud": list(audience or []),
            "iat": iat,
            "nbf": iat,
            "exp": iat + ttl,
            "jti": str(uuid.uuid4()),
        }
        if unique_id:
            claims["extra_claims"] = {"unique_id": f"{region}:{namespace}:{job_id}"}
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def mint(
        self,
        job_id: str,
        namespace: str = "default",
        task: str | None = None,
        alg: str = "RS256",
        audience: Sequence[str] | None = DEFAULT_AUDIENCE,
        ttl: int = 3600,
        region: str = "global",
        unique_id: bool = True,
        now: int | None = None,
        **overrides: Any,
    ) -> str:
        """Sign a workload identity with the RSA (RS256) or Ed25519 (EdDSA) key.

        ``overrides`` replace claims; ``None`` removes one (see ``claims``).
        """
        claims = self.claims(
            job_id,
            namespace=namespace,
            task=task,
            audience=audience,
            ttl=ttl,
            region=region,
            unique_id=unique_id,
            now=now,
            **overrides,
        )
        if alg == "RS256":
            key, kid = self.rsa_key, self.rsa_kid
        elif alg == "EdDSA":
            key, kid = self.ed25519_key, self.ed25519_kid
        else:
            raise ValueError(f"unsupported alg {alg!r}; Nomad signs with RS256 or EdDSA")
        return self._sign(claims, key, alg, kid)

    def mint_with_foreign_key(self, job_id: str, **kwargs: Any) -> str:
        """RS256 with the real kid but a key that is not in the JWKS."""
        return self._sign(self.claims(job_id, **kwargs), _new_rsa(), "RS256", self.rsa_kid)

    def mint_with_unknown_kid(self, job_id: str, **kwargs: Any) -> str:
        """Signed by the real RSA key but advertising a kid the JWKS lacks."""
        return self._sign(self.claims(job_id, **kwargs), self.rsa_key, "RS256", str(uuid.uuid4()))

    def mint_hs256(
        self,
        job_id: str,
        secret: str = "not-a-real-secret-0123456789abcdef",
        **kwargs: Any,
    ) -> str:
        """Symmetric HMAC token; verifiers configured for JWKS must reject it."""
        return self._sign(self.claims(job_id, **kwargs), secret, "HS256", self.rsa_kid)

    def mint_alg_none(self, job_id: str, **kwargs: Any) -> str:
        """Unsigned token (``alg: none``, empty signature)."""
        header = {"alg": "none", "typ": "JWT", "kid": self.rsa_kid}
        parts = [
            json.dumps(part, separators=(",", ":")).encode()
            for part in (header, self.claims(job_id, **kwargs))
        ]
        return ".".join(_b64url(p) for p in parts) + "."

    @staticmethod
    def _sign(claims: dict[str, Any], key: Any, alg: str, kid: str) -> str:
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


class IssuerServer:
    """Serves an issuer's JWKS over HTTP from a daemon thread (for tests).

    For fault tests it can also misbehave on purpose (both off unless asked for):
    `hold()` makes every JWKS request wait until `release()` (at most `hold_cap` seconds,
    then it is answered anyway), so a test can act while a server's fetch of the keys is in
    flight; `unavailable = True` answers 503, as a Nomad behind a proxy with no live server
    would. `jwks_requested` is set whenever a JWKS request arrives.

    It also answers the two calls of Nomad's job API the access audit makes (`GET
    /v1/regions`, `GET /v1/jobs?namespace=*&region=R`) from `jobs`, JobListStub-shaped dicts
    with a `Region` key saying where each lives, refusing any request without `X-Nomad-Token`
    = `nomad_token` when that is set (403, as Nomad's ACLs do).
    """

    def __init__(
        self, issuer: Issuer, host: str = "127.0.0.1", port: int = 0, hold_cap: float = 300.0
    ) -> None:
        self.jwks_requested = threading.Event()
        self.unavailable = False
        self.jobs: list[dict[str, Any]] = []
        self.nomad_token = ""
        self.hold_cap = hold_cap
        self._released = threading.Event()
        self._released.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path in ("/v1/regions", "/v1/jobs"):
                    self._answer(server._job_api(path, query, self.headers))
                    return
                if path != JWKS_PATH:
                    self.send_error(404)
                    return
                server.jwks_requested.set()
                server._released.wait(server.hold_cap)
                if server.unavailable:
                    self.send_error(503, "JWKS unavailable (IssuerServer.unavailable)")
                    return
                body = json.dumps(issuer.jwks()).encode()  # as it is now: keys rotate
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _answer(self, answer: tuple[int, Any]) -> None:
                status, document = answer
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                """Silence per-request stderr noise."""

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        host, port = self.httpd.server_address[:2]
        self.url = f"http://{host}:{port}"
        self.jwks_url = self.url + JWKS_PATH
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _job_api(self, path: str, query: str, headers: Any) -> tuple[int, Any]:
        """Nomad's answer to GET `path`?`query`: the regions, or one region's job stubs."""
        if self.nomad_token and headers.get("X-Nomad-Token") != self.nomad_token:
            return 403, "Permission denied"
        regions = sorted({job.get("Region", "global") for job in self.jobs} or {"global"})
        if path == "/v1/regions":
            return 200, regions
        region = urllib.parse.parse_qs(query).get("region", ["global"])[0]
        return 200, [
            {key: value for key, value in job.items() if key != "Region"}
            for job in self.jobs
            if job.get("Region", "global") == region
        ]

    def start(self) -> Self:
        self._thread.start()
        return self

    def hold(self) -> None:
        """From now on, JWKS requests wait for `release()`; `jwks_requested` is cleared."""
        self.jwks_requested.clear()
        self._released.clear()

    def release(self) -> None:
        """Answer the held JWKS requests, and every later one at once."""
        self._released.set()

    def stop(self) -> None:
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure(state_dir: Path, port: int | None = None) -> tuple[dict[str, Any], bool]:
    """The issuer recorded in `state_dir` if it lives, else one started detached (so it
    outlives this process) and recorded; and whether it was started now.

    A restart takes `port`, else the recorded port when it is free: with the keys kept in
    `state_dir`, nothing Vault can see changes.
    """
    state_file = state_dir / STATE_FILE
    recorded = read_state(state_file) or {}
    pid, jwks_url = recorded.get("pid"), recorded.get("jwks_url")
    if isinstance(pid, int) and isinstance(jwks_url, str) and runs(pid, SERVE_MARKER):
        if answers(jwks_url):
            return recorded, False
        stop(pid)
    port = port or reusable_port(recorded.get("url")) or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = state_dir / LOG_FILE
    # Generate keys here, not in the child, so a slow keygen can't eat the start timeout.
    Issuer(state_dir / KEY_DIR)
    cmd = [
        sys.executable,
        "-m",
        "devtools.issuer",
        "serve",
        "--state-dir",
        str(state_dir),
        "--port",
        str(port),
    ]
    proc = spawn(cmd, log_path, cwd=PROJECT_DIR)
    state = {"url": url, "jwks_url": url + JWKS_PATH, "pid": proc.pid}
    if wait_until_answers(proc, state["jwks_url"], START_TIMEOUT):
        write_state(state_file, state)
        return state, True
    raise RuntimeError(f"issuer did not start at {url}; see {log_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.issuer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("serve", "start", "stop", "mint"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--state-dir", type=Path, required=True)
        if name in ("serve", "start"):
            cmd.add_argument("--port", type=int, default=None)
    mint = sub.choices["mint"]
    mint.add_argument("--job", required=True)
    mint.add_argument("--namespace", default="default")
    mint.add_argument("--task", default=None)
    mint.add_argument("--alg", choices=["RS256", "EdDSA"], default="RS256")
    mint.add_argument("--aud", action="append", default=None, help="repeatable; default vault.io")
    mint.add_argument("--ttl", type=int, default=3600)
    mint.add_argument("--no-unique-id", dest="unique_id", action="store_false")
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)

    if args.command == "serve":
        server = IssuerServer(Issuer(state_dir / KEY_DIR), port=args.port or 0)
        print(f"serving {server.jwks_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.httpd.serve_forever()
        return 0
    if args.command == "start":
        print(json.dumps(ensure(state_dir, args.port)[0], indent=2))
        return 0
    if args.command == "stop":
        stop_recorded(state_dir / STATE_FILE, SERVE_MARKER)
        return 0
    issuer = Issuer(state_dir / KEY_DIR)
    print(
        issuer.mint(
            args.job,
            alg=args.alg,
            namespace=args.namespace,
            task=args.task,
            audience=args.aud or DEFAULT_AUDIENCE,
            ttl=args.ttl,
            unique_id=args.unique_id,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
