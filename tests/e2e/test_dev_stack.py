"""`make up` / `try` / `down` as a user runs them, on a copy of the project (so its .dev/ and
.state/ are the copy's): idempotent, converging after the dev server died, clean on `down`."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from devtools import openbao
from devtools.proc import pid_alive, stop
from devtools.project_copy import PROJECT_DIR, copy_project
from tests.devtool_cli import run_devtool

DEV_FILES = ("Pulumi.dev.yaml", "devtools")


def dev_stack(project: Path, *verb: str) -> subprocess.CompletedProcess[str]:
    """`make <verb>`: the Makefile runs exactly `python -m devtools.dev_stack <verb>`."""
    return run_devtool("dev_stack", *verb, cwd=project, timeout=300)


def succeeded(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    copy = copy_project(tmp_path_factory.mktemp("dev-stack") / "project")
    shutil.copy2(PROJECT_DIR / "Pulumi.dev.yaml", copy / "Pulumi.dev.yaml")
    shutil.copytree(
        PROJECT_DIR / "devtools", copy / "devtools", ignore=shutil.ignore_patterns("__pycache__")
    )
    yield copy
    dev_stack(copy, "down")
    for state in ("openbao.json", "issuer.json"):  # whatever `down` could not stop
        recorded = copy / ".dev" / state
        if recorded.exists():
            stop(json.loads(recorded.read_text())["pid"])


def test_up_twice_then_try(project: Path) -> None:
    first = succeeded(dev_stack(project, "up"))
    assert "+ 5 created" in first
    assert "# Nomad client config" in first and "jwt_auth_backend_path" in first
    assert "5 unchanged" in succeeded(dev_stack(project, "up"))
    assert "PASSED: job 'web' reads its own secret" in succeeded(
        dev_stack(project, "try", "--job", "web", "--namespace", "default")
    )


def test_up_after_the_dev_server_died_converges(project: Path) -> None:
    recorded = json.loads((project / ".dev" / openbao.STATE_FILE).read_text())
    stop(recorded["pid"])
    output = succeeded(dev_stack(project, "up"))
    assert "started" in output
    assert "5 unchanged" not in output, "the refresh must notice the empty server"
    assert "5 unchanged" in succeeded(dev_stack(project, "up"))
    assert "PASSED" in succeeded(dev_stack(project, "try"))


def test_down_destroys_and_stops_the_servers(project: Path) -> None:
    pids = [
        json.loads((project / ".dev" / name).read_text())["pid"]
        for name in ("openbao.json", "issuer.json")
    ]
    output = succeeded(dev_stack(project, "down"))
    assert "5 deleted" in output
    assert not any(pid_alive(pid) for pid in pids)
