"""A whole stack: one component per Nomad cluster, and the stack outputs.

A stack without `clusters` is one component named `nomad` whose outputs are plain values, as
it always was. With `clusters`, each cluster is a component `nomad-<name>`, every output is a
map keyed by cluster name, and each namespace is created once, outside the components, under a
name of its own: adding or removing a cluster then never moves (so never replaces) a namespace
that other clusters live in.
"""

from typing import Any

import pulumi
import pulumi_vault as vault

from .settings import StackSettings
from .vault_setup import NomadVaultSetup, namespace_resource


def deploy(stack: StackSettings) -> dict[str, Any]:
    """Register every cluster's resources; return the stack outputs by name."""
    if not stack.multi_cluster:
        return NomadVaultSetup("nomad", stack.clusters[0].settings).outputs()

    namespaces: dict[str, vault.Namespace] = {}
    for path in dict.fromkeys(c.settings.namespace for c in stack.clusters if c.settings.namespace):
        protect = any(c.settings.protect for c in stack.clusters if c.settings.namespace == path)
        namespaces[path] = namespace_resource(f"namespace-{path}", path, protect)

    outputs: dict[str, dict[str, pulumi.Output[str]]] = {}
    for cluster in stack.clusters:
        component = NomadVaultSetup(
            f"nomad-{cluster.name}",
            cluster.settings,
            namespace=namespaces.get(cluster.settings.namespace),
        )
        for output_name, value in component.outputs().items():
            outputs.setdefault(output_name, {})[cluster.name] = value
    return outputs
