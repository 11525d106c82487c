"""The inputs of NomadVaultSetup as another Pulumi program gives them: its package schema.

Pulumi infers the component package's schema from these TypedDicts (a field's docstring is its
description; the schema names it in camelCase) and hands a YAML, TypeScript or Go program's
inputs to the component as a dict with these snake_case keys; a Python program passes the
dict itself. They are the stack config's cluster keys (Pulumi.yaml says the same of each, a
test keeps them equal), as plain values: the settings are validated, and the live server
checked, before the component registers anything, so none may wait on another resource.

Left out, with the reason: `clusters` (one component per Nomad cluster), `adopt` (its
namespace step needs the stack program's record), `keySource` (static keys retire a key on
the `up` after it left the JWKS, by the stack program's record of the last `up`), the agent
delivery keys (`nomadConfigDir`, `nomadAgents`...: the outputs are the config; deliver it as the
program delivers other files).
"""

from typing import Required, TypedDict


class ExtraRoleArgs(TypedDict, total=False):
    """A JWT role beside the default one, for jobs that need more than their own secrets."""

    name: Required[str]
    """The role's name (lowercase letters, digits, '-', '_')."""
    bound_claims: Required[dict[str, list[str]]]
    (
        "Claims a job's identity must carry to use the role; nomad_namespace is required (Nomad "
        "namespace names, or one prefix ending in '*'); also nomad_job_id, nomad_task, "
        "nomad_service, nomad_allocation_id, sub."
    )
    policies: list[str]
    """Existing Vault policies the role's tokens get beside the workload policy."""
    policy: str
    """Inline ACL policy text, written as the policy <policyName>-<name>."""
    token_period: str
    """Period of the role's tokens (s, m, h); defaults to tokenPeriod."""


class NomadVaultSetupArgs(TypedDict, total=False):
    """What one Nomad cluster's Vault setup is made of; every input has a default."""

    jwks_url: str
    (
        "Nomad's JWKS URL as Vault reaches it (http or https). Default: "
        "http://localhost:4646/.well-known/jwks.json."
    )
    jwks_ca_file: str
    (
        "PEM file with the CA of a JWKS served over private TLS (relative to the program's "
        "directory)."
    )
    namespace: str
    (
        "Vault Enterprise / OpenBao namespace to create and use (empty for none). The component "
        "creates it, inside the provider's namespace; one component per namespace."
    )
    auth_path: str
    """Path of the JWT auth mount (slashes trimmed). Default: jwt-nomad."""
    role_name: str
    """Name of the JWT role Nomad workloads log in with (lowercase). Default: nomad-workloads."""
    policy_name: str
    """Name of the templated workload ACL policy (lowercase). Default: nomad-workloads."""
    audiences: list[str]
    """The role's bound audiences = Nomad's default_identity aud. Default: [vault.io]."""
    token_period: str
    """Period of the workload's Vault token (s, m, h). Default: 30m."""
    identity_ttl: str
    """TTL of Nomad's default workload identity (s, m, h). Default: 1h."""
    kv_mount: str
    """KV v2 mount the policy grants read on. Default: secret."""
    manage_kv_mount: bool
    """Also create the KV v2 mount kvMount (leave off when the mount already holds secrets)."""
    identity_claim: str
    (
        "What names a job's Vault entity: unique-id (region:namespace:job, Nomad >= 1.8.3) or "
        "job-id (nomad setup vault's choice). Default: unique-id."
    )
    roles: list[ExtraRoleArgs]
    (
        "Extra JWT roles (name, boundClaims, policies and/or policy, tokenPeriod) for jobs that "
        "need more."
    )
    accept_job_id_risks: list[str]
    (
        "Job-ID risks of the Vault server you accept (glob, slash): on servers that expand * and "
        "+ (glob) or allow / (slash) in templated policy paths, a job with such an ID reads other"
        " jobs' secrets; the component refuses such a server unless its risks are listed here."
    )
    protect: bool
    """Set Pulumi's protect on the auth mount, the namespace and a managed KV mount."""
    nomad_vault_address: str
    """Vault address Nomad agents use; defaults to the provider's (vault:address or VAULT_ADDR)."""


def camel_case(key: str) -> str:
    """auth_path -> authPath: the schema's (and the stack config's) name of an input."""
    first, *rest = key.split("_")
    return first + "".join(part.title() for part in rest)


# The inputs, and the keys of a role entry, by their camelCase names.
INPUTS = {camel_case(key): key for key in NomadVaultSetupArgs.__annotations__}
ROLE_INPUTS = {camel_case(key): key for key in ExtraRoleArgs.__annotations__}
