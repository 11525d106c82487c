"""A three-node OpenBao cluster with integrated (Raft) storage on loopback: production's shape.

The dev server never fails over, never seals and forgets everything when it stops. This
cluster does what a production cluster does: one active node, standbys that forward requests
to it, a new leader elected when the active node dies, nodes that come back sealed. The first
node is initialised with one unseal key (kept with the root token in the cluster's git-ignored
state folder), the others join it over Raft; each node is a process recorded by PID and
stopped only by that PID.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from devtools.openbao import _clean_env, _log_tail, bao_binary
from devtools.proc import free_port, read_state, runs, spawn, stop, write_state

STATE_FILE = "raft.json"
NODES = 3
TIMEOUT = 10
ELECTION_TIMEOUT = 30.0
# What marks a node's process as ours (`runs` checks the command line before a stop).
NODE_MARKER = "raft-node"


@dataclass
class Node:
    """One node: where it listens, its data and log, its process."""

    name: str
    api_port: int
    cluster_port: int
    directory: str
    pid: int = 0

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return Path(self.directory) / "node.log"

    def config(self, join: list[str]) -> str:
        """The node's server config: Raft storage in its directory, loopback only."""
        retry = "".join(f'\n  retry_join {{ leader_api_addr = "{a}" }}' for a in join)
        return f"""storage "raft" {{
  path    = "{self.directory}/data"
  node_id = "{self.name}"
  # Production's timing divided by 5: a leader is missed after ~3 s, not ~15 s.
  performance_multiplier = 1{retry}
}}
listener "tcp" {{
  address         = "127.0.0.1:{self.api_port}"
  cluster_address = "127.0.0.1:{self.cluster_port}"
  tls_disable     = true
}}
api_addr      = "{self.address}"
cluster_addr  = "https://127.0.0.1:{self.cluster_port}"
unsafe_allow_api_audit_creation = true
"""


@dataclass
class Cluster:
    """The three nodes, the unseal key and the root token: recorded in `raft.json`."""

    directory: str
    nodes: list[Node] = field(default_factory=list)
    unseal_key: str = ""
    root_token: str = ""

    @property
    def token(self) -> str:
        return self.root_token

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def save(self) -> None:
        write_state(Path(self.directory) / STATE_FILE, asdict(self))

    @classmethod
    def load(cls, directory: Path) -> Cluster | None:
        recorded = read_state(Path(directory) / STATE_FILE)
        if not recorded:
            return None
        nodes = [Node(**node) for node in recorded.pop("nodes")]
        return cls(nodes=nodes, **recorded)


def health(address: str) -> dict[str, Any] | None:
    """The node's `sys/health` (whatever its state), or None when it does not answer."""
    try:
        response = requests.get(
            f"{address}/v1/sys/health",
            params={"standbyok": "true", "sealedcode": "200", "uninitcode": "200"},
            timeout=2,
        )
        return response.json()
    except (requests.RequestException, ValueError):
        return None


def _call(
    address: str,
    method: str,
    path: str,
    token: str = "",
    body: Any = None,
    timeout: float = TIMEOUT,
) -> Any:
    headers = {"X-Vault-Token": token} if token else {}
    response = requests.request(
        method, f"{address}/v1/{path}", json=body, headers=headers, timeout=timeout
    )
    if not response.ok:
        raise RuntimeError(
            f"{method} {path} at {address}: HTTP {response.status_code} {response.text}"
        )
    return response.json() if response.content else {}


def _wait(
    what: str, check: Any, timeout: float = ELECTION_TIMEOUT, node: Node | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    tail = f":\n{_log_tail(node.log_path)}" if node else ""
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}{tail}")


def start_node(node: Node, join: list[str]) -> None:
    """Launch one node's process (sealed until `unseal`)."""
    directory = Path(node.directory)
    (directory / "data").mkdir(parents=True, exist_ok=True)
    config = directory / f"{NODE_MARKER}.hcl"
    config.write_text(node.config(join))
    process = spawn(
        [bao_binary(), "server", f"-config={config}"],
        node.log_path,
        env=_clean_env(directory),
        cwd=directory,
    )
    node.pid = process.pid
    _wait(f"{node.name} to answer", lambda: health(node.address), node=node)


def unseal(cluster: Cluster, node: Node) -> None:
    """Give the node the unseal key. A joining node answers "not initialized" until its
    retry_join has reached the leader (a moment, longer on a loaded machine): asked again."""

    def unsealed_or_joining() -> bool:
        try:
            _call(node.address, "PUT", "sys/unseal", body={"key": cluster.unseal_key})
        except RuntimeError as refused:
            if "not initialized" in str(refused):
                return False
            raise
        return True

    _wait(f"{node.name} to take the unseal key", unsealed_or_joining, node=node)
    _wait(
        f"{node.name} to unseal",
        lambda: not (health(node.address) or {}).get("sealed", True),
        node=node,
    )


def seal(cluster: Cluster, node: Node) -> None:
    """Seal one node (as an operator, or a lost HSM, would): it answers, but serves nothing."""
    _call(node.address, "PUT", "sys/seal", token=cluster.token)


def leader(cluster: Cluster) -> Node | None:
    """The active node, as the running nodes see it (None during an election)."""
    for node in cluster.nodes:
        state = health(node.address) or {}
        if state.get("initialized") and not state.get("sealed") and not state.get("standby"):
            return node
    return None


def standbys(cluster: Cluster) -> list[Node]:
    """The standbys that serve a request now: unsealed, and forwarding to the active node
    (a node just restarted or unsealed answers 429 until it knows the new active node, a
    moment that grows on a loaded machine), waited for up to an election's time. The
    active node is asked again each time: an election may move it while we wait."""

    def serving() -> list[Node]:
        active = leader(cluster)
        if active is None:
            return []
        return [
            node
            for node in cluster.nodes
            if node.name != active.name and _forwards(node, cluster.token)
        ]

    return _wait("a standby that forwards requests", serving)


def _forwards(node: Node, token: str) -> bool:
    """Whether the node answers an authenticated read (a standby forwards it), asked with a
    short timeout so that waiting on a node that hangs stays within the election's time."""
    try:
        _call(node.address, "GET", "sys/mounts", token, timeout=2)
    except (RuntimeError, requests.RequestException):
        return False
    return True


def wait_for_leader(cluster: Cluster, timeout: float = ELECTION_TIMEOUT) -> Node:
    return _wait("an active node", lambda: leader(cluster), timeout)


def voters(cluster: Cluster) -> list[str]:
    """The Raft peers with a vote, as the active node knows them (a joined node votes once
    autopilot has seen it stable)."""
    active = wait_for_leader(cluster)
    answer = _call(active.address, "GET", "sys/storage/raft/configuration", cluster.token)
    return [s["node_id"] for s in answer["data"]["config"]["servers"] if s.get("voter")]


def kill(node: Node) -> None:
    """Stop one node's process by its PID (as a crash would, but cleanly)."""
    stop(node.pid)


def restart(cluster: Cluster, node: Node) -> None:
    """Bring a stopped node back and unseal it: it rejoins from its own Raft data."""
    start_node(node, [])
    unseal(cluster, node)
    cluster.save()


def start(directory: Path, nodes: int = NODES) -> Cluster:
    """Three fresh nodes: the first initialised and unsealed, the others joined and unsealed."""
    directory = Path(directory).resolve()
    cluster = Cluster(str(directory))
    for index in range(1, nodes + 1):
        name = f"node{index}"
        node = Node(name, free_port(), free_port(), str(directory / name))
        cluster.nodes.append(node)
    first, *others = cluster.nodes
    start_node(first, [])
    cluster.save()  # from here on, every started process is recorded
    answer = _call(
        first.address, "PUT", "sys/init", body={"secret_shares": 1, "secret_threshold": 1}
    )
    cluster.unseal_key, cluster.root_token = answer["keys"][0], answer["root_token"]
    cluster.save()
    unseal(cluster, first)
    wait_for_leader(cluster)
    # Autopilot lets a joined node vote once it has been healthy this long (default 10 s).
    autopilot = {"server_stabilization_time": "1s", "cleanup_dead_servers": False}
    _call(
        first.address, "POST", "sys/storage/raft/autopilot/configuration", cluster.token, autopilot
    )
    for node in others:
        start_node(node, [first.address])
        cluster.save()
        unseal(cluster, node)
    _wait(f"{nodes} Raft voters", lambda: len(voters(cluster)) == nodes)
    return cluster


def _alive(node: Node) -> bool:
    return bool(node.pid) and runs(node.pid, NODE_MARKER) and health(node.address) is not None


def ensure(directory: Path) -> tuple[Cluster, bool]:
    """The cluster recorded in `directory`, its stopped nodes restarted from their own Raft
    data and unsealed (so it keeps what it held, as production would); else a new one. True
    when it was started new (then it holds nothing)."""
    recorded = Cluster.load(directory)
    if not recorded or not recorded.unseal_key:
        if recorded:
            stop_cluster(recorded)
        return start(directory), True
    for node in recorded.nodes:
        if not _alive(node):
            start_node(node, [])
        if (health(node.address) or {}).get("sealed"):
            unseal(recorded, node)
    recorded.save()
    wait_for_leader(recorded)
    return recorded, False


def stop_cluster(cluster: Cluster) -> None:
    """Stop every node that is still ours (by recorded PID)."""
    for node in cluster.nodes:
        if node.pid and runs(node.pid, NODE_MARKER):
            stop(node.pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.raft", description=__doc__)
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    recorded = Cluster.load(args.state_dir)
    if args.command == "stop":
        if recorded:
            stop_cluster(recorded)
        return 0
    if args.command == "start":
        cluster = start(args.state_dir)
        print(json.dumps({node.name: node.address for node in cluster.nodes}, indent=2))
        return 0
    if not recorded:
        print("{}")
        return 1
    print(json.dumps({n.name: health(n.address) for n in recorded.nodes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
