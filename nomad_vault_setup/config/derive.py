"""Raw stack config -> each cluster's settings: inheritance, derived names, clashes.

A stack without `clusters` is one cluster (named ""); with `clusters`, every entry inherits
the top-level settings, except that its `authPath` and `policyName` default to
`jwt-nomad-<name>` and `nomad-workloads-<name>`, and its `nomadConfigDir` to
`<top-level nomadConfigDir>/<name>`. Then the checks that need more than one key: two clusters
writing one object, a cluster with no Vault address to tell Nomad, the stack-wide keys.
Pure: the engine's facts come in as a `ProviderContext`.
"""

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from .context import NO_PROVIDER, ProviderContext
from .fields import cluster_name, from_json, ssh_private_key_problem, string_list
from .report import describe, raise_if_any, setting
from .schema import (
    DEFAULT_AUTH_PATH,
    DEFAULT_POLICY_NAME,
    ClusterSettings,
    ExtraRole,
    NomadAgent,
    keys,
)

CLUSTER_KEY = "clusters"
# Stack-level only: a secret inside the plain `clusters` list could not be kept secret.
PRIVATE_KEY = "nomadAgentsPrivateKey"
# Stack-level only: a property of the one Vault server the stack talks to.
RISKS_KEY = "acceptJobIdRisks"
JOB_ID_RISKS = ("glob", "slash")
STACK_KEYS = (CLUSTER_KEY, PRIVATE_KEY, RISKS_KEY)
# The objects inside list settings, for listing the keys an entry may have.
_ENTRY_MODELS: dict[str, type[BaseModel]] = {"roles": ExtraRole, "nomadAgents": NomadAgent}


@dataclass(frozen=True)
class Cluster:
    """One Nomad cluster to set up; `name` is "" for a stack without `clusters`."""

    name: str
    settings: ClusterSettings

    @property
    def scope(self) -> str:
        """Where its keys are in the stack file ("" at the top level)."""
        return f"{CLUSTER_KEY}[{self.name}]" if self.name else ""

    def setting(self, key: str) -> str:
        """One of its keys, as the stack file names it."""
        return setting(key, self.scope)


@dataclass(frozen=True)
class StackSettings:
    """Everything a stack sets up: its clusters, the stack-wide keys, and the provider context.

    `agents_private_key` is the SSH key every `nomadAgents` entry accepts; a SecretStr, so no
    repr, log line or error message ever shows it.
    """

    clusters: tuple[Cluster, ...]
    provider: ProviderContext = NO_PROVIDER
    agents_private_key: SecretStr | None = None
    accepted_job_id_risks: tuple[str, ...] = ()

    @property
    def multi_cluster(self) -> bool:
        """Whether the stack uses the `clusters` form (outputs are then maps by name)."""
        return bool(self.clusters[0].name)

    def nomad_vault_address(self, cluster: Cluster) -> str:
        """The Vault address the cluster's Nomad agents are told: its own, or the provider's."""
        return cluster.settings.nomad_vault_address or self.provider.address

    def client_namespace(self, cluster: Cluster) -> str:
        """The full Vault namespace path the cluster's Nomad clients log in to."""
        parts = (self.provider.namespace, cluster.settings.namespace)
        return "/".join(part for part in parts if part)


def cluster_keys() -> list[str]:
    """The keys one cluster has (top level, or an entry of `clusters` beside its `name`)."""
    return keys(ClusterSettings)


def config_keys() -> list[str]:
    """The config keys a stack may set under `nomad-vault-setup:`."""
    return sorted([*cluster_keys(), *STACK_KEYS])


def _known(location: tuple[Any, ...], scope: str) -> list[str]:
    if len(location) > 2 and location[0] in _ENTRY_MODELS:
        return keys(_ENTRY_MODELS[location[0]])
    return config_keys() if not scope else ["name", *cluster_keys()]


def _validate(
    raw: dict[str, Any], scope: str, problems: list[str], own_keys: set[str] | None = None
) -> ClusterSettings | None:
    """Validate one cluster's raw settings, adding a line per bad key to `problems`.

    `own_keys` limits the report to keys the cluster entry set itself: an inherited bad value
    is reported once, at the top level.
    """
    try:
        return ClusterSettings.model_validate(raw)
    except ValidationError as error:
        for detail in error.errors():
            if own_keys is None or not detail["loc"] or detail["loc"][0] in own_keys:
                problems.append(describe(detail, scope, _known(detail["loc"], scope)))
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
        f"{setting(CLUSTER_KEY)}: clusters {', '.join(names)} {clash}: {value!r}"
        for clash, pairs in checks.items()
        for value, names in _duplicates(pairs).items()
    ]


def _cluster_entries(value: Any, problems: list[str]) -> list[dict[str, Any]]:
    """The `clusters` entries; [] (and a problem) when the value is not a list of objects."""
    shown = setting(CLUSTER_KEY)
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
    """Per cluster: a file its `nomadConfigDir` and its own agents both write."""
    problems = []
    for cluster in clusters:
        files = cluster.settings.agent_files()
        for file in sorted({file for file in files if files.count(file) > 1}):
            problems.append(
                f"{cluster.setting('nomadAgents')}: writes {file!r}, which nomadConfigDir"
                " writes too; on this machine, point one of them elsewhere"
            )
    return problems


def _address_problems(
    raw: dict[str, Any],
    entries: list[dict[str, Any]],
    provider: ProviderContext,
    reported: list[str],
) -> list[str]:
    """Nomad agents must be told where Vault is: the cluster's own address, else the
    provider's. One line when no cluster has one, else one per entry without."""
    if provider.address or raw.get("nomadVaultAddress"):
        return []
    if any(problem.startswith(provider.address_setting) for problem in reported):
        return []  # the provider's address is there, but bad: reported already
    without = [i for i, entry in enumerate(entries) if not entry.get("nomadVaultAddress")]
    scopes = [""] if len(without) == len(entries) else [f"{CLUSTER_KEY}[{i}]" for i in without]
    return [
        f"{setting('nomadVaultAddress', scope)}: not set, and the provider has no address to"
        " default to; set vault:address, VAULT_ADDR or nomadVaultAddress to an http(s) URL"
        for scope in scopes
    ]


def _accepted_risks(value: Any, problems: list[str]) -> tuple[str, ...]:
    """`acceptJobIdRisks`: the job-ID risks of the stack's server the operator accepts."""
    shown = setting(RISKS_KEY)
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
    shown = setting(PRIVATE_KEY)
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


def _cluster_name(entry: dict[str, Any], scope: str, problems: list[str]) -> str | None:
    """The entry's name, or None (and a problem) when it is missing or not a valid name."""
    name = entry.get("name")
    try:
        if not isinstance(name, str):
            raise ValueError("must be a string of lowercase letters, digits and '-'")
        return cluster_name(name)
    except ValueError as error:
        problems.append(f"{setting('name', scope)} = {name!r}: {error}")
        return None


def _entry_overrides(entry: dict[str, Any], scope: str, problems: list[str]) -> dict[str, Any]:
    """What a `clusters` entry sets for itself; provider keys (vault:...) are stack-wide."""
    overrides = {key: value for key, value in entry.items() if key != "name"}
    for key in [key for key in overrides if ":" in key]:
        problems.append(
            f"{setting(key, scope)}: unknown setting; provider settings (vault:...) apply to"
            " the whole stack"
        )
        overrides.pop(key)
    return overrides


def parse_settings(
    raw: dict[str, Any],
    problems: list[str] | None = None,
    secret_keys: Collection[str] = (),
    provider: ProviderContext = NO_PROVIDER,
) -> StackSettings:
    """Validate raw config (camelCase keys, engine-style values) into `StackSettings`.

    `problems` found elsewhere (the provider's settings) join the same report; `secret_keys`
    are our keys whose values the engine holds as secrets. Raises ConfigError naming every bad
    key at once.
    """
    raw = dict(raw)
    cluster_value = raw.pop(CLUSTER_KEY, None)
    private_key = raw.pop(PRIVATE_KEY, None)
    problems = list(problems or [])
    accepted_risks = _accepted_risks(raw.pop(RISKS_KEY, None), problems)
    top = _validate(raw, "", problems)
    entries = _cluster_entries(cluster_value, problems)
    clusters = [Cluster("", top)] if top and not entries else []
    for index, entry in enumerate(entries):
        scope = f"{CLUSTER_KEY}[{index}]"
        overrides = _entry_overrides(entry, scope, problems)
        name = _cluster_name(entry, scope, problems)
        derived = {}  # nothing to derive from a bad name: report the name only
        if name is not None:
            derived = {
                "authPath": f"{DEFAULT_AUTH_PATH}-{name}",
                "policyName": f"{DEFAULT_POLICY_NAME}-{name}",
            }
            if top and top.nomad_config_dir:
                derived["nomadConfigDir"] = f"{top.nomad_config_dir.rstrip('/')}/{name}"
        settings = _validate(raw | derived | overrides, scope, problems, {*overrides, *derived})
        if settings and name is not None:
            clusters.append(Cluster(name, settings))
    names = [(entry.get("name"), str(entry.get("name"))) for entry in entries]
    problems += [
        f"{setting(CLUSTER_KEY)}: clusters {', '.join(same)} use the same name"
        for same in _duplicates([pair for pair in names if isinstance(pair[0], str)]).values()
    ]
    if entries:
        problems += _clash_problems(clusters)
    problems += _own_file_problems(clusters)
    problems += _address_problems(raw, entries, provider, problems)
    agents_private_key = _private_key(private_key, PRIVATE_KEY in secret_keys, clusters, problems)
    raise_if_any(problems)
    return StackSettings(tuple(clusters), provider, agents_private_key, accepted_risks)
