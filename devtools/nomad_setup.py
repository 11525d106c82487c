"""What `nomad setup vault` leaves in Vault, written with the same raw API calls, in its order.

Nomad is not available here, so this stands in for its command (Nomad 1.7 - 2.0, see
REFERENCE.md) wherever an install made by hand is needed: the adoption tests, and trying an
adoption on the dev server. Names are the command's fixed ones; `kv_path` is its `-kv-path`
(Nomad >= 2.0.4) and `namespace` the Enterprise namespace it creates and tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

NAME = "nomad-workloads"  # namespace, role and policy
AUTH_PATH = "jwt-nomad"
AUDIENCE = "vault.io"
TIMEOUT = 10

# The command's policy template (command/asset/vault-wi-default-policy.hcl), byte for byte once
# NS and JOB are expanded: KV is its `-kv-path`, ACCESSOR the JWT mount's accessor.
_POLICY = """path "KV/data/NS/JOB/*" {
  capabilities = ["read"]
}

path "KV/data/NS/JOB" {
  capabilities = ["read"]
}

path "KV/metadata/NS/*" {
  capabilities = ["list"]
}

path "KV/metadata/*" {
  capabilities = ["list"]
}
"""
_ALIAS = "{{identity.entity.aliases.ACCESSOR.metadata.CLAIM}}"


@dataclass(frozen=True)
class Install:
    """One `nomad setup vault` run's objects: where they are and the mount's accessor."""

    namespace: str
    kv_path: str
    accessor: str


def _call(
    address: str, token: str, namespace: str, method: str, path: str, body: Any = None
) -> dict[str, Any]:
    headers = {"X-Vault-Token": token}
    if namespace:
        headers["X-Vault-Namespace"] = namespace
    response = requests.request(
        method, f"{address}/v1/{path}", json=body, headers=headers, timeout=TIMEOUT
    )
    if not response.ok:
        raise RuntimeError(f"{method} {path}: HTTP {response.status_code} {response.text}")
    return response.json() if response.content else {}


def _namespace_exists(address: str, token: str, namespace: str) -> bool:
    try:
        _call(address, token, "", "GET", f"sys/namespaces/{namespace}")
    except RuntimeError as error:
        if "HTTP 404" in str(error):
            return False
        raise
    return True


def policy_text(accessor: str, kv_path: str = "secret") -> str:
    """The workload policy the command writes for this mount and KV mount."""
    text = _POLICY.replace("NS", _ALIAS.replace("CLAIM", "nomad_namespace"))
    text = text.replace("JOB", _ALIAS.replace("CLAIM", "nomad_job_id"))
    return text.replace("ACCESSOR", accessor).replace("KV/", f"{kv_path}/")


def role_body(policy: str = NAME) -> dict[str, Any]:
    """The role, field for field as the command sends it."""
    return {
        "role_type": "jwt",
        "bound_audiences": AUDIENCE,
        "user_claim": "/nomad_job_id",
        "user_claim_json_pointer": True,
        "claim_mappings": {
            "nomad_namespace": "nomad_namespace",
            "nomad_job_id": "nomad_job_id",
            "nomad_task": "nomad_task",
        },
        "token_type": "service",
        "token_policies": [policy],
        "token_period": "30m",
        "token_explicit_max_ttl": 0,
    }


def install(
    address: str,
    token: str,
    jwks_url: str,
    namespace: str = "",
    kv_path: str = "secret",
    jwks_ca_pem: str = "",
) -> Install:
    """Namespace (tagged), JWT mount and config, policy on the mount's accessor, role.

    Like the command, an existing namespace is used as it is (neither created nor tagged)."""
    if namespace and not _namespace_exists(address, token, namespace):
        metadata = {"custom_metadata": {"created-by": "nomad-setup"}}
        _call(address, token, "", "POST", f"sys/namespaces/{namespace}", metadata)

    def call(method: str, path: str, body: Any = None) -> dict[str, Any]:
        return _call(address, token, namespace, method, path, body)

    call("POST", f"sys/auth/{AUTH_PATH}", {"type": "jwt", "description": "", "local": False})
    config = {
        "jwks_url": jwks_url,
        "jwt_supported_algs": ["EdDSA", "RS256"],
        "default_role": NAME,
    }
    if jwks_ca_pem:
        config["jwks_ca_pem"] = jwks_ca_pem
    call("POST", f"auth/{AUTH_PATH}/config", config)
    accessor = call("GET", "sys/auth")["data"][f"{AUTH_PATH}/"]["accessor"]
    call("PUT", f"sys/policies/acl/{NAME}", {"policy": policy_text(accessor, kv_path)})
    call("POST", f"auth/{AUTH_PATH}/role/{NAME}", role_body())
    return Install(namespace, kv_path, accessor)
