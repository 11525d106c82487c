"""A scenario on one node of a shared three-node Raft cluster (`devtools.raft`) instead of a dev
server of its own: the stack carries that node's address (`vault:address`) and the cluster's
root token (secret `vault:token`), exactly as `workspace.throwaway_stack` writes them.

Everything else is `harness.Scenario`'s (configure, up, preview, destroy, outputs, client):
only the server differs, so the cluster is the caller's to start and stop, and `close()` stops
just this scenario's issuer.
"""

from dataclasses import dataclass
from pathlib import Path

from pulumi import automation as auto

from devtools import raft, workspace
from tests.e2e.harness import Scenario


@dataclass(frozen=True)
class NodeAccess:
    """What a stack needs of its Vault (`workspace.VaultServer`): one node's address, the
    cluster's token."""

    address: str
    token: str


class RaftScenario(Scenario):
    """A fresh issuer and stack whose provider talks to `node` of `cluster`."""

    def __init__(self, root: Path, cluster: raft.Cluster, node: raft.Node) -> None:
        super().__init__(root, server=NodeAccess(node.address, cluster.token))
        self.cluster, self.node = cluster, node

    def another_handle(self) -> auto.Stack:
        """The same stack (same project copy, backend and passphrase) through a second
        Automation API workspace: its commands are other `pulumi` processes, as a second
        operator's would be."""
        return workspace.open_stack(self.stack.name, self.work_dir, self.env)
