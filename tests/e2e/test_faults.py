"""Faults through the real engine on a three-node OpenBao Raft cluster (`devtools.raft`):
production's shape, where a standby forwards, a leader dies, two operators collide and Nomad's
JWKS goes away.

What is proven, each on a fresh stack of its own (own authPath, policyName and roleName) on one
cluster for the module:

1. A stack pointed at a STANDBY works end to end: up, a job's login and read, a clean
   refreshed preview, a destroy that leaves nothing.
2. The LEADER killed while `up` writes the JWT config (OpenBao is fetching the JWKS, held open
   by the issuer) fails the `up` with the dead address and "connection refused", and leaves
   the mount enabled but unconfigured. On `up --refresh` the provider
   reads a JWT mount without config as gone and drops it from the state; the program sees the
   stack's own mount without config, writes the config from the settings and has the engine
   import the mount: `up --refresh` converges, and the mount keeps its accessor.
3. Two `up`s of one stack at once: the second is refused by the backend's lock, the first
   finishes, the next `up` changes nothing.
4. The JWKS answering 503 fails the `up` with OpenBao's "error checking jwks URL", the mount
   enabled and recorded; once the JWKS is back, a plain `up` converges in place and the mount
   keeps its accessor (a refreshed preview in between shows the same trap as 2).
5. A `preview`, refreshed or not, on a deployed or a new stack, writes nothing to Vault but
   the provider's child token (`auth/token/create`) and capability queries
   (`sys/capabilities-self`): read from a file audit device.
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from pulumi import automation as auto

from devtools import openbao, raft
from devtools.promote import StepRecorder
from devtools.workload import Trial, ensure_kv_mount
from tests.e2e.harness import changes
from tests.e2e.raft_scenario import RaftScenario

KV_MOUNT = "secret"  # the program's default kvMount; a non-dev server has none until mounted
AUTH_BACKEND = "vault:jwt/authBackend:AuthBackend"
# Generous caps, never expectations: the machine may be busy with another test run.
COMMAND_TIMEOUT = 900.0
# What `preview` may write: the provider's child token, and capability queries.
PREVIEW_WRITES = frozenset({"auth/token/create", "sys/capabilities-self"})
WRITE_OPERATIONS = frozenset({"create", "update", "delete"})
LOCKED = (
    "error: the stack is currently locked by 1 lock(s). Either wait for the other process(es)"
    " to end or delete the lock file with `pulumi cancel`."
)


def names(tag: str) -> dict[str, str]:
    """A test's own objects on the shared cluster: every name carries `tag`."""
    return {"authPath": f"jwt-{tag}", "policyName": f"nomad-{tag}", "roleName": f"nomad-{tag}"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[raft.Cluster]:
    """One Raft cluster for the module, with the KV v2 mount the jobs read from."""
    directory = tmp_path_factory.mktemp("raft")
    started = None
    try:
        started = raft.start(directory)
        ensure_kv_mount(root_client(started), KV_MOUNT)
        yield started
    finally:
        # What the state folder records is the latest (a restart records the new PID).
        recorded = raft.Cluster.load(directory) or started
        if recorded:
            raft.stop_cluster(recorded)


@pytest.fixture
def on_node(cluster: raft.Cluster, tmp_path: Path) -> Iterator[Callable[[raft.Node], RaftScenario]]:
    """Start fresh stacks (each with its issuer) whose provider talks to a given node."""
    started: list[RaftScenario] = []

    def start(node: raft.Node) -> RaftScenario:
        scenario = RaftScenario(tmp_path / f"stack-{len(started)}", cluster, node)
        started.append(scenario)
        return scenario

    yield start
    for scenario in started:
        scenario.close()


def root_client(cluster: raft.Cluster) -> hvac.Client:
    """Root on the node that is active now."""
    return hvac.Client(url=raft.wait_for_leader(cluster).address, token=cluster.token)


def auth_mounts_named(root: hvac.Client, tag: str) -> dict[str, dict[str, Any]]:
    return {p: m for p, m in root.sys.list_auth_methods()["data"].items() if tag in p}


def policies_named(root: hvac.Client, tag: str) -> list[str]:
    return [name for name in root.sys.list_acl_policies()["data"]["keys"] if tag in name]


def roles(root: hvac.Client, auth_path: str) -> list[str]:
    listed = root.list(f"auth/{auth_path}/role")
    return listed["data"]["keys"] if listed else []


def jwt_config_status(cluster: raft.Cluster, auth_path: str) -> int:
    """The HTTP status of a read of the mount's JWT config (404: never configured)."""
    answer = requests.get(
        f"{raft.wait_for_leader(cluster).address}/v1/auth/{auth_path}/config",
        headers={"X-Vault-Token": cluster.token},
        timeout=30,
    )
    return answer.status_code


def recorded_ids(scenario: RaftScenario, resource_type: str) -> list[str]:
    """The ids the stack's state holds for resources of `resource_type`."""
    resources = scenario.stack.export_stack().deployment.get("resources") or []
    return [r.get("id", "") for r in resources if r["type"] == resource_type]


def job_reads_only_its_own_secret(scenario: RaftScenario, address: str, job: str) -> None:
    """`devtools.workload.Trial` through `address`: log in, read the own secret (written as
    root), be denied a neighbour's; its transcript is the failure message."""
    said: list[str] = []
    trial = Trial(
        address,
        scenario.cluster.token,
        scenario.issuer,
        scenario.outputs(),
        job,
        "default",
        say=said.append,
    )
    assert trial.run(), "\n".join(said)


def assert_converged(scenario: RaftScenario, tag: str) -> None:
    """No pending change, and the state and the server agree on exactly this test's objects."""
    settings = names(tag)
    assert changes(scenario.preview(refresh=True).change_summary) == {}
    root = root_client(scenario.cluster)
    mounts = auth_mounts_named(root, tag)
    assert list(mounts) == [f"{settings['authPath']}/"], mounts
    assert mounts[f"{settings['authPath']}/"]["type"] == "jwt"
    assert scenario.outputs()["auth_accessor"] == mounts[f"{settings['authPath']}/"]["accessor"]
    assert policies_named(root, tag) == [settings["policyName"]]
    assert roles(root, settings["authPath"]) == [settings["roleName"]]


def destroy_leaves_nothing(scenario: RaftScenario, tag: str) -> None:
    """`destroy`, then nothing named after the test is left on the cluster."""
    scenario.destroy()
    root = root_client(scenario.cluster)
    assert auth_mounts_named(root, tag) == {}
    assert policies_named(root, tag) == []


@contextmanager
def jwks_held(scenario: RaftScenario) -> Iterator[None]:
    """Within the block, OpenBao's fetches of the JWKS wait (the issuer answers at its end)."""
    scenario.issuer_server.hold()
    try:
        yield
    finally:
        scenario.issuer_server.release()


def in_background(action: Callable[[], Any]) -> Future:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(action)
    finally:
        pool.shutdown(wait=False)


def wait_for_jwks_fetch(scenario: RaftScenario, running: Future) -> None:
    """Until OpenBao asks for the JWKS: the mount is enabled and its config write in flight."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while not scenario.issuer_server.jwks_requested.wait(0.5):
        if running.done():
            pytest.fail(f"the up ended before the JWKS was fetched: {running.exception()}")
        if time.monotonic() > deadline:
            pytest.fail("OpenBao never fetched the JWKS")


def failure(running: Future) -> str:
    """The message of the command that must fail."""
    with pytest.raises(auto.CommandError) as failed:
        running.result(timeout=COMMAND_TIMEOUT)
    return str(failed.value)


def test_a_stack_on_a_standby_works_end_to_end(cluster, on_node) -> None:
    standby = raft.standbys(cluster)[0]
    assert raft.health(standby.address)["standby"] is True
    scenario = on_node(standby)
    assert scenario.stack.get_config("vault:address").value == standby.address
    scenario.configure(**names("standby"))

    assert changes(scenario.up().summary.resource_changes) == {"create": 5}
    leader = raft.wait_for_leader(cluster)
    job_reads_only_its_own_secret(scenario, leader.address, "web")
    job_reads_only_its_own_secret(scenario, standby.address, "api")
    assert_converged(scenario, "standby")
    destroy_leaves_nothing(scenario, "standby")


def test_the_leader_killed_during_up(cluster, on_node) -> None:
    tag, auth_path = "leader-kill", "jwt-leader-kill"
    active = raft.wait_for_leader(cluster)
    scenario = on_node(active)
    scenario.configure(**names(tag))

    with jwks_held(scenario):
        running = in_background(scenario.up)
        wait_for_jwks_fetch(scenario, running)
        raft.kill(active)
    message = failure(running)
    # Measured: `error updating configuration to Vault for path jwt-leader-kill: Put
    # "http://127.0.0.1:<port>/v1/auth/jwt-leader-kill/config": dial tcp 127.0.0.1:<port>:
    # connect: connection refused` (the provider's client retries on the dead address).
    assert f'Put "{active.address}/v1/auth/{auth_path}/config"' in message, message
    assert "connect: connection refused" in message, message

    # The mount was enabled before the leader died, never configured; the state records it.
    live = auth_mounts_named(root_client(cluster), tag)
    assert list(live) == [f"{auth_path}/"]
    assert jwt_config_status(cluster, auth_path) == 404
    assert recorded_ids(scenario, AUTH_BACKEND) == [auth_path]

    raft.restart(cluster, active)
    assert raft.wait_for_leader(cluster).name != active.name
    assert raft.health(active.address)["standby"] is True

    # Refreshing reads a JWT mount without config as deleted (the provider's read: no config,
    # so it clears the id) and the state forgets it; the program sees the stack's own mount
    # without config, writes the config from the settings, and the engine takes the mount
    # back by import: `up --refresh` converges, and the accessor the failed run made stays.
    accessor = live[f"{auth_path}/"]["accessor"]
    steps = StepRecorder()
    result = scenario.up(refresh=True, on_event=steps)
    assert {s.name: s.op for s in steps.steps if s.type == AUTH_BACKEND} == {
        "nomad-auth": "import"
    }, result.stdout
    assert "has no JWT config: an earlier `up` stopped before writing it" in " ".join(
        result.stdout.split()
    )
    assert scenario.outputs()["auth_accessor"] == accessor
    assert_converged(scenario, tag)
    job_reads_only_its_own_secret(scenario, active.address, "batch")
    destroy_leaves_nothing(scenario, tag)


def test_two_ups_at_once_the_second_is_locked_out(cluster, on_node) -> None:
    tag = "lock"
    scenario = on_node(raft.wait_for_leader(cluster))
    scenario.configure(**names(tag))
    second_operator = scenario.another_handle()

    with jwks_held(scenario):
        first = in_background(scenario.up)
        wait_for_jwks_fetch(scenario, first)
        with pytest.raises(auto.CommandError) as locked:
            second_operator.up(color="never")
        message = str(locked.value)
        # Measured: the DIY backend names its lock file and who holds it:
        #   error: the stack is currently locked by 1 lock(s). Either wait for the other
        #   process(es) to end or delete the lock file with `pulumi cancel`.
        #     file://<root>/state/.pulumi/locks/organization/nomad-vault-setup/e2e/<uuid>.json
        #     ?no_tmp_dir=true: created by <user>@<host> (pid <pid>) at <time>
        assert LOCKED in message, message
        assert (scenario.root / "state" / ".pulumi" / "locks").as_uri() in message
        assert "created by" in message
    assert changes(first.result(timeout=COMMAND_TIMEOUT).summary.resource_changes) == {"create": 5}

    assert changes(second_operator.up(color="never").summary.resource_changes) == {}
    assert_converged(scenario, tag)
    destroy_leaves_nothing(scenario, tag)


def test_an_unavailable_jwks_fails_up_then_converges_in_place(cluster, on_node) -> None:
    tag, auth_path = "jwks-down", "jwt-jwks-down"
    standby = raft.standbys(cluster)[0]
    scenario = on_node(standby)
    scenario.configure(**names(tag))

    scenario.issuer_server.unavailable = True
    message = failure(in_background(scenario.up))
    # Measured: `error updating configuration to Vault for path jwt-jwks-down: Error making
    # API request. URL: PUT http://127.0.0.1:<port>/v1/auth/jwt-jwks-down/config Code: 400.
    # Errors: * error checking jwks URL` (OpenBao says nothing of the 503 behind it).
    assert f"URL: PUT {standby.address}/v1/auth/{auth_path}/config" in message, message
    assert re.search(r"Code: 400\. Errors:\s+\* error checking jwks URL", message), message

    # The mount is enabled (unconfigured) and recorded; no outputs were written.
    mount = auth_mounts_named(root_client(cluster), tag)[f"{auth_path}/"]
    assert jwt_config_status(cluster, auth_path) == 404
    assert recorded_ids(scenario, AUTH_BACKEND) == [auth_path]
    assert scenario.outputs() == {}

    # A refreshed preview would lose it, as in the leader's test (preview keeps no state).
    refreshed = StepRecorder()
    scenario.preview(refresh=True, on_event=refreshed)
    assert {s.name: s.op for s in refreshed.steps if s.type == AUTH_BACKEND} == {
        "nomad-auth": "create"
    }

    scenario.issuer_server.unavailable = False
    # A plain `up` writes the missing config onto the recorded mount: updated in place, and
    # the accessor the failed run made stays (the policy is templated on it).
    assert changes(scenario.up().summary.resource_changes) == {"create": 2, "update": 1}
    assert scenario.outputs()["auth_accessor"] == mount["accessor"]
    assert_converged(scenario, tag)
    job_reads_only_its_own_secret(scenario, standby.address, "cron")
    destroy_leaves_nothing(scenario, tag)


def audited_writes(log: Path, start: int) -> list[tuple[str, str]]:
    """(operation, path) of each write request in the audit log after byte `start`."""
    with log.open() as lines:
        lines.seek(start)
        entries = [json.loads(line) for line in lines if line.strip()]
    requests_made = [e["request"] for e in entries if e.get("type") == "request"]
    return [
        (r["operation"], r["path"]) for r in requests_made if r["operation"] in WRITE_OPERATIONS
    ]


def test_a_preview_never_writes_to_vault(cluster, on_node, tmp_path: Path) -> None:
    deployed = on_node(raft.standbys(cluster)[0])
    deployed.configure(**names("preview-up"))
    deployed.up()
    new = on_node(raft.wait_for_leader(cluster))
    new.configure(**names("preview-new"))

    log = tmp_path / "audit.log"
    openbao.enable_file_audit(raft.wait_for_leader(cluster).address, cluster.token, log, "faults")
    try:
        start = log.stat().st_size  # after the device's own test entry
        for scenario in (deployed, new):
            scenario.preview()
            scenario.preview(refresh=True)
        writes = audited_writes(log, start)
    finally:
        root_client(cluster).sys.disable_audit_device("faults")

    assert ("update", "auth/token/create") in writes, "the audit log saw the previews"
    others = sorted({write for write in writes if write[1] not in PREVIEW_WRITES})
    assert others == [], f"a preview wrote to Vault: {others}"
    assert auth_mounts_named(root_client(cluster), "preview-new") == {}
    destroy_leaves_nothing(deployed, "preview-up")
