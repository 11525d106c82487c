"""`make up` / `try` / `down` as a user runs them, on a copy of the project (so its .dev/ and
.state/ are the copy's): idempotent, converging after the dev server died, clean on `down`.

What the verbs did is read from where it shows: the dev stack's recorded updates, its outputs,
the dev server, the recorded PIDs; never from the CLI's wording."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from pulumi import automation as auto

from devtools import dev_stack, openbao, workspace
from devtools.proc import pid_alive, stop
from devtools.project_copy import PROJECT_DIR, copy_project
from devtools.promote import pending_changes
from devtools.workload import read_secret, secret_for
from tests.devtool_cli import run_devtool


def dev(project: Path, *verb: str) -> str:
    """`make <verb>` (the Makefile runs exactly `python -m devtools.dev_stack <verb>`); its
    stdout, once it exited 0."""
    run = run_devtool("dev_stack", *verb, cwd=project, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def last_update(project: Path) -> auto.UpdateSummary:
    """The dev stack's latest update, as its local backend recorded it."""
    layout = dev_stack.Layout(project)
    stack = workspace.open_stack(dev_stack.STACK, project, dev_stack.dev_env(layout, None))
    (update,) = stack.history(page_size=1)
    return update


def changed(project: Path) -> dict[str, int]:
    """What the latest update changed, by operation (unchanged resources left out)."""
    return pending_changes(last_update(project).resource_changes or {})


def recorded(project: Path, name: str) -> dict:
    return json.loads((project / ".dev" / name).read_text())


def server(project: Path) -> hvac.Client:
    state = recorded(project, openbao.STATE_FILE)
    return hvac.Client(url=state["address"], token=state["token"])


def outputs(project: Path) -> dict:
    return json.loads(dev(project, "outputs"))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    copy = copy_project(tmp_path_factory.mktemp("dev-stack") / "project")
    shutil.copy2(PROJECT_DIR / "Pulumi.dev.yaml", copy / "Pulumi.dev.yaml")
    shutil.copytree(
        PROJECT_DIR / "devtools", copy / "devtools", ignore=shutil.ignore_patterns("__pycache__")
    )
    yield copy
    run_devtool("dev_stack", "down", cwd=copy, timeout=300)
    for state in ("openbao.json", "issuer.json"):  # whatever `down` could not stop
        if (copy / ".dev" / state).exists():
            stop(recorded(copy, state)["pid"])


def test_up_twice_then_try(project: Path) -> None:
    first = dev(project, "up")
    created = changed(project)
    assert set(created) == {"create"}, created
    deployed = outputs(project)
    mount = server(project).sys.list_auth_methods()["data"][f"{deployed['auth_path']}/"]
    assert mount["accessor"] == deployed["auth_accessor"]
    assert deployed["nomad_client_config"].strip() in first, "up prints the Nomad config"

    dev(project, "up")
    assert last_update(project).result == "succeeded"
    assert changed(project) == {}, "a second up changes nothing"
    assert outputs(project)["auth_accessor"] == deployed["auth_accessor"]

    dev(project, "try", "--job", "web", "--namespace", "default")
    kv = server(project)
    assert read_secret(kv, deployed["kv_mount"], "default/web") == secret_for("default/web")


def test_try_fails_when_the_job_cannot_log_in_and_up_repairs_it(project: Path) -> None:
    """With the role deleted behind the stack's back, `try` exits 1; the next `up` notices
    (it refreshes) and re-creates the role alone."""
    deployed = outputs(project)
    server(project).delete(f"auth/{deployed['auth_path']}/role/{deployed['role_name']}")
    run = run_devtool("dev_stack", "try", cwd=project, timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    dev(project, "up")
    assert changed(project) == {"create": 1}
    dev(project, "try")


def test_up_after_the_dev_server_died_converges(project: Path) -> None:
    before = recorded(project, openbao.STATE_FILE)
    stop(before["pid"])
    dev(project, "up")
    after = recorded(project, openbao.STATE_FILE)
    assert after["pid"] != before["pid"] and after["address"] == before["address"]
    assert "create" in changed(project), "the refresh must notice the empty server"
    deployed = outputs(project)
    assert f"{deployed['auth_path']}/" in server(project).sys.list_auth_methods()["data"]
    dev(project, "up")
    assert changed(project) == {}
    dev(project, "try")


def test_down_destroys_and_stops_the_servers(project: Path) -> None:
    pids = [recorded(project, name)["pid"] for name in ("openbao.json", "issuer.json")]
    auth_path = outputs(project)["auth_path"]
    assert f"{auth_path}/" in server(project).sys.list_auth_methods()["data"]
    dev(project, "down")
    update = last_update(project)
    assert (update.kind, update.result) == ("destroy", "succeeded")
    assert set(changed(project)) == {"delete"}
    assert outputs(project) == {}
    assert not any(pid_alive(pid) for pid in pids)
    assert not (project / ".dev" / openbao.STATE_FILE).exists()
