"""Stack configuration -> frozen, validated settings, before any resource exists.

This is the only module that reads `pulumi.Config`. Every key under `nomad-vault-setup:` is
validated at once (pydantic collects every bad field instead of stopping at the first), and a
failure raises one `ConfigError` that names each bad key by its config name and says what is
allowed, so a user fixes a stack in one round and a bad stack never touches Vault.
"""

import dataclasses
import os
import posixpath
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pulumi
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
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
    ProviderNamespace,
    SecretMountPath,
    ShellCommand,
    SshHost,
    SshPublicKey,
    StringList,
    UnixUser,
    VaultName,
    acl_policy_problem,
    cluster_name,
    from_json,
    is_loopback,
    ssh_private_key_problem,
    string_list,
)
from .provider_guard import SHELL_OVERRIDES, shell_override_problems, token_binding_problem

PROJECT = "nomad-vault-setup"
DEFAULT_JWKS_URL = "http://localhost:4646/.well-known/jwks.json"
DEFAULT_AGENT_CONFIG_PATH = "/etc/nomad.d/vault.hcl"
# Nomad rereads only the TLS settings of its `vault` block on SIGHUP; any other change needs a
# restart (Nomad docs, Agent Configuration > Configuration Reload:
# https://developer.hashicorp.com/nomad/docs/configuration#configuration-reload; and
# hashicorp/nomad#6052). `nomad` is the systemd unit of HashiCorp's Linux packages.
DEFAULT_RELOAD_COMMAND = "systemctl restart nomad"
# The files `nomadConfigDir` receives (delivery.py writes them).
AGENT_FILE_NAMES = ("vault-server.hcl", "vault-client.hcl")

BOUND_CLAIM_KEYS = (
    "nomad_namespace",
    "nomad_job_id",
    "nomad_task",
    "nomad_service",
    "nomad_allocation_id",
    "sub",
)
# Strict: a value of the wrong type is refused, never coerced (`port: true` is not port 1,
# `name: 5` is not "5"); booleans and lists get their own parsers (fields.Flag, from_json).
_MODEL_CONFIG = ConfigDict(
    frozen=True,
    extra="forbid",
    alias_generator=to_camel,
    validate_by_alias=True,
    strict=True,
)


# A Nomad namespace name (^[a-zA-Z0-9-]{1,128}$), or a literal prefix of one and a final `*`.
_NAMESPACE_BINDING = re.compile(r"[A-Za-z0-9-]{1,128}\*?")


class ConfigError(pulumi.RunError, ValueError):
    """The stack configuration is invalid; the message lists every bad key.

    A `RunError`, so the engine prints just the message (no Python traceback) and stops.
    """


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

    model_config = _MODEL_CONFIG

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

    model_config = _MODEL_CONFIG

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
        detected (the README says so).
        """
        machine = THIS_MACHINE if is_loopback(self.host) else self.host
        return f"{machine}:{self.config_path}"


# How a file on the machine that runs Pulumi is named in clash reports.
THIS_MACHINE = "this machine"


def _one_entry_per_file(agents: tuple[NomadAgent, ...]) -> tuple[NomadAgent, ...]:
    """Two entries writing one file would overwrite each other on every `up` (and a client
    could get the server's block)."""
    files = [agent.file for agent in agents]
    repeated = sorted({file for file in files if files.count(file) > 1})
    if repeated:
        raise ValueError(f"two entries write the same file (machine:configPath): {repeated}")
    return agents


class Settings(BaseModel):
    """One Nomad cluster's validated settings. Field names are snake_case; keys camelCase."""

    model_config = _MODEL_CONFIG

    jwks_url: HttpUrl = DEFAULT_JWKS_URL
    jwks_ca_pem: PemFile = Field("", alias="jwksCaFile")
    namespace: Namespace = ""
    auth_path: AuthMountPath = "jwt-nomad"
    role_name: VaultName = "nomad-workloads"
    policy_name: PolicyName = "nomad-workloads"
    audiences: Audiences = ("vault.io",)
    token_period: Duration = 1800
    identity_ttl: Duration = 3600
    kv_mount: SecretMountPath = "secret"
    manage_kv_mount: Flag = False
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
    nomad_vault_address: NomadVaultAddress = Field(
        description="Defaults to the provider's address (vault:address or VAULT_ADDR)."
    )
    # The provider's own namespace (not a key of ours): Nomad clients need the full path.
    provider_namespace: ProviderNamespace = Field("", alias="vault:namespace")

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

    @property
    def client_namespace(self) -> str:
        """The full Vault namespace path Nomad clients log in to ("" for the root)."""
        return "/".join(
            part for part in (self.provider_namespace.strip("/"), self.namespace) if part
        )

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


@dataclass(frozen=True)
class Cluster:
    """One Nomad cluster to set up; `name` is "" for a stack without `clusters`."""

    name: str
    settings: Settings


@dataclass(frozen=True)
class ProviderContext:
    """What the engine and the Vault provider say, beside the user's keys: who runs (project
    and stack own what they write) and how to reach the server (address and TLS settings)."""

    organization: str
    project: str
    stack: str
    address: str
    address_setting: str  # where the address came from: vault:address or VAULT_ADDR
    namespace: str = ""  # the provider's own namespace, as a path without end slashes
    ca_cert_file: str | None = None
    ca_cert_dir: str | None = None
    skip_tls_verify: bool = False

    @property
    def owner(self) -> str:
        """The stack, fully qualified: what ownership markers name."""
        return f"{self.organization}/{self.project}/{self.stack}"


@dataclass(frozen=True)
class StackSettings:
    """Everything a stack sets up: one unnamed cluster, or the named ones of `clusters`.

    `agents_private_key` is the SSH key every `nomadAgents` entry accepts; a SecretStr, so no
    repr, log line or error message ever shows it.
    """

    clusters: tuple[Cluster, ...]
    agents_private_key: SecretStr | None = None
    accepted_job_id_risks: tuple[str, ...] = ()
    provider: ProviderContext | None = None

    @property
    def multi_cluster(self) -> bool:
        return bool(self.clusters[0].name)


CLUSTER_KEY = "clusters"
# Stack-level only: a secret inside the plain `clusters` list could not be kept secret.
PRIVATE_KEY = "nomadAgentsPrivateKey"
# Stack-level only: a property of the one Vault server the stack talks to.
RISKS_KEY = "acceptJobIdRisks"
JOB_ID_RISKS = ("glob", "slash")
# The objects inside list settings, for listing the keys an entry may have.
_ENTRY_MODELS: dict[str, type[BaseModel]] = {"roles": ExtraRole, "nomadAgents": NomadAgent}


def _keys(model: type[BaseModel]) -> list[str]:
    aliases = (field.alias or name for name, field in model.model_fields.items())
    return sorted(alias for alias in aliases if ":" not in alias)


def cluster_keys() -> list[str]:
    """The keys one cluster has (top level, or an entry of `clusters` beside its `name`)."""
    return _keys(Settings)


def config_keys() -> list[str]:
    """The config keys a stack may set under `nomad-vault-setup:`."""
    return sorted([*cluster_keys(), CLUSTER_KEY, PRIVATE_KEY, RISKS_KEY])


def _key_name(location: tuple[Any, ...]) -> str:
    """("roles", 0, "boundClaims") -> "roles[0].boundClaims"."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


# Pydantic's wording for a value of the wrong type, in the words of the stack file.
_TYPE_ERRORS = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "int_from_float": "must be a whole number",
}


def _describe(error: dict[str, Any], scope: str, provided: Mapping[str, str]) -> str:
    """One line of the report; `scope` is "" for top-level keys or e.g. "clusters[1]".

    `provided` names the provider setting a value came from (e.g. nomadVaultAddress ->
    vault:address), so a bad value is blamed on the key the user actually set.
    """
    key = _key_name(error["loc"])
    if key in provided:
        key = provided[key]
    shown = key if ":" in key or key.isupper() else f"{PROJECT}:{scope + '.' if scope else ''}{key}"
    if error["type"] == "extra_forbidden":
        location = error["loc"]
        if len(location) > 2 and location[0] in _ENTRY_MODELS:
            known = _keys(_ENTRY_MODELS[location[0]])
        else:
            known = config_keys() if not scope else ["name", *cluster_keys()]
        return f"{shown}: unknown setting; known settings are {', '.join(known)}"
    if error["type"] == "missing" and key == "nomadVaultAddress":
        return (
            f"{shown}: not set, and the provider has no address to default to; "
            "set vault:address, VAULT_ADDR or nomadVaultAddress to an http(s) URL"
        )
    message = _TYPE_ERRORS.get(error["type"], error["msg"].removeprefix("Value error, "))
    value = error["input"]
    if isinstance(value, str | int | float) and len(str(value)) <= 80:
        return f"{shown} = {value!r}: {message}"
    return f"{shown}: {message}"


def _validate(
    raw: dict[str, Any],
    scope: str,
    problems: list[str],
    own_keys: set[str] | None = None,
    provided: Mapping[str, str] | None = None,
) -> Settings | None:
    """Validate one cluster's raw settings, adding a line per bad key to `problems`.

    `own_keys` limits the report to keys the cluster entry set itself: an inherited bad value
    is reported once, at the top level.
    """
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        for detail in error.errors():
            if own_keys is None or not detail["loc"] or detail["loc"][0] in own_keys:
                problems.append(_describe(detail, scope, provided or {}))
        return None


def _duplicates(pairs: list[tuple[Any, str]]) -> dict[Any, list[str]]:
    """Values claimed by more than one cluster, with the clusters that claim them."""
    claimed: dict[Any, list[str]] = {}
    for value, cluster in pairs:
        claimed.setdefault(value, []).append(cluster)
    return {value: names for value, names in claimed.items() if len(names) > 1}


def _clash_problems(clusters: list[Cluster]) -> list[str]:
    """Two clusters must never write the same Vault object: the last `up` would win."""
    checks = {
        "share an auth path": [
            ((c.settings.namespace, c.settings.auth_path), c.name) for c in clusters
        ],
        "write the same policy": [
            ((c.settings.namespace, policy), c.name)
            for c in clusters
            for policy in c.settings.policy_names()
        ],
        "both manage one KV mount": [
            ((c.settings.namespace, c.settings.kv_mount), c.name)
            for c in clusters
            if c.settings.manage_kv_mount
        ],
        "write one agent config file (machine:path)": [
            (file, c.name) for c in clusters for file in dict.fromkeys(c.settings.agent_files())
        ],
    }
    return [
        f"{PROJECT}:{CLUSTER_KEY}: clusters {', '.join(names)} {clash}: {value!r}"
        for clash, pairs in checks.items()
        for value, names in _duplicates(pairs).items()
    ]


def _cluster_entries(value: Any, problems: list[str]) -> list[dict[str, Any]]:
    """The `clusters` entries; [] (and a problem) when the value is not a list of objects."""
    shown = f"{PROJECT}:{CLUSTER_KEY}"
    if value is None:
        return []
    try:
        entries = from_json(value) if value != "" else ()
    except ValueError as error:
        problems.append(f"{shown}: {error}")
        return []
    if not isinstance(entries, tuple) or not all(isinstance(e, dict) for e in entries):
        problems.append(f"{shown}: must be a list of objects, each with a name")
        return []
    return list(entries)


def _own_file_problems(clusters: list[Cluster]) -> list[str]:
    """One cluster's `nomadConfigDir` and its own agents must not write one file either."""
    problems = []
    for cluster in clusters:
        files = cluster.settings.agent_files()
        for file in sorted({file for file in files if files.count(file) > 1}):
            scope = f"{CLUSTER_KEY}[{cluster.name}]." if cluster.name else ""
            problems.append(
                f"{PROJECT}:{scope}nomadAgents: writes {file!r}, which nomadConfigDir writes"
                " too; on this machine, point one of them elsewhere"
            )
    return problems


def _accepted_risks(value: Any, problems: list[str]) -> tuple[str, ...]:
    """`acceptJobIdRisks`: the job-ID risks of the stack's server the operator accepts."""
    shown = f"{PROJECT}:{RISKS_KEY}"
    try:
        risks = string_list(value) if value not in (None, "") else ()
    except ValueError as error:
        problems.append(f"{shown}: {error}")
        return ()
    if not isinstance(risks, tuple) or any(risk not in JOB_ID_RISKS for risk in risks):
        problems.append(f"{shown} = {value!r}: must be a list of {', '.join(JOB_ID_RISKS)}")
        return ()
    return tuple(dict.fromkeys(risks))


def _private_key(
    value: Any, is_secret: bool, clusters: list[Cluster], problems: list[str]
) -> SecretStr | None:
    """The SSH key for `nomadAgents`: checked here, and never shown in a message."""
    shown = f"{PROJECT}:{PRIVATE_KEY}"
    key = value if isinstance(value, str) else ""
    how = f"`pulumi config set --secret {PRIVATE_KEY} < <key file>`"
    problem = ssh_private_key_problem(key) if key else None
    if value not in (None, "") and not isinstance(value, str):
        problems.append(f"{shown}: must be a string (the key's text)")
    elif key and not is_secret:
        problems.append(
            f"{shown}: must be a secret (a plain value sits unencrypted in the stack file);"
            f" set it with {how}"
        )
    elif problem:
        problems.append(f"{shown}: {problem}")
    if not key and any(cluster.settings.nomad_agents for cluster in clusters):
        problems.append(f"{shown}: not set, but nomadAgents lists agents; set it with {how}")
    return SecretStr(key) if key else None


PROVIDER_KEYS_ARE_STACK_WIDE = "provider settings (vault:...) apply to the whole stack"


def _cluster_name(entry: dict[str, Any], scope: str, problems: list[str]) -> str | None:
    """The entry's name, or None (and a problem) when it is missing or not a valid name."""
    name = entry.get("name")
    try:
        if not isinstance(name, str):
            raise ValueError("must be a string of lowercase letters, digits and '-'")
        return cluster_name(name)
    except ValueError as error:
        problems.append(f"{PROJECT}:{scope}.name = {name!r}: {error}")
        return None


def parse_settings(
    raw: dict[str, Any],
    problems: list[str] | None = None,
    secret_keys: Collection[str] = (),
    provided: Mapping[str, str] | None = None,
) -> StackSettings:
    """Validate raw config (camelCase keys, engine-style values) into `StackSettings`.

    With `clusters`, every entry inherits the top-level settings, except that its `authPath`
    and `policyName` default to `jwt-nomad-<name>` and `nomad-workloads-<name>`, and its
    `nomadConfigDir` to `<top-level nomadConfigDir>/<name>`.
    `problems` found elsewhere (e.g. in the provider's settings) join the same report.
    `secret_keys` are the keys whose values the engine holds as secrets; `provided` maps a key
    filled in from the provider's settings to the name of that setting (for the report).
    Raises ConfigError naming every bad key at once.
    """
    raw = dict(raw)
    cluster_value = raw.pop(CLUSTER_KEY, None)
    private_key = raw.pop(PRIVATE_KEY, None)
    problems = list(problems or [])
    accepted_risks = _accepted_risks(raw.pop(RISKS_KEY, None), problems)
    top = _validate(raw, "", problems, provided=provided)
    entries = _cluster_entries(cluster_value, problems)
    clusters = [Cluster("", top)] if top and not entries else []
    for index, entry in enumerate(entries):
        scope = f"{CLUSTER_KEY}[{index}]"
        overrides = {key: value for key, value in entry.items() if key != "name"}
        for key in [key for key in overrides if ":" in key]:  # e.g. vault:namespace
            problems.append(
                f"{PROJECT}:{scope}.{key}: unknown setting; {PROVIDER_KEYS_ARE_STACK_WIDE}"
            )
            overrides.pop(key)
        name = _cluster_name(entry, scope, problems)
        derived = {}  # nothing to derive from a bad name: report the name only
        if name is not None:
            derived = {"authPath": f"jwt-nomad-{name}", "policyName": f"nomad-workloads-{name}"}
            if top and top.nomad_config_dir:
                derived["nomadConfigDir"] = f"{top.nomad_config_dir.rstrip('/')}/{name}"
        merged = raw | derived | overrides
        settings = _validate(merged, scope, problems, set(overrides) | set(derived), provided)
        if settings and name is not None:
            clusters.append(Cluster(name, settings))
    names = [(entry.get("name"), str(entry.get("name"))) for entry in entries]
    problems += [
        f"{PROJECT}:{CLUSTER_KEY}: clusters {', '.join(same)} use the same name"
        for same in _duplicates([pair for pair in names if isinstance(pair[0], str)]).values()
    ]
    if entries:
        problems += _clash_problems(clusters)
    problems += _own_file_problems(clusters)
    agents_private_key = _private_key(private_key, PRIVATE_KEY in secret_keys, clusters, problems)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(
            f"invalid stack configuration, nothing was changed; fix these settings:\n{lines}"
        )
    return StackSettings(tuple(clusters), agents_private_key, accepted_risks)


def _project_config() -> dict[str, Any]:
    """Every key the engine passed under our namespace, so a misspelt key is reported too."""
    prefix = f"{PROJECT}:"
    passed = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    return {
        key.removeprefix(prefix): value for key, value in passed.items() if key.startswith(prefix)
    }


def _is_secret(key: str) -> bool:
    """Whether the engine holds the full config `key` as a secret (`config set --secret`)."""
    from_env = set(pulumi.runtime.get_config_secret_keys_env())
    return pulumi.runtime.is_config_secret(key) or key in from_env


def _secret_keys(keys: Collection[str]) -> set[str]:
    """Which of our keys the engine holds as secrets."""
    return {key for key in keys if _is_secret(f"{PROJECT}:{key}")}


def load_settings() -> StackSettings:
    """Read this stack's config and the provider's address/namespace, then validate."""
    raw = _project_config()
    secret_keys = _secret_keys(raw)
    provider = pulumi.Config("vault")
    stack_address = provider.get("address")
    token = pulumi.runtime.get_config("vault:token")
    binding = token_binding_problem(
        pulumi.get_stack(), stack_address, token, _is_secret("vault:token")
    )
    provider_keys = {
        key for key in SHELL_OVERRIDES.values() if pulumi.runtime.get_config(key) is not None
    }
    shell = shell_override_problems(pulumi.get_stack(), provider_keys, os.environ)
    provided: dict[str, str] = {}
    if not raw.get("nomadVaultAddress"):
        raw.pop("nomadVaultAddress", None)  # Pulumi.yaml's "" default means "the provider's"
        address = stack_address or os.environ.get("VAULT_ADDR")
        if address:
            raw["nomadVaultAddress"] = address
            provided["nomadVaultAddress"] = "vault:address" if stack_address else "VAULT_ADDR"
    namespace = provider.get("namespace")
    raw["vault:namespace"] = namespace or os.environ.get("VAULT_NAMESPACE", "")
    provided["vault:namespace"] = "vault:namespace" if namespace else "VAULT_NAMESPACE"
    problems = [*([binding] if binding else []), *shell]
    stack = parse_settings(raw, problems, secret_keys, provided)
    skip_verify = provider.get("skipTlsVerify") or os.environ.get("VAULT_SKIP_VERIFY", "")
    context = ProviderContext(
        organization=pulumi.get_organization(),
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        address=stack_address or os.environ.get("VAULT_ADDR", ""),
        address_setting="vault:address" if stack_address else "VAULT_ADDR",
        namespace=str(raw["vault:namespace"]).strip("/"),
        ca_cert_file=provider.get("caCertFile") or os.environ.get("VAULT_CACERT") or None,
        ca_cert_dir=provider.get("caCertDir") or os.environ.get("VAULT_CAPATH") or None,
        skip_tls_verify=skip_verify.lower() in ("1", "true"),
    )
    return dataclasses.replace(stack, provider=context)
