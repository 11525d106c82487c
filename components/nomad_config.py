"""The Nomad agent `vault {}` blocks, as HCL text a user pastes into the agent config.

The server block tells Nomad which identity to sign for Vault (audience and TTL must match
what the role accepts); the client block tells Nomad where Vault is and which JWT mount to
log in at. Both are rendered from the same settings the Vault objects are built from.
"""

import json
from collections.abc import Mapping, Sequence


def hcl_string(value: str) -> str:
    """A quoted HCL string literal; `${` and `%{` are escaped so Nomad never interpolates."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def hcl_list(values: Sequence[str]) -> str:
    """A one-line HCL list of string literals."""
    return "[" + ", ".join(hcl_string(value) for value in values) + "]"


def render_server_config(
    audiences: Sequence[str], identity_ttl: str, extra_claims: Mapping[str, str] | None = None
) -> str:
    """The Nomad server `vault` block: the default workload identity Vault accepts.

    `extra_claims` values are Nomad templates such as "${job.id}": Nomad fills them in when it
    signs each identity, so they are written as they are, not escaped.
    """
    lines = [
        "vault {",
        "  enabled = true",
        "",
        "  default_identity {",
        f"    aud = {hcl_list(audiences)}",
        f"    ttl = {hcl_string(identity_ttl)}",
    ]
    if extra_claims:
        lines += ["", "    extra_claims {"]
        lines += [f"      {name} = {json.dumps(value)}" for name, value in extra_claims.items()]
        lines.append("    }")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def render_client_config(address: str, auth_path: str, namespace: str = "") -> str:
    """The Nomad client `vault` block; `namespace` is written only when there is one."""
    lines = [
        "vault {",
        "  enabled               = true",
        f"  address               = {hcl_string(address)}",
    ]
    if namespace:
        lines.append(f"  namespace             = {hcl_string(namespace)}")
    lines.append(f"  jwt_auth_backend_path = {hcl_string(auth_path)}")
    lines.append("}")
    return "\n".join(lines) + "\n"
