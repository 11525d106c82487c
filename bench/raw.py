"""The same Vault objects written with plain HTTP calls, as `nomad setup vault` writes them.

This is the floor the Pulumi program is compared against: five requests on one keep-alive
connection, no engine, no plugins, no state. Names and fields are the program's own constants,
so both sides create the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from components.policy import render_workload_policy
from components.vault_setup import CLAIM_MAPPINGS, JWT_SUPPORTED_ALGS

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
    """The role fields, as the program's AuthBackendRole sets them."""
    return {
        "role_type": "jwt",
        "bound_audiences": AUDIENCES,
        "user_claim": "/nomad_job_id",
        "user_claim_json_pointer": True,
        "claim_mappings": CLAIM_MAPPINGS,
        "token_type": "service",
        "token_period": TOKEN_PERIOD,
        "token_policies": [POLICY_NAME],
        "token_explicit_max_ttl": 0,
    }


def create(vault: Vault, jwks_url: str) -> None:
    """Mount, configure, look up the accessor, write the policy on it, write the role."""
    with vault.session() as session:
        vault.call(session, "POST", f"sys/auth/{AUTH_PATH}", {"type": "jwt"})
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
        policy = render_workload_policy(accessor, KV_MOUNT)
        vault.call(session, "PUT", f"sys/policies/acl/{POLICY_NAME}", {"policy": policy})
        vault.call(session, "POST", f"auth/{AUTH_PATH}/role/{ROLE_NAME}", role_body())


def delete(vault: Vault) -> None:
    """Role, policy, mount: the order `pulumi destroy` uses (disabling the mount drops the role)."""
    with vault.session() as session:
        vault.call(session, "DELETE", f"auth/{AUTH_PATH}/role/{ROLE_NAME}")
        vault.call(session, "DELETE", f"sys/policies/acl/{POLICY_NAME}")
        vault.call(session, "DELETE", f"sys/auth/{AUTH_PATH}")
