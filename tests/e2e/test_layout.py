"""One layout for one cluster or many, through the real engine on OpenBao.

- A stack made by the previous release (its program checked out from git into the scenario)
  upgrades with zero changes, single-cluster and `clusters` forms, delivery included.
- A single-cluster stack grows to 2 and 3 clusters and shrinks back to 1: every step changes
  only the added or removed cluster's objects, the first cluster's accessor never changes, and
  a job token issued before the growth reads its secret after every step.
"""

import shutil
import subprocess
from pathlib import Path

import hvac
import pytest
from pulumi import automation as auto

from devtools.project_copy import PROGRAM_FILES
from nomad_vault_setup.resource_types import AGENT_CONFIG_COMPONENT
from tests.e2e.harness import PROJECT_DIR, Scenario, changes

# The last commit of the previous layout (namespace inside the single-cluster component,
# delivered files as children of the cluster component).
PREVIOUS_RELEASE = "73c4dce90564c6368b8d9e0421de865f8fb5261d"
# Its program files: the package was named `components` then.
PREVIOUS_RELEASE_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components")
ROLE = {"name": "ops", "boundClaims": {"nomad_namespace": "ops"}, "policy": 'path "x/*" {}'}


def use_program(scenario: Scenario, commit: str | None) -> None:
    """Put the program of `commit` (None: the working tree's) into the scenario's project."""
    for name in dict.fromkeys((*PROGRAM_FILES, *PREVIOUS_RELEASE_FILES)):
        target = scenario.work_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    if commit is None:
        for name in PROGRAM_FILES:
            source = PROJECT_DIR / name
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, scenario.work_dir / name)
        return
    archive = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "archive", commit, *PREVIOUS_RELEASE_FILES],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(scenario.work_dir)], input=archive.stdout, check=True)


@pytest.mark.parametrize(
    "settings",
    [
        {"namespace": "nomad", "manageKvMount": True, "roles": [ROLE]},
        {
            "clusters": [
                {"name": "east", "kvMount": "kv-east", "manageKvMount": True},
                {"name": "west", "namespace": "west", "roles": [ROLE]},
            ]
        },
    ],
    ids=["single", "clusters"],
)
def test_a_stack_of_the_previous_release_upgrades_with_no_change(
    new_scenario, tmp_path: Path, settings: dict
) -> None:
    scenario: Scenario = new_scenario()
    use_program(scenario, PREVIOUS_RELEASE)
    scenario.configure(nomadConfigDir=str(tmp_path / "nomad.d"), **settings)
    created = changes(scenario.up().summary.resource_changes)
    accessors = scenario.outputs()["auth_accessor"]
    use_program(scenario, None)
    steps: list[tuple[str, str]] = []
    preview = scenario.preview(on_event=lambda event: record_step(event, steps))
    # The only new thing is the AgentConfig component grouping the delivered files (a record
    # in the state: nothing in Vault or on disk changes); the files themselves are aliased.
    clusters = len(settings.get("clusters", [None]))
    new = [(op, typ) for op, typ in steps if op not in ("same", "read")]
    assert new == [("create", AGENT_CONFIG_COMPONENT)] * clusters, f"after creating {created}"
    assert changes(preview.change_summary) == {"create": clusters}
    assert changes(scenario.up().summary.resource_changes) == {"create": clusters}
    assert changes(scenario.preview().change_summary) == {}
    assert scenario.outputs()["auth_accessor"] == accessors
    deleted = changes(scenario.destroy().summary.resource_changes)
    assert deleted == {"delete": created["create"] + clusters}


def record_step(event: auto.EngineEvent, steps: list[tuple[str, str]]) -> None:
    """(op, type) of each planned step of a preview."""
    pre = event.resource_pre_event
    if pre is not None:
        op = pre.metadata.op
        steps.append((str(getattr(op, "value", op)), pre.metadata.type))


def mounts(scenario: Scenario) -> dict[str, str]:
    listed = scenario.vault.sys.list_auth_methods()["data"]
    return {path: mount["accessor"] for path, mount in listed.items() if mount["type"] == "jwt"}


def test_growing_and_shrinking_touches_only_the_clusters_that_change(new_scenario) -> None:
    scenario: Scenario = new_scenario()
    scenario.configure()
    assert changes(scenario.up().summary.resource_changes) == {"create": 5}
    accessor = mounts(scenario)["jwt-nomad/"]
    scenario.vault.write_data("secret/data/default/web", data={"data": {"password": "web"}})
    job = hvac.Client(url=scenario.server.address)
    jwt = scenario.issuer.mint("web")
    job.auth.jwt.jwt_login(role="nomad-workloads", jwt=jwt, path="jwt-nomad")

    def reads_its_secret() -> bool:
        return job.read("secret/data/default/web")["data"]["data"] == {"password": "web"}

    assert reads_its_secret()
    first = {"name": "a", "authPath": "jwt-nomad", "policyName": "nomad-workloads"}
    extra = [{"name": name, "jwksUrl": scenario.add_issuer()[1]} for name in ("b", "c")]
    # (settings, what the step's preview must show: one cluster = component, auth, policy, role)
    steps = [
        ([first, extra[0]], {"create": 4}),
        ([first, *extra], {"create": 4}),
        ([first], {"delete": 8}),
    ]
    for clusters, expected in steps:
        scenario.configure(clusters=clusters)
        assert changes(scenario.preview().change_summary) == expected, clusters
        assert changes(scenario.up().summary.resource_changes) == expected, clusters
        assert mounts(scenario)["jwt-nomad/"] == accessor, "the first cluster's mount stays"
        assert scenario.outputs()["auth_accessor"]["a"] == accessor
        assert reads_its_secret(), "a token issued before the growth still reads its secret"
    assert set(mounts(scenario)) == {"jwt-nomad/"}


def test_moving_to_the_clusters_form_is_a_config_edit_with_no_change(
    new_scenario, tmp_path: Path
) -> None:
    """The single-cluster settings, written as the first entry of `clusters` with the paths
    they had, are the same objects: namespace, mount, policies, roles, delivered files."""
    scenario: Scenario = new_scenario()
    config_dir = str(tmp_path / "nomad.d")
    single = {"namespace": "nomad", "manageKvMount": True, "roles": [ROLE]}
    scenario.configure(nomadConfigDir=config_dir, **single)
    assert changes(scenario.up().summary.resource_changes) == {"create": 12}
    files = {path.name: path.read_text() for path in Path(config_dir).iterdir()}
    first = single | {
        "name": "main",
        "authPath": "jwt-nomad",
        "policyName": "nomad-workloads",
        "nomadConfigDir": config_dir,
    }
    scenario.configure(clusters=[first])
    assert changes(scenario.preview().change_summary) == {}
    assert changes(scenario.up().summary.resource_changes) == {}
    assert {path.name: path.read_text() for path in Path(config_dir).iterdir()} == files
    assert changes(scenario.destroy().summary.resource_changes) == {"delete": 12}


def test_a_move_cut_short_by_a_failure_completes_without_losing_an_object(new_scenario) -> None:
    """The new cluster's mount fails half-way through the move; once it is fixed, the next
    `up` finishes the move and the first cluster's role and policy are still there."""
    scenario: Scenario = new_scenario()
    scenario.stack.workspace.env_vars["PULUMI_SKIP_CHECKPOINTS"] = "false"  # as real stacks run
    scenario.configure()
    scenario.up()
    accessor = mounts(scenario)["jwt-nomad/"]
    heir = {"name": "a", "authPath": "jwt-nomad", "policyName": "nomad-workloads"}
    unreachable = {"name": "b", "jwksUrl": "http://127.0.0.1:9/.well-known/jwks.json"}
    scenario.configure(clusters=[unreachable, heir])
    with pytest.raises(auto.CommandError, match="jwks"):
        scenario.up()
    scenario.configure(clusters=[{"name": "b", "jwksUrl": scenario.add_issuer()[1]}, heir])
    finished = changes(scenario.up().summary.resource_changes)
    assert "delete" not in finished and "replace" not in finished, finished
    assert scenario.vault.list("auth/jwt-nomad/role")["data"]["keys"] == ["nomad-workloads"]
    assert "nomad-workloads" in scenario.vault.sys.list_acl_policies()["data"]["keys"]
    assert mounts(scenario)["jwt-nomad/"] == accessor
    assert changes(scenario.preview(refresh=True).change_summary) == {}
