"""The program's default objects written with plain HTTP calls, the way `nomad setup vault`
writes its own.

This is the floor the Pulumi program is compared against: five requests on one keep-alive
connection, no engine, no plugins, no state. They leave the objects the program's default
configuration leaves, field for field: the role bound to `/extra_claims/unique_id`, the mount's
description, the policy's ownership marker, even the empty values the provider sends. The bench
reads both back (`objects`) and compares them, the mount's accessor aside. `nomad setup vault`'s
own objects differ in the role's user claim (`/nomad_job_id`), the marker and the description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from nomad_vault_setup.ownership import marked, mount_description
from nomad_vault_setup.policy import render_workload_policy
from nomad_vault_setup.vault_setup import CLAIM_MAPPINGS, JWT_SUPPORTED_ALGS, USER_CLAIMS

AUTH_PATH = "jwt-nomad"
ROLE_NAME = "nomad-workloads"
POLICY_NAME = "nomad-workloads"
AUDIENCES = ["vault.io"]
KV_MOUNT = "secret"
TOKEN_PERIOD = 1800
TIMEOUT = 10


@dataclass(frozen=True)
class Vault:
    """Where Vault is and how to authenticate: enough for one session of raw calls."""

    address: str
    token: str

    def session(self) -> requests.Session:
        """One session per run, so the connection is reused like the Go client reuses it."""
        session = requests.Session()
        session.headers["X-Vault-Token"] = self.token
        return session

    def call(
        self, session: requests.Session, method: str, path: str, body: Any = None
    ) -> dict[str, Any]:
        """One API call; any non-2xx aborts the bench, since the timing would be meaningless."""
        response = session.request(method, f"{self.address}/v1/{path}", json=body, timeout=TIMEOUT)
        if not response.ok:
            raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text}")
        return response.json() if response.content else {}


def role_body() -> dict[str, Any]:
    """The role fields, as the program's AuthBackendRole sets them by default."""
    return {
        "role_type": "jwt",
        "bound_audiences": AUDIENCES,
        "user_claim": USER_CLAIMS["unique-id"],
        "user_claim_json_pointer": True,
        "claim_mappings": CLAIM_MAPPINGS,
        "bound_claims": {},  # the provider sends an empty map, which reads back as one
        "token_type": "service",
        "token_period": TOKEN_PERIOD,
        "token_policies": [POLICY_NAME],
        "token_explicit_max_ttl": 0,
    }


def create(vault: Vault, jwks_url: str, owner: str) -> None:
    """Mount, configure, look up the accessor, write the policy on it, write the role.

    `owner` is the stack the program's policy marker would name ("<org>/<project>/<stack>")."""
    with vault.session() as session:
        # `options: null`, as the provider sends it (a missing key reads back as `{}`).
        mount = {"type": "jwt", "description": mount_description(owner), "options": None}
        vault.call(session, "POST", f"sys/auth/{AUTH_PATH}", mount)
        vault.call(
            session,
            "POST",
            f"auth/{AUTH_PATH}/config",
            {
                "jwks_url": jwks_url,
                "jwt_supported_algs": JWT_SUPPORTED_ALGS,
                "default_role": ROLE_NAME,
            },
        )
        mounts = vault.call(session, "GET", "sys/auth")
        accessor = mounts["data"][f"{AUTH_PATH}/"]["accessor"]
        policy = marked(render_workload_policy(accessor, KV_MOUNT), owner)
        vault.call(session, "PUT", f"sys/policies/acl/{POLICY_NAME}", {"policy": policy})
        vault.call(session, "POST", f"auth/{AUTH_PATH}/role/{ROLE_NAME}", role_body())


def delete(vault: Vault) -> None:
    """Role, policy, mount: the order `pulumi destroy` uses (disabling the mount drops the role)."""
    with vault.session() as session:
        vault.call(session, "DELETE", f"auth/{AUTH_PATH}/role/{ROLE_NAME}")
        vault.call(session, "DELETE", f"sys/policies/acl/{POLICY_NAME}")
        vault.call(session, "DELETE", f"sys/auth/{AUTH_PATH}")


# What differs between two creations of the same object: the mount's identity.
_IDENTITY = ("accessor", "uuid")


def objects(vault: Vault) -> dict[str, Any]:
    """What the default objects hold on the server, as comparable data: the auth mount's entry
    (its identity left out), its config, the role, and the policy text with the mount's
    accessor masked."""
    with vault.session() as session:
        mount = vault.call(session, "GET", "sys/auth")["data"][f"{AUTH_PATH}/"]
        policy = vault.call(session, "GET", f"sys/policies/acl/{POLICY_NAME}")["data"]["policy"]
        return {
            "mount": {key: value for key, value in mount.items() if key not in _IDENTITY},
            "config": vault.call(session, "GET", f"auth/{AUTH_PATH}/config")["data"],
            "role": vault.call(session, "GET", f"auth/{AUTH_PATH}/role/{ROLE_NAME}")["data"],
            "policy": policy.replace(mount["accessor"], "<accessor>"),
        }


def differences(left: dict[str, Any], right: dict[str, Any]) -> list[str]:
    """`object.field: left != right` for every field the two `objects` disagree on."""
    found = []
    for name in sorted(left.keys() | right.keys()):
        one, other = left.get(name), right.get(name)
        if isinstance(one, dict) and isinstance(other, dict):
            for key in sorted(one.keys() | other.keys()):
                if one.get(key) != other.get(key):
                    found.append(f"{name}.{key}: {one.get(key)!r} != {other.get(key)!r}")
        elif one != other:
            found.append(f"{name}: {one!r} != {other!r}")
    return found
