"""The three-node Raft cluster of devtools/raft.py behaves as production does: one active
node, standbys that forward writes, a new leader when the active node dies, a node that comes
back sealed and rejoins once unsealed, a whole cluster restarted from its own data, every
process stopped by its PID. One cluster for all of it: each start takes seconds."""

from pathlib import Path

import requests

from devtools import raft
from devtools.proc import pid_alive


def _put_policy(address: str, token: str, name: str) -> int:
    body = {"policy": 'path "a" { capabilities = ["read"] }'}
    response = requests.put(
        f"{address}/v1/sys/policies/acl/{name}",
        headers={"X-Vault-Token": token},
        json=body,
        timeout=10,
    )
    return response.status_code


def _policy_status(address: str, token: str, name: str) -> int:
    response = requests.get(
        f"{address}/v1/sys/policies/acl/{name}", headers={"X-Vault-Token": token}, timeout=10
    )
    return response.status_code


def test_a_cluster_fails_over_rejoins_and_restarts_from_its_data(tmp_path: Path) -> None:
    directory = tmp_path / "raft"
    cluster, started = raft.ensure(directory)
    try:
        assert started
        assert sorted(raft.voters(cluster)) == ["node1", "node2", "node3"]
        first = raft.wait_for_leader(cluster)
        standby = raft.standbys(cluster)[0]
        assert _put_policy(standby.address, cluster.token, "kept") == 204, "forwarded"

        raft.kill(first)
        second = raft.wait_for_leader(cluster)
        assert second.name != first.name
        assert _policy_status(second.address, cluster.token, "kept") == 200

        raft.restart(cluster, first)
        assert raft.health(first.address)["standby"] is True
        raft.seal(cluster, first)
        assert raft.health(first.address)["sealed"] is True

        raft.stop_cluster(cluster)
        assert not any(pid_alive(node.pid) for node in cluster.nodes)
        again, started = raft.ensure(directory)
        assert not started, "the recorded cluster comes back, unsealed, with its data"
        leader = raft.wait_for_leader(again)
        assert _policy_status(leader.address, again.token, "kept") == 200
    finally:
        raft.stop_cluster(raft.Cluster.load(directory))
    assert not any(pid_alive(node.pid) for node in raft.Cluster.load(directory).nodes)
    assert raft.Cluster.load(directory).unseal_key, "the key is kept in the state dir"
