"""Checks against the live server, made before any resource is registered.

Settings are validated without Vault; these need it, and so run once per `up` and `preview`,
before the engine is asked to write anything: what kind of server answers (a server that
expands globs in templated policy paths lets a job with a crafted ID read other jobs'
secrets), and whether any namespace or policy the stack would write already exists without
being this stack's. Every problem goes into one error, and nothing has been written.

The reads go through the provider (its address, token and namespace), except the server's
kind, which is asked of the unauthenticated health endpoint: no token is sent for it. Agent
files in `nomadConfigDir` are on this machine and checked here too; files on remote agents are
checked by the delivery command itself, before it writes (delivery.py).
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_vault as vault
from pulumi.runtime.sync_await import _sync_await

from .delivery import local_file_problems
from .ownership import foreign_namespace_problem, foreign_policy_problem, policy_marker
from .policy import render_workload_policy
from .server_kind import ServerProbeError, job_id_risk_problem, probe_server
from .settings import CLUSTER_KEY, PROJECT, RISKS_KEY, Cluster, ProviderContext, StackSettings


class PreflightError(pulumi.RunError):
    """The live server makes this stack unsafe to apply; the message lists every reason.

    A `RunError`, so the engine prints just the message and stops.
    """


@dataclass(frozen=True)
class LivePolicy:
    """A policy the stack would write, and what would make it provably the stack's already."""

    namespace: str
    name: str
    setting: str
    managed: bool
    ours: tuple[str, ...] = ()


# The stack outputs that say which policies the stack's last update managed.
POLICY_OUTPUTS = ("vault_policies", "policy_name", "namespace")


def previous_outputs(provider: ProviderContext) -> dict[str, Any]:
    """This stack's outputs as its last update left them ({} for a new stack).

    Read through a StackReference to the stack itself: the program has no other way to learn
    what the stack already manages, and only that tells drift (repair it) from a foreign
    object (leave it alone).
    """
    reference = pulumi.StackReference(
        f"{provider.organization}/{provider.project}/{provider.stack}"
    )
    return {name: _sync_await(reference.get_output_details(name)).value for name in POLICY_OUTPUTS}


def _for_cluster(outputs: Mapping[str, Any], name: str, cluster: str) -> Any:
    """One cluster's value of an output: plain for a stack without `clusters`, else by name."""
    value = outputs.get(name)
    if cluster:
        return value.get(cluster) if isinstance(value, dict) else None
    return None if isinstance(value, dict) else value


def _managed_names(outputs: Mapping[str, Any], cluster: Cluster) -> set[str]:
    """The policies the last update managed for this cluster, in its namespace now."""
    namespace = _for_cluster(outputs, "namespace", cluster.name)
    if (namespace or "") != cluster.settings.namespace:
        return set()
    names = set(_for_cluster(outputs, "vault_policies", cluster.name) or ())
    names.add(_for_cluster(outputs, "policy_name", cluster.name) or "")
    return names - {""}


def _setting(cluster: Cluster, key: str) -> str:
    scope = f"{CLUSTER_KEY}[{cluster.name}]." if cluster.name else ""
    return f"{PROJECT}:{scope}{key}"


# How the provider's generic read reports a path with nothing there (Vault's 404).
_NOTHING_THERE = "no secret found at"


class _ReadFailed(Exception):
    """A read the checks need was refused or failed: the message says which and why."""


def _read(path: str, namespace: str) -> dict | None:
    """The JSON data Vault answers a read of `path` with (through the provider), or None when
    there is nothing at `path`."""
    try:
        secret = vault.generic.get_secret(path=path, namespace=namespace or None)
    except Exception as error:  # the engine raises a bare Exception for a failed invoke
        if _NOTHING_THERE in str(error):
            return None
        where = f" in namespace {namespace!r}" if namespace else ""
        reason = str(error).rsplit(": ", 1)[-1].strip()
        raise _ReadFailed(f"cannot read {path}{where} to check who owns it: {reason}") from None
    return json.loads(secret.data_json or "{}")


def _accessor(namespace: str, auth_path: str) -> str | None:
    """The accessor of the auth mount at `auth_path`, when there is one this token may read."""
    try:
        mount = _read(f"sys/auth/{auth_path}", namespace)
    except _ReadFailed:
        return None  # then no unmarked policy counts as this stack's: the safe side
    return (mount or {}).get("accessor")


def _policies(cluster: Cluster, managed: set[str]) -> list[LivePolicy]:
    """Every policy the cluster writes; for the workload policy also the text an earlier
    release left there (no marker yet), bound to the live accessor of the stack's mount."""
    settings = cluster.settings
    namespace = settings.namespace
    name = settings.policy_name
    accessor = _accessor(namespace, settings.auth_path)
    workload = (render_workload_policy(accessor, settings.kv_mount),) if accessor else ()
    policies = [
        LivePolicy(namespace, name, _setting(cluster, "policyName"), name in managed, workload)
    ]
    for index, role in enumerate(settings.roles):
        if role.policy:
            setting = _setting(cluster, f"roles[{index}].policy")
            name = settings.inline_policy_name(role)
            policies.append(LivePolicy(namespace, name, setting, name in managed))
    return policies


def _namespace_problems(stack: StackSettings) -> tuple[list[str], set[str]]:
    """Problems with existing namespaces, and which of the stack's namespaces exist (ours)."""
    wanted = {c.settings.namespace: c for c in stack.clusters if c.settings.namespace}
    if not wanted:
        return [], set()
    existing = [path.strip("/") for path in vault.get_namespaces().paths or []]
    problems, ours = [], set()
    for path, cluster in wanted.items():
        if path not in existing:
            continue
        metadata = vault.get_namespace(path=path).custom_metadata
        problem = foreign_namespace_problem(
            path, _setting(cluster, "namespace"), existing, metadata
        )
        if problem:
            problems.append(problem)
        else:
            ours.add(path)
    return problems, ours


def _policy_problems(
    stack: StackSettings, marker: str, namespaces: set[str], outputs: Mapping[str, Any]
) -> list[str]:
    """Policies the stack would write that exist and are not provably the stack's."""
    problems = []
    for cluster in stack.clusters:
        namespace = cluster.settings.namespace
        if namespace and namespace not in namespaces:
            continue  # to be created (or foreign, reported already): nothing inside to check
        for policy in _policies(cluster, _managed_names(outputs, cluster)):
            try:
                live = _read(f"sys/policies/acl/{policy.name}", namespace)
            except _ReadFailed as failed:
                problems.append(f"{policy.setting}: {failed}")
                continue
            text = None if live is None else live.get("policy", "")
            problem = foreign_policy_problem(
                policy.name, policy.setting, text, marker, policy.managed, policy.ours
            )
            if problem:
                problems.append(problem)
    return problems


def _server_problems(stack: StackSettings, provider: ProviderContext) -> list[str]:
    try:
        server = probe_server(
            provider.address,
            ca_cert_file=provider.ca_cert_file,
            ca_cert_dir=provider.ca_cert_dir,
            skip_tls_verify=provider.skip_tls_verify,
        )
    except ServerProbeError as error:
        return [f"{provider.address_setting}: {error}"]
    problem = job_id_risk_problem(server, stack.accepted_job_id_risks)
    return [f"{PROJECT}:{RISKS_KEY}: {problem}"] if problem else []


def check_live_server(stack: StackSettings, provider: ProviderContext) -> None:
    """Raise PreflightError naming every reason this stack must not be applied to the server
    (and to this machine: agent config files it would overwrite)."""
    owner = f"{provider.project}/{provider.stack}"
    problems = [
        problem
        for cluster in stack.clusters
        for problem in local_file_problems(cluster.settings, owner)
    ]
    problems += _server_problems(stack, provider)
    namespace_problems, namespaces = _namespace_problems(stack)
    problems += namespace_problems
    marker = policy_marker(provider.project, provider.stack)
    problems += _policy_problems(stack, marker, namespaces, previous_outputs(provider))
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise PreflightError(f"refusing to apply this stack, nothing was changed:\n{lines}")
