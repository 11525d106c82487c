"""A whole stack: one component per Nomad cluster, and the stack outputs.

A stack without `clusters` is one component named `nomad` whose outputs are plain values, as
it always was. With `clusters`, each cluster is a component `nomad-<name>`, every output is a
map keyed by cluster name, and each namespace is created once, outside the components, under a
name of its own: adding or removing a cluster then never moves (so never replaces) a namespace
that other clusters live in.

Each cluster's agent config is then delivered (files, agents over SSH) as children of its
component; the SSH key becomes a secret Output here, before any resource can see it.
"""

from typing import Any

import pulumi
import pulumi_vault as vault

from .delivery import deliver_agent_config
from .preflight import check_live_server
from .settings import StackSettings
from .vault_setup import NomadVaultSetup, namespace_resource


def deploy(stack: StackSettings) -> dict[str, Any]:
    """Register every cluster's resources; return the stack outputs by name.

    First, with the engine's provider context, the live server is checked: nothing is
    registered for a stack that would take over objects it does not own.
    """
    record = check_live_server(stack, stack.provider) if stack.provider is not None else None
    outputs = _deploy(stack)
    if record is not None:
        # Where the objects live: the next run trusts its outputs only on this same server.
        outputs["vault_server"] = record
    return outputs


def _deploy(stack: StackSettings) -> dict[str, Any]:
    key = stack.agents_private_key
    private_key = pulumi.Output.secret(key.get_secret_value()) if key else None
    if not stack.multi_cluster:
        settings = stack.clusters[0].settings
        component = NomadVaultSetup("nomad", settings)
        deliver_agent_config("nomad", settings, component, private_key)
        return component.outputs()

    namespaces: dict[str, vault.Namespace] = {}
    for path in dict.fromkeys(c.settings.namespace for c in stack.clusters if c.settings.namespace):
        protect = any(c.settings.protect for c in stack.clusters if c.settings.namespace == path)
        namespaces[path] = namespace_resource(f"namespace-{path}", path, protect)

    outputs: dict[str, dict[str, pulumi.Output[str]]] = {}
    for cluster in stack.clusters:
        name = f"nomad-{cluster.name}"
        component = NomadVaultSetup(
            name, cluster.settings, namespace=namespaces.get(cluster.settings.namespace)
        )
        deliver_agent_config(name, cluster.settings, component, private_key)
        for output_name, value in component.outputs().items():
            outputs.setdefault(output_name, {})[cluster.name] = value
    return outputs
