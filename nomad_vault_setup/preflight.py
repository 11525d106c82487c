"""Checks against the live server, made before any resource is registered.

Settings are validated without Vault; these need it, and so run once per `up` and `preview`,
before the engine is asked to write anything: what kind of server answers (a server that
expands globs in templated policy paths lets a job with a crafted ID read other jobs'
secrets), and whether any namespace or policy the stack would write already exists without
being this stack's (ownership.py has the rules). Every problem goes into one error, and
nothing has been written.

The reads go through the provider (its address, token and namespace), except the two that
cannot (vault_http.py): the server's kind, asked of the unauthenticated health endpoint, and
a namespace's tag in the first step of an adoption. Agent
files in `nomadConfigDir` are on this machine and checked here too; files on remote agents are
checked by the delivery command itself, before it writes (agent_files.py).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_vault as vault
from pulumi.runtime.sync_await import _sync_await

from .adoption import (
    NAMESPACE_IMPORT_VARIABLE,
    NOTHING_ADOPTED,
    Adoption,
    LiveInstall,
    import_ids,
    install_differences,
    is_nomad_setups,
    namespace_import_problems,
)
from .agent_files import local_file_problems
from .config import RISKS_KEY, Cluster, ProviderContext, StackSettings
from .config.report import STACK_CONFIG, naming, setting
from .ownership import (
    KV_MOUNT_DESCRIPTION,
    PROJECT,
    foreign_mount_problem,
    foreign_namespace_problem,
    foreign_policy_problem,
)
from .policy import render_workload_policy
from .server_kind import ServerProbeError, VaultServer, job_id_risk_problem, probe_server
from .token_access import token_problems
from .vault_http import VaultUnreachable, namespace_metadata

# The stack outputs that record what the stack's last update managed, and where.
RECORD_OUTPUTS = (
    "vault_server",
    "jwks_keys",
    "vault_policies",
    "policy_name",
    "namespace",
    "auth_path",
    "single_form_mount",
)
# How the provider's generic read reports a path with nothing there (Vault's 404; OpenBao
# answers a read of a missing auth mount's `sys/auth/<path>` with a 400 saying so).
_NOTHING_THERE = ("no secret found at", "No auth engine at")


class PreflightError(pulumi.RunError):
    """The live server makes this stack unsafe to apply; the message lists every reason.

    A `RunError`, so the engine prints just the message and stops.
    """


class _ReadFailed(Exception):
    """A read the checks need was refused or failed: the message says which and why."""


@dataclass(frozen=True)
class LivePolicy:
    """A policy the stack would write, and what would make it provably the stack's already."""

    name: str
    setting: str
    managed: bool
    workload: bool  # the templated workload policy (an earlier release wrote it unmarked)


def vault_server_record(server: VaultServer, provider: ProviderContext) -> dict[str, str]:
    """Where the stack's objects live: the `vault_server` output its next run compares."""
    return {"cluster_id": server.cluster_id, "namespace": provider.namespace}


def previous_outputs(provider: ProviderContext) -> dict[str, Any]:
    """This stack's outputs as its last update left them ({} for a new stack).

    Read through a StackReference to the stack itself: the program has no other way to learn
    what the stack already manages, and only that tells drift (repair it) from a foreign
    object (leave it alone).
    """
    reference = pulumi.StackReference(provider.owner)
    return {name: _sync_await(reference.get_output_details(name)).value for name in RECORD_OUTPUTS}


def recorded_clusters(record: Mapping[str, Any]) -> list[str]:
    """The clusters the last update recorded outputs for ("" for a stack without `clusters`)."""
    value = record.get("auth_path")
    return list(value) if isinstance(value, dict) else [""]


def recorded_value(record: Mapping[str, Any], name: str, cluster: str) -> Any:
    """One cluster's value of an output: plain for a stack without `clusters`, else by name."""
    value = record.get(name)
    if cluster:
        return value.get(cluster) if isinstance(value, dict) else None
    return None if isinstance(value, dict) else value


def _managed_policies(record: Mapping[str, Any], cluster: Cluster) -> set[str]:
    """The policies the last update managed for this cluster, in its namespace now."""
    if recorded_value(record, "namespace", cluster.name) != cluster.settings.namespace:
        return set()
    names = set(recorded_value(record, "vault_policies", cluster.name) or ())
    names.add(recorded_value(record, "policy_name", cluster.name) or "")
    return names - {""}


def _read(path: str, namespace: str) -> dict | None:
    """The JSON data Vault answers a read of `path` with (through the provider), or None when
    there is nothing at `path`."""
    try:
        secret = vault.generic.get_secret(path=path, namespace=namespace or None)
    except Exception as error:  # the engine raises a bare Exception for a failed invoke
        if any(nothing in str(error) for nothing in _NOTHING_THERE):
            return None
        raise _ReadFailed(_why(f"read {path}", namespace, error)) from None
    return json.loads(secret.data_json or "{}")


def _why(action: str, namespace: str, error: Exception) -> str:
    where = f" in namespace {namespace!r}" if namespace else ""
    reason = str(error).rsplit(": ", 1)[-1].strip()
    return f"cannot {action}{where} to check who owns it: {reason}"


def _accessor(namespace: str, auth_path: str) -> str | None:
    """The accessor of the auth mount at `auth_path`, when there is one this token may read."""
    try:
        mount = _read(f"sys/auth/{auth_path}", namespace)
    except _ReadFailed:
        return None  # then no unmarked policy counts as this stack's: the safe side
    return (mount or {}).get("accessor")


def _policies(cluster: Cluster, managed: set[str]) -> list[LivePolicy]:
    """Every policy the cluster writes."""
    settings = cluster.settings
    name = settings.policy_name
    policies = [LivePolicy(name, cluster.setting("policyName"), name in managed, True)]
    for index, role in enumerate(settings.roles):
        if role.policy:
            name = settings.inline_policy_name(role)
            setting = cluster.setting(f"roles[{index}].policy")
            policies.append(LivePolicy(name, setting, name in managed, False))
    return policies


def _earlier_release_text(cluster: Cluster) -> tuple[str, ...]:
    """The workload policy an earlier release left, unmarked, for the stack's own mount:
    bound to that mount's live accessor (read only when a policy needs it)."""
    settings = cluster.settings
    accessor = _accessor(settings.namespace, settings.auth_path)
    return (render_workload_policy(accessor, settings.kv_mount),) if accessor else ()


@dataclass
class _Namespaces:
    """What the stack's namespaces are on the server: problems, which exist, which are ours,
    which `nomad setup vault` made for an adopting cluster."""

    problems: list[str] = field(default_factory=list)
    existing: set[str] = field(default_factory=set)
    ours: set[str] = field(default_factory=set)
    adoptable: set[str] = field(default_factory=set)


def _check_namespaces(
    stack: StackSettings, provider: ProviderContext, record: Mapping[str, Any]
) -> _Namespaces:
    """Problems with existing namespaces, and what each of the stack's namespaces is."""
    wanted: dict[str, list[Cluster]] = {}
    for cluster in stack.clusters:
        if cluster.settings.namespace:
            wanted.setdefault(cluster.settings.namespace, []).append(cluster)
    found = _Namespaces()
    if not wanted:
        return found
    tags, found.problems = _namespace_tags(stack, provider, wanted)
    for path, clusters in wanted.items():
        if path not in tags:
            continue  # no such namespace (or unreadable, reported)
        metadata = tags[path]
        found.existing.add(path)
        if is_nomad_setups(metadata) and any(c.settings.adopt for c in clusters):
            found.adoptable.add(path)
            continue
        setting = clusters[0].setting("namespace")
        managed = any(recorded_value(record, "namespace", c.name) == path for c in clusters)
        problem = foreign_namespace_problem(path, setting, metadata, provider.owner, managed)
        if problem:
            found.problems.append(problem)
        elif provider.namespace_import:
            found.problems.append(
                f"{setting}: namespace {path!r} is already this stack's: nothing in it is"
                f" adopted with {NAMESPACE_IMPORT_VARIABLE}; unset it"
            )
        else:
            found.ours.add(path)
    return found


def _namespace_tags(
    stack: StackSettings, provider: ProviderContext, wanted: Mapping[str, list[Cluster]]
) -> tuple[dict[str, Mapping[str, str] | None], list[str]]:
    """The custom metadata of each wanted namespace that exists, and why one could not be read.

    Through the provider, except in the first step of an adoption: then every provider read
    without a namespace of its own goes into the variable's namespace, so the namespaces' own
    tags are read directly (vault_http.py).
    """
    tags: dict[str, Mapping[str, str] | None] = {}
    problems: list[str] = []
    if provider.namespace_import:
        for path, clusters in wanted.items():
            try:
                metadata = namespace_metadata(provider.session, path)
            except (VaultUnreachable, ValueError) as error:
                why = f"cannot read namespace {path!r} to check who owns it: {error}"
                problems.append(f"{clusters[0].setting('namespace')}: {why}")
                continue
            if metadata is not None:
                tags[path] = metadata
        return tags, problems
    try:
        listed = {path.strip("/") for path in vault.get_namespaces().paths or []}
    except Exception as error:  # a failed invoke
        return {}, [f"{stack.clusters[0].setting('namespace')}: {_why('list', '', error)}"]
    for path in wanted:
        if path in listed:
            tags[path] = vault.get_namespace(path=path).custom_metadata
    return tags, problems


def _policy_problems(
    stack: StackSettings,
    owner: str,
    namespaces: set[str],
    record: Mapping[str, Any],
    previous: Mapping[str, Any],
    adoption: Adoption,
) -> list[str]:
    """Policies the stack would write that exist and are not provably the stack's (a policy
    being adopted is compared by adoption.py instead, unless another stack marked it)."""
    problems = []
    for cluster in stack.clusters:
        namespace = cluster.settings.namespace
        if namespace and namespace not in namespaces:
            continue  # to be created (or foreign, reported already): nothing inside to check
        managed = _managed_policies(record, cluster)
        earlier_release_mount = _earlier_release_mount(previous, cluster)
        if adoption.of(cluster).policy:
            managed.add(cluster.settings.policy_name)
        for policy in _policies(cluster, managed):
            try:
                live = _read(f"sys/policies/acl/{policy.name}", namespace)
            except _ReadFailed as failed:
                problems.append(f"{policy.setting}: {failed}")
                continue
            text = None if live is None else live.get("policy", "")
            problem = foreign_policy_problem(
                policy.name, policy.setting, text, owner, policy.managed
            )
            if problem and policy.workload and earlier_release_mount:
                ours = _earlier_release_text(cluster)
                problem = foreign_policy_problem(
                    policy.name, policy.setting, text, owner, policy.managed, ours
                )
            if problem:
                problems.append(problem)
    return problems


def _earlier_release_mount(previous: Mapping[str, Any], cluster: Cluster) -> bool:
    """Whether an earlier release (which recorded no `vault_server`) recorded this mount."""
    return previous.get("vault_server") is None and _recorded_mount(previous, cluster)


def _mount_problems(
    stack: StackSettings,
    owner: str,
    namespaces: set[str],
    record: Mapping[str, Any],
    previous: Mapping[str, Any],
) -> tuple[list[str], list[Cluster]]:
    """Auth mounts the stack would create that exist and are not the stack's (adopting ones
    are compared by adoption.py); and the clusters whose own mount has no JWT config."""
    problems, unconfigured = [], []
    for cluster in stack.clusters:
        settings = cluster.settings
        if settings.adopt or (settings.namespace and settings.namespace not in namespaces):
            continue
        try:
            live = _read(f"sys/auth/{settings.auth_path}", settings.namespace)
        except _ReadFailed:
            continue  # a token that may not read it: creating an existing mount fails anyway
        managed = _recorded_mount(record, cluster) or _earlier_release_mount(previous, cluster)
        problem = foreign_mount_problem(
            settings.auth_path,
            cluster.setting("authPath"),
            cluster.setting("adopt") if naming() == STACK_CONFIG else None,
            live,
            owner,
            managed,
        )
        if problem:
            problems.append(problem)
        elif live is not None and _without_config(cluster):
            unconfigured.append(cluster)
    return problems, unconfigured


def _kv_mount_problems(stack: StackSettings, namespaces: set[str]) -> list[str]:
    """KV mounts a cluster would create (`manageKvMount`) that exist and are not this
    program's: creating one fails half-way through an `up`, and managing it would take over
    (and on destroy delete) someone's secrets."""
    problems = []
    for cluster in stack.clusters:
        settings = cluster.settings
        if not settings.manage_kv_mount:
            continue
        if settings.namespace and settings.namespace not in namespaces:
            continue  # to be created: nothing inside it yet
        try:
            live = _read(f"sys/mounts/{settings.kv_mount}", settings.namespace)
        except _ReadFailed:
            continue  # a token that may not read it: creating an existing mount fails anyway
        if live is not None and live.get("description") != KV_MOUNT_DESCRIPTION:
            problems.append(
                f"{cluster.setting('manageKvMount')}: the KV mount {settings.kv_mount!r} already"
                f" exists and was not made by {PROJECT} (description:"
                f" {live.get('description', '')!r}); set manageKvMount to false to use it as it"
                " is, or choose another kvMount"
            )
    return problems


def _without_config(cluster: Cluster) -> bool:
    settings = cluster.settings
    try:
        return _read(f"auth/{settings.auth_path}/config", settings.namespace) is None
    except _ReadFailed:
        return False


def _recorded_mount(record: Mapping[str, Any], cluster: Cluster) -> bool:
    """Whether the trusted record says this stack manages the cluster's auth mount already."""
    return (
        recorded_value(record, "auth_path", cluster.name) == cluster.settings.auth_path
        and recorded_value(record, "namespace", cluster.name) == cluster.settings.namespace
    )


def _live_install(cluster: Cluster) -> LiveInstall:
    """What the cluster's paths hold now (raises _ReadFailed naming a refused read)."""
    settings = cluster.settings
    namespace, auth = settings.namespace, f"auth/{settings.auth_path}"
    mount = _read(f"sys/auth/{settings.auth_path}", namespace)
    if mount is None:
        return LiveInstall()
    policy = _read(f"sys/policies/acl/{settings.policy_name}", namespace)
    return LiveInstall(
        mount=mount,
        config=_read(f"{auth}/config", namespace),
        role=_read(f"{auth}/role/{settings.role_name}", namespace),
        policy=None if policy is None else policy.get("policy", ""),
        extra_roles=tuple(
            role.name
            for role in settings.roles
            if _read(f"{auth}/role/{role.name}", namespace) is not None
        ),
    )


def _adoption(
    stack: StackSettings,
    provider: ProviderContext,
    record: Mapping[str, Any],
    namespaces: _Namespaces,
) -> tuple[Adoption, list[str]]:
    """What this run adopts (adoption.py), and every reason it must not."""
    problems, imports, inner = [], {}, {}
    for cluster in stack.clusters:
        settings = cluster.settings
        if not settings.adopt or _recorded_mount(record, cluster):
            continue  # nothing to adopt, or adopted already
        if settings.namespace and settings.namespace not in namespaces.existing:
            problems.append(
                f"{cluster.setting('adopt')}: there is no namespace {settings.namespace!r} to"
                " adopt: check namespace (and the provider's), or remove adopt"
            )
            continue
        try:
            live = _live_install(cluster)
        except _ReadFailed as failed:
            problems.append(f"{cluster.setting('adopt')}: {failed}")
            continue
        problems += install_differences(cluster, live)
        imports[cluster.name] = import_ids(cluster, live)
        inner[cluster.name] = live.mount is not None
    if provider.namespace_import or any(
        needed and c.settings.namespace for c in stack.clusters if (needed := inner.get(c.name))
    ):
        managed = any(
            recorded_value(record, "auth_path", name) for name in recorded_clusters(record)
        )
        problems += namespace_import_problems(stack, provider.namespace_import, inner, managed)
    deferred = bool(provider.namespace_import)
    adoption = Adoption(
        imports=imports,
        namespaces=frozenset() if deferred else frozenset(namespaces.adoptable),
        namespaces_deferred=deferred,
    )
    return adoption, problems


def _probe(stack: StackSettings, provider: ProviderContext) -> tuple[VaultServer | None, list[str]]:
    try:
        server = probe_server(provider.address, provider.tls)
    except ServerProbeError as error:
        return None, [f"{provider.address_setting}: {error}"]
    shown = setting(RISKS_KEY)
    accept_in = None if naming() == STACK_CONFIG else shown
    problem = job_id_risk_problem(server, stack.accepted_job_id_risks, accept_in)
    return server, [f"{shown}: {problem}"] if problem else []


@dataclass(frozen=True)
class LiveServer:
    """What the checks learnt: the stack's new `vault_server` record, and its last outputs."""

    record: dict[str, str]
    previous: dict[str, Any]
    adoption: Adoption = NOTHING_ADOPTED
    # The clusters whose own auth mount an interrupted `up` left without JWT config.
    unconfigured: tuple[Cluster, ...] = ()
    # The last outputs when they were recorded on this very server and namespace, else {}.
    trusted: dict[str, Any] = field(default_factory=dict)


def check_live_server(
    stack: StackSettings, provider: ProviderContext, previous: dict[str, Any] | None = None
) -> LiveServer:
    """Raise PreflightError naming every reason this stack must not be applied to the server
    (and to this machine: agent config files it would overwrite); else return what was learnt.

    The last update's record of what it managed counts only when it was made on this very
    cluster and provider namespace: a stack pointed at another server claims nothing there.
    `previous` is that record when the caller has it ({} for a component in another program,
    which has none: the ownership marks on the objects alone say what is its own).
    """
    problems = [
        problem
        for cluster in stack.clusters
        for problem in local_file_problems(cluster.settings, provider.owner)
    ]
    server, server_problems = _probe(stack, provider)
    problems += server_problems
    if server:
        problems += token_problems(stack, provider)
    if server is None or any(p.startswith(provider.token_setting) for p in problems):
        refuse(problems)  # every later check would ask the server with that token
    here = vault_server_record(server, provider) if server else None
    previous = previous_outputs(provider) if previous is None else previous
    trusted = here is not None and bool(here["cluster_id"]) and previous.get("vault_server") == here
    record = previous if trusted else {}
    namespaces = _check_namespaces(stack, provider, record)
    adoption, adoption_problems = _adoption(stack, provider, record, namespaces)
    problems += namespaces.problems + adoption_problems
    inside_namespaces = namespaces.ours | namespaces.adoptable
    mount_problems, unconfigured = _mount_problems(
        stack, provider.owner, inside_namespaces, record, previous
    )
    problems += mount_problems + _kv_mount_problems(stack, inside_namespaces)
    problems += _policy_problems(
        stack, provider.owner, inside_namespaces, record, previous, adoption
    )
    if problems or here is None:
        refuse(problems)
    return LiveServer(here, previous, adoption, tuple(unconfigured), record)


def refuse(problems: list[str]) -> None:
    """Raise PreflightError listing every problem: nothing has been written."""
    lines = "\n".join(f"  - {problem}" for problem in problems)
    raise PreflightError(f"refusing to apply this stack, nothing was changed:\n{lines}")
