"""Static signing keys: Nomad's JWKS read where the program runs, handed to Vault as PEM keys.

For a Vault that cannot reach Nomad (HCP Vault, Vault behind mTLS or another network
boundary), `keySource: static-keys` sets the JWT mount's `jwt_validation_pubkeys` instead of
`jwks_url`: Vault never contacts Nomad. Nomad rotates its keys and publishes the next one in
the JWKS well before it signs with it (prepublishing, Nomad >= 1.8.3), so an `up` in between
makes Vault trust it in time. A key that leaves the JWKS stays trusted for one more `up`: the
keys Vault trusts are those the JWKS has now plus those it had at the last `up` (recorded in
the `jwks_keys` output), so an identity signed just before a key's retirement still logs in;
the mount lists such a key with a label (RETIRING), so the change shows in `pulumi preview`.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt import PyJWK
from jwt.exceptions import InvalidKeyError, PyJWKError

from .vault_http import Tls, VaultUnreachable, get

# A JWKS is a few keys: anything much bigger is not Nomad's, and is not read to the end.
MAX_JWKS_BYTES = 1 << 20
# Nomad's RSA keys are 2048-bit; a smaller one in the JWKS is not trusted.
MIN_RSA_BITS = 2048
# JWK members of private keys (RFC 7518 6.2.2, 6.3.2; RFC 8037 2): a JWKS never has them.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})

# What Nomad signs with (the mount accepts these algorithms: vault_setup.JWT_SUPPORTED_ALGS).
_KEY_TYPES = {("RSA", None): "RS256", ("OKP", "Ed25519"): "EdDSA"}


# Written before a key that has left the JWKS, in its last `up` of grace: Vault reads a PEM key
# from its BEGIN line on, so the text only labels it, for whoever reads the mount's config; and
# the mount's key list changes the moment a key leaves the JWKS, so `pulumi preview` plans the
# change and a scheduled `--expect-no-changes` fails on it.
RETIRING = "Retiring: left Nomad's JWKS, no longer trusted after the next pulumi up\n"


class JwksUnavailable(Exception):
    """The JWKS could not be read from here, or holds no key Vault can use: why."""


@dataclass(frozen=True)
class SigningKeys:
    """What the mount trusts (`trusted`), and what the JWKS held at this run (`fetched`, the
    next run's record); `added` and `retired`: what changed since the last run's record."""

    trusted: tuple[str, ...]
    fetched: tuple[str, ...]
    added: tuple[str, ...] = ()
    retired: tuple[str, ...] = ()


def fetch_jwks(url: str, ca_pem: str = "", timeout: float = 10) -> Mapping[str, Any]:
    """The JWKS document at `url` (TLS verified against `ca_pem` when given, else the system's
    CAs; no redirect followed; at most MAX_JWKS_BYTES within `timeout` seconds in all);
    raises JwksUnavailable."""
    try:
        status, body = get(
            url, {"Accept": "application/json"}, Tls(ca_pem=ca_pem), timeout, limit=MAX_JWKS_BYTES
        )
    except VaultUnreachable as error:
        raise JwksUnavailable(f"cannot reach {url} from here: {error}") from None
    if status != 200:
        raise JwksUnavailable(f"{url} answered HTTP {status}")
    try:
        document = json.loads(body)
    except ValueError:
        raise JwksUnavailable(f"{url} did not answer with JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable(f"{url} did not answer with a JWKS (an object with `keys`)")
    private = [
        str(jwk.get("kid", f"#{index}"))
        for index, jwk in enumerate(document["keys"])
        if isinstance(jwk, dict) and _PRIVATE_MEMBERS & set(jwk)
    ]
    if private:
        raise JwksUnavailable(
            f"{url} publishes private key material (key {', '.join(private)}): whoever read it"
            " can sign any job's identity; rotate Nomad's keyring, then run again"
        )
    return document


def public_keys(jwks: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The JWKS's RSA and Ed25519 signing keys as PEM (sorted, so a run that finds the same
    keys writes the same list), and what was left out and why (by kid)."""
    pems, skipped = set(), []
    for index, jwk in enumerate(jwks.get("keys") or ()):
        kid = jwk.get("kid", f"#{index}") if isinstance(jwk, dict) else f"#{index}"
        if not isinstance(jwk, dict):
            skipped.append(f"{kid}: not an object")
            continue
        kty, crv = jwk.get("kty"), jwk.get("crv")
        algorithm = _KEY_TYPES.get((kty, crv)) if _text_or_none(kty, crv) else None
        if algorithm is None or jwk.get("use", "sig") != "sig":
            skipped.append(f"{kid}: a {kty!r} {crv or ''} key, not for signing identities")
            continue
        if jwk.get("alg", algorithm) != algorithm:
            skipped.append(f"{kid}: says alg {jwk.get('alg')!r}, but is a {algorithm} key")
            continue
        try:
            key = PyJWK(jwk, algorithm).key
        except (PyJWKError, InvalidKeyError, ValueError, TypeError) as error:
            skipped.append(f"{kid}: unreadable ({error})")
            continue
        weakness = _weakness(key)
        if weakness:
            skipped.append(f"{kid}: {weakness}")
            continue
        pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pems.add(pem.decode().strip())
    return tuple(sorted(pems)), tuple(skipped)


def _text_or_none(*values: Any) -> bool:
    return all(value is None or isinstance(value, str) for value in values)


def _weakness(key: Any) -> str | None:
    """Why an RSA key must not be trusted (Nomad's are 2048-bit), if it must not."""
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    numbers = key.public_numbers()
    if key.key_size < MIN_RSA_BITS:
        return f"a {key.key_size}-bit RSA key, below {MIN_RSA_BITS} bits"
    if numbers.n % 2 == 0 or numbers.e < 3 or numbers.e % 2 == 0:
        return "not a valid RSA public key (even modulus or exponent)"
    return None


def signing_keys(fetched: Iterable[str], recorded: Iterable[str] | None) -> SigningKeys:
    """What the mount trusts now: the JWKS's keys and those it had at the last run
    (`recorded`, None for a first run)."""
    now, before = tuple(sorted(set(fetched))), set(recorded or ())
    retired = tuple(sorted(before - set(now)))
    return SigningKeys(
        trusted=now + tuple(RETIRING + key for key in retired),
        fetched=now,
        added=tuple(key for key in now if recorded is not None and key not in before),
        retired=retired,
    )
