"""A whole stack, one path for one Nomad cluster or many: namespaces, clusters, outputs.

Each namespace is created once, at stack level, as `namespace-<path>`: clusters share it, and
adding or removing a cluster never moves (so never replaces) one that others live in. Each
cluster is a `NomadVaultSetup` component, `nomad` for a stack without `clusters` and
`nomad-<name>` with them, and its agent config is delivered by an `AgentConfig` component of
the same name beneath it.

Where earlier layouts registered a resource elsewhere, a Pulumi alias maps the old name, so an
upgraded stack, or a single-cluster stack written as an entry of `clusters`, changes
nothing in Vault (the accessor of a re-created mount would change, and break every job):
- the namespace of a single-cluster stack was `nomad-namespace`, a child of the component;
- delivered files were children of the cluster component, not of an AgentConfig;
- the `clusters` entry with the auth mount a single-cluster stack recorded takes over the
  single-cluster names (`nomad`, `nomad-auth`, ...), which match no state once it has.
"""

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_vault as vault

from .config import Cluster, StackSettings
from .ownership import namespace_metadata, stack_owner
from .preflight import check_live_server
from .resource_types import CLUSTER_COMPONENT
from .vault_setup import NomadVaultSetup, NomadVaultSetupArgs

# The component name of a stack without `clusters`.
SINGLE = "nomad"


def component_name(cluster: Cluster) -> str:
    return f"{SINGLE}-{cluster.name}" if cluster.name else SINGLE


def deploy(stack: StackSettings) -> dict[str, Any]:
    """Check the live server, register every resource; return the stack outputs by name."""
    live = check_live_server(stack, stack.provider)
    key = stack.agents_private_key
    private_key = pulumi.Output.secret(key.get_secret_value()) if key else None
    heir = single_form_heir(stack, live.previous)
    namespaces = _namespaces(stack, heir)
    per_cluster: dict[str, dict[str, pulumi.Output]] = {}
    for cluster in stack.clusters:
        per_cluster[cluster.name] = _cluster(
            stack,
            cluster,
            namespaces.get(cluster.settings.namespace),
            private_key,
            takes_over_single=cluster is heir,
        )
    outputs: dict[str, Any] = {}
    if not stack.multi_cluster:
        outputs = dict(per_cluster[""])
    else:
        for name, values in per_cluster.items():
            for output, value in values.items():
                outputs.setdefault(output, {})[name] = value
    # Where the objects live: the next run trusts these outputs only on this same server.
    outputs["vault_server"] = live.record
    return outputs


def single_form_heir(stack: StackSettings, previous: dict[str, Any]) -> Cluster | None:
    """The `clusters` entry that takes over a single-cluster stack's resources, if any.

    The one whose auth mount (namespace and path) is the one the stack's last update, made in
    the single-cluster form, recorded: its objects are the same Vault objects. Chosen by what
    it is, not by position, so a new cluster listed first can never inherit (and so move) the
    mount that running jobs log in at.
    """
    path, namespace = previous.get("auth_path"), previous.get("namespace") or ""
    if not stack.multi_cluster or not isinstance(path, str) or not isinstance(namespace, str):
        return None
    for cluster in stack.clusters:
        if (cluster.settings.auth_path, cluster.settings.namespace) == (path, namespace):
            return cluster
    return None


def _single_urn() -> pulumi.Output[str]:
    """The URN of the single-cluster form's component, where earlier layouts put children."""
    return pulumi.create_urn(SINGLE, CLUSTER_COMPONENT)


def _namespaces(stack: StackSettings, heir: Cluster | None) -> dict[str, vault.Namespace]:
    """One Namespace per path the clusters name, tagged as this stack's (ownership.py)."""
    namespaces: dict[str, vault.Namespace] = {}
    # Earlier layouts made a single-cluster stack's namespace as its component's child: the
    # single cluster's, or its heir's in the `clusters` form.
    single = heir or (None if stack.multi_cluster else stack.clusters[0])
    first = single.settings.namespace if single else None
    for path in dict.fromkeys(c.settings.namespace for c in stack.clusters):
        if not path:
            continue
        protect = any(c.settings.protect for c in stack.clusters if c.settings.namespace == path)
        former = [pulumi.Alias(name=f"{SINGLE}-namespace", parent=_single_urn())]
        namespaces[path] = vault.Namespace(
            f"namespace-{path}",
            path=path,
            custom_metadata=namespace_metadata(stack_owner()),
            opts=pulumi.ResourceOptions(
                # Deleting a namespace deletes everything in it: `protect` guards it like the
                # mount; it is addressed by path, so it is replaced delete-first.
                delete_before_replace=True,
                protect=protect,
                aliases=former if path == first else [],
            ),
        )
    return namespaces


def _cluster(
    stack: StackSettings,
    cluster: Cluster,
    namespace: vault.Namespace | None,
    private_key: pulumi.Output[str] | None,
    takes_over_single: bool,
) -> dict[str, pulumi.Output]:
    """One cluster's component and its delivery; its outputs by name."""
    name = component_name(cluster)
    args = NomadVaultSetupArgs(
        settings=cluster.settings,
        nomad_vault_address=stack.nomad_vault_address(cluster),
        client_namespace=stack.client_namespace(cluster),
        # From the resource's output, so everything inside waits for the namespace on create
        # and is deleted before it.
        namespace=namespace.path if namespace else None,
    )
    former = [pulumi.Alias(name=SINGLE)] if takes_over_single else []
    component = NomadVaultSetup(name, args, pulumi.ResourceOptions(aliases=former))
    settings = cluster.settings
    if settings.nomad_config_dir or settings.nomad_agents:
        # Only a stack that delivers files loads pulumi-command.
        from .agent_config import AgentConfig, AgentConfigArgs

        AgentConfig(
            name,
            AgentConfigArgs(
                settings,
                component.nomad_server_config,
                component.nomad_client_config,
                private_key,
            ),
            _former_file_names(name, component, takes_over_single),
            pulumi.ResourceOptions(parent=component),
        )
    return component.outputs()


def _former_file_names(
    name: str, component: NomadVaultSetup, takes_over_single: bool
) -> Callable[[str], list[pulumi.Alias]]:
    """Delivered files were children of the cluster component itself (and, for the heir of a
    single-cluster stack, of the single-cluster form's component, under its name)."""

    def aliases(child: str) -> list[pulumi.Alias]:
        found = [pulumi.Alias(parent=component)]
        if takes_over_single:
            single_name = SINGLE + child.removeprefix(name)
            found.append(pulumi.Alias(name=single_name, parent=_single_urn()))
        return found

    return aliases
