"""The user's settings, as pydantic models: what each key accepts and its default.

Pure (no Pulumi): one cluster's keys (`ClusterSettings`), and the objects inside its lists
(`ExtraRole`, `NomadAgent`). Field names are snake_case, keys camelCase. Strict: a value of the
wrong type is refused, never coerced (`port: true` is not port 1, `name: 5` is not "5");
booleans and lists get their own parsers (fields.Flag, fields.from_json).
"""

import posixpath
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic.alias_generators import to_camel

from .fields import (
    Audiences,
    AuthMountPath,
    DirectoryPath,
    Duration,
    FilePath,
    Flag,
    HttpUrl,
    Namespace,
    NomadVaultAddress,
    PemFile,
    PolicyName,
    Port,
    SecretMountPath,
    ShellCommand,
    SshHost,
    SshPublicKey,
    StringList,
    UnixUser,
    VaultName,
    acl_policy_problem,
    from_json,
    is_loopback,
    string_list,
)

DEFAULT_JWKS_URL = "http://localhost:4646/.well-known/jwks.json"
DEFAULT_AUTH_PATH = "jwt-nomad"
DEFAULT_POLICY_NAME = "nomad-workloads"
DEFAULT_AGENT_CONFIG_PATH = "/etc/nomad.d/vault.hcl"
# Nomad rereads only the TLS settings of its `vault` block on SIGHUP; any other change needs a
# restart (Nomad docs, Agent Configuration > Configuration Reload:
# https://developer.hashicorp.com/nomad/docs/configuration#configuration-reload; and
# hashicorp/nomad#6052). `nomad` is the systemd unit of HashiCorp's Linux packages.
DEFAULT_RELOAD_COMMAND = "systemctl restart nomad"
# The files `nomadConfigDir` receives (agent_config.py writes them).
AGENT_FILE_NAMES = ("vault-server.hcl", "vault-client.hcl")
# How a file on the machine that runs Pulumi is named in clash reports.
THIS_MACHINE = "this machine"

BOUND_CLAIM_KEYS = (
    "nomad_namespace",
    "nomad_job_id",
    "nomad_task",
    "nomad_service",
    "nomad_allocation_id",
    "sub",
)
MODEL_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    alias_generator=to_camel,
    validate_by_alias=True,
    strict=True,
)

# A Nomad namespace name (^[a-zA-Z0-9-]{1,128}$), or a literal prefix of one and a final `*`.
_NAMESPACE_BINDING = re.compile(r"[A-Za-z0-9-]{1,128}\*?")


def _bound_claims(claims: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """A role must be pinned to Nomad namespaces, or any job could choose it."""
    unknown = sorted(set(claims) - set(BOUND_CLAIM_KEYS))
    if unknown:
        allowed = ", ".join(BOUND_CLAIM_KEYS)
        raise ValueError(f"unknown claim {', '.join(unknown)}; allowed: {allowed}")
    namespaces = claims.get("nomad_namespace", ())
    if not namespaces or not all(_NAMESPACE_BINDING.fullmatch(value) for value in namespaces):
        raise ValueError(
            "must bind nomad_namespace to Nomad namespace names, or to a name prefix ending in"
            " one '*' ('team-*'; not '*', '*-' or '*x*'): otherwise (almost) any job could pick"
            " this role and receive its policies"
        )
    for claim, values in claims.items():
        if not values or any(not value or "," in value for value in values):
            raise ValueError(f"{claim}: values must be non-empty strings without ','")
    return claims


class ExtraRole(BaseModel):
    """A JWT role beside the default one, for jobs that need more than their own secrets."""

    model_config = MODEL_CONFIG

    name: VaultName
    bound_claims: Annotated[
        dict[str, StringList], BeforeValidator(from_json), AfterValidator(_bound_claims)
    ]
    policies: Annotated[tuple[PolicyName, ...], BeforeValidator(string_list)] = ()
    # Validated even when left out, so a role granting nothing is reported with the rest.
    policy: str = Field("", validate_default=True)
    token_period: Duration | None = None

    @field_validator("policy")
    @classmethod
    def _grants_something(cls, policy: str, info: ValidationInfo) -> str:
        problem = acl_policy_problem(policy) if policy.strip() else None
        if problem:
            raise ValueError(problem)
        if not policy.strip() and not info.data.get("policies") and "policies" in info.data:
            raise ValueError(
                "needs `policies` (existing policy names) or `policy` (inline ACL text):"
                " without either the default role already does the same"
            )
        return policy


class NomadAgent(BaseModel):
    """A Nomad agent that receives its role's `vault {}` block over SSH, then is reloaded."""

    model_config = MODEL_CONFIG

    host: SshHost
    port: Port = 22
    user: UnixUser = "root"
    role: Literal["server", "client"]
    config_path: FilePath = DEFAULT_AGENT_CONFIG_PATH
    reload_command: ShellCommand = DEFAULT_RELOAD_COMMAND
    # Pinned host key; without it the SSH connection accepts any host key (pulumi-command's
    # default), so anyone on the path could receive the config and fake the reload.
    host_key: SshPublicKey = ""

    @property
    def file(self) -> str:
        """Which file on which machine this agent's config is: no two entries may share one.

        Every loopback name (localhost, 127.0.0.1, ::1) is this machine, whatever the port;
        other machines are told apart by host name, so two names of one machine are not
        detected (the docs say so).
        """
        machine = THIS_MACHINE if is_loopback(self.host) else self.host
        return f"{machine}:{self.config_path}"


def _one_entry_per_file(agents: tuple[NomadAgent, ...]) -> tuple[NomadAgent, ...]:
    """Two entries writing one file would overwrite each other on every `up` (and a client
    could get the server's block)."""
    files = [agent.file for agent in agents]
    repeated = sorted({file for file in files if files.count(file) > 1})
    if repeated:
        raise ValueError(f"two entries write the same file (machine:configPath): {repeated}")
    return agents


class ClusterSettings(BaseModel):
    """One Nomad cluster's settings: the keys at the top level, or of a `clusters` entry."""

    model_config = MODEL_CONFIG

    jwks_url: HttpUrl = DEFAULT_JWKS_URL
    jwks_ca_pem: PemFile = Field("", alias="jwksCaFile")
    # How Vault trusts Nomad's keys: it fetches jwksUrl itself, or is given the keys the
    # program read there (signing_keys.py).
    key_source: Literal["jwks-url", "static-keys"] = "jwks-url"
    namespace: Namespace = ""
    auth_path: AuthMountPath = DEFAULT_AUTH_PATH
    role_name: VaultName = "nomad-workloads"
    policy_name: PolicyName = DEFAULT_POLICY_NAME
    audiences: Audiences = ("vault.io",)
    token_period: Duration = 1800
    identity_ttl: Duration = 3600
    kv_mount: SecretMountPath = "secret"
    manage_kv_mount: Flag = False
    # Take over the objects `nomad setup vault` made (adoption.py) instead of refusing them.
    adopt: Flag = False
    identity_claim: Literal["unique-id", "job-id"] = "unique-id"
    roles: Annotated[tuple[ExtraRole, ...], BeforeValidator(from_json)] = ()
    # Where this machine keeps vault-server.hcl and vault-client.hcl ("" for nowhere).
    nomad_config_dir: DirectoryPath = ""
    nomad_agents: Annotated[
        tuple[NomadAgent, ...], BeforeValidator(from_json), AfterValidator(_one_entry_per_file)
    ] = ()
    # An agent file that exists and was not written by this stack is refused, unless this is
    # set: then it is kept aside and restored on destroy.
    replace_existing_files: Flag = False
    # Pulumi's `protect` on what breaks every running job when deleted or replaced.
    protect: Flag = False
    # "" for the provider's address (vault:address or VAULT_ADDR): see derive.py.
    nomad_vault_address: NomadVaultAddress = ""

    @field_validator("roles")
    @classmethod
    def _distinct_role_names(
        cls, roles: tuple[ExtraRole, ...], info: ValidationInfo
    ) -> tuple[ExtraRole, ...]:
        names = [info.data.get("role_name"), *(role.name for role in roles)]
        repeated = sorted({name for name in names if name and names.count(name) > 1})
        if repeated:
            raise ValueError(f"role names must differ from roleName and each other: {repeated}")
        return roles

    @field_validator("adopt")
    @classmethod
    def _adopts_no_kv_mount(cls, adopt: bool, info: ValidationInfo) -> bool:
        if adopt and info.data.get("manage_kv_mount"):
            raise ValueError(
                "`nomad setup vault` makes no KV mount, so adopting one is not offered: set"
                " manageKvMount to false (the default) to adopt"
            )
        if adopt and info.data.get("key_source") == "static-keys":
            raise ValueError(
                "`nomad setup vault` makes a mount that fetches jwksUrl: adopt it with keySource"
                " jwks-url (the default), then switch to static-keys in a later `up`"
            )
        return adopt

    def agent_files(self) -> list[str]:
        """Every file this cluster writes, as `machine:path` (to find two writers of one)."""
        local = [
            f"{THIS_MACHINE}:{posixpath.join(self.nomad_config_dir, name)}"
            for name in AGENT_FILE_NAMES
            if self.nomad_config_dir
        ]
        return [*local, *(agent.file for agent in self.nomad_agents)]

    def inline_policy_name(self, role: ExtraRole) -> str:
        """The name of the policy made from an extra role's inline `policy` text."""
        return f"{self.policy_name}-{role.name}"

    def policy_names(self) -> list[str]:
        """Every policy this cluster writes (to find two clusters writing the same one)."""
        return [self.policy_name, *(self.inline_policy_name(r) for r in self.roles if r.policy)]


def keys(model: type[BaseModel]) -> list[str]:
    """The config keys of a model, as the stack file spells them."""
    return sorted(field.alias or name for name, field in model.model_fields.items())
