"""The three-node Raft cluster of devtools/raft.py behaves as production does: one active
node, standbys that forward writes, a new leader when the active node dies, a node that comes
back sealed and rejoins once unsealed, every process stopped by its PID."""

from pathlib import Path

import requests

from devtools import raft
from devtools.proc import pid_alive


def test_a_cluster_fails_over_and_a_node_rejoins(tmp_path: Path) -> None:
    cluster = raft.start(tmp_path / "raft")
    try:
        assert sorted(raft.voters(cluster)) == ["node1", "node2", "node3"]
        first = raft.wait_for_leader(cluster)
        standby = raft.standbys(cluster)[0]
        written = requests.put(
            f"{standby.address}/v1/sys/policies/acl/through-standby",
            headers={"X-Vault-Token": cluster.token},
            json={"policy": 'path "a" { capabilities = ["read"] }'},
            timeout=10,
        )
        assert written.status_code == 204, "a standby forwards a write to the active node"

        raft.kill(first)
        second = raft.wait_for_leader(cluster)
        assert second.name != first.name
        answer = requests.get(
            f"{second.address}/v1/sys/policies/acl/through-standby",
            headers={"X-Vault-Token": cluster.token},
            timeout=10,
        )
        assert answer.status_code == 200, "what was written survives the failover"

        raft.restart(cluster, first)
        assert raft.health(first.address)["standby"] is True
        raft.seal(cluster, first)
        assert raft.health(first.address)["sealed"] is True
    finally:
        raft.stop_cluster(cluster)
    assert not any(pid_alive(node.pid) for node in cluster.nodes)
    assert raft.Cluster.load(tmp_path / "raft").unseal_key, "the key is kept in the state dir"


def test_ensure_restarts_stopped_nodes_from_their_data(tmp_path: Path) -> None:
    cluster, started = raft.ensure(tmp_path / "raft")
    try:
        assert started
        leader = raft.wait_for_leader(cluster)
        policy = f"{leader.address}/v1/sys/policies/acl/kept"
        headers = {"X-Vault-Token": cluster.token}
        body = {"policy": 'path "a" { capabilities = ["read"] }'}
        assert requests.put(policy, headers=headers, json=body, timeout=10).status_code == 204
        raft.stop_cluster(cluster)

        again, started = raft.ensure(tmp_path / "raft")
        assert not started, "the recorded cluster comes back, unsealed, with its data"
        leader = raft.wait_for_leader(again)
        kept = requests.get(
            f"{leader.address}/v1/sys/policies/acl/kept", headers=headers, timeout=10
        )
        assert kept.status_code == 200
    finally:
        raft.stop_cluster(raft.Cluster.load(tmp_path / "raft"))
