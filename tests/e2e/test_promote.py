"""`make promote` through the real engine: two OpenBao servers with different root tokens
stand for dev and staging, in one git repository holding the project.

The tests run in file order on one set-up: every refusal first, then a clean promotion, then a
change slipped in between the checked preview and the `up` (which the update plan refuses),
then a promotion that would replace staging's namespace, the protection of staging, and last
what each server's raw audit log says about the tokens it was sent.
"""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from pulumi import automation as auto

from devtools import workspace
from devtools.proc import stop
from devtools.promote import Promotion, PromotionRefused
from nomad_vault_setup.resource_types import AUTH_BACKEND
from tests.e2e.harness import PASSPHRASE, PROJECT_DIR, Scenario, changes, start_openbao

DEV_TOKEN, STAGING_TOKEN = "dev-root-5d1e8a", "staging-root-b73f20"
GIT = ["git", "-c", "user.name=e2e", "-c", "user.email=e2e@example.invalid"]


class Estate:
    """The project copy as a git repository with a dev and a staging stack."""

    def __init__(self, scenario: Scenario, staging_root: Path) -> None:
        self.scenario = scenario
        self.project = scenario.work_dir
        self.staging, self.staging_log = start_openbao(staging_root, STAGING_TOKEN, audited=True)
        (self.project / ".gitignore").write_text("venv\n")
        # The dev stack runs on the shell's VAULT_ADDR / VAULT_TOKEN (the dev server), like
        # `make up`'s; staging carries its own in its config.
        self.env = workspace.pulumi_env(
            state_dir=scenario.root / "state",
            passphrase=PASSPHRASE,
            vault=scenario.server,
            skip_checkpoints=True,
        )
        self.dev = workspace.open_stack("dev", self.project, self.env, create=True)
        workspace.configure(self.dev, jwksUrl=scenario.jwks_url)
        self.target = workspace.open_stack("staging", self.project, self.env, create=True)
        self.configure_staging()
        self.git("init", "-q")
        self.commit("the project")

    def configure_staging(self, namespace: str = "nomad", auth_path: str = "jwt-nomad") -> None:
        self.target.set_all_config(
            {
                "vault:address": auto.ConfigValue(self.staging.address),
                "vault:token": auto.ConfigValue(STAGING_TOKEN, secret=True),
                "nomad-vault-setup:jwksUrl": auto.ConfigValue(self.scenario.jwks_url),
                "nomad-vault-setup:namespace": auto.ConfigValue(namespace),
                "nomad-vault-setup:authPath": auto.ConfigValue(auth_path),
                "nomad-vault-setup:protect": auto.ConfigValue("true"),
            }
        )

    def change_staging(self, **settings: str) -> None:
        """Commit a change of staging's stack file and bring dev up from that commit."""
        self.configure_staging(**settings)
        self.commit(f"staging: {settings}")
        self.dev.up()

    def git(self, *args: str) -> str:
        return subprocess.run(
            [*GIT, *args], cwd=self.project, check=True, capture_output=True, text=True
        ).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)

    def promote(self, *flags: str, to: str = "staging") -> subprocess.CompletedProcess[str]:
        """`make promote FROM=dev TO=staging ARGS=...`, as a user runs it."""
        command = [sys.executable, "-m", "devtools.promote", "--from", "dev", "--to", to]
        return subprocess.run(
            [*command, "--project-dir", str(self.project), *flags],
            cwd=PROJECT_DIR,
            env=os.environ | self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    def staging_vault(self, namespace: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.staging.address, token=STAGING_TOKEN, namespace=namespace)


def refused(result: subprocess.CompletedProcess[str], because: str) -> bool:
    assert result.returncode == 1, result.stdout + result.stderr
    assert because in result.stderr, result.stderr
    return True


@pytest.fixture(scope="module")
def estate(new_scenario, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    setup = Estate(new_scenario(token=DEV_TOKEN, audited=True), tmp_path_factory.mktemp("staging"))
    yield setup
    stop(setup.staging.pid)


def test_a_dirty_tree_blocks_promotion(estate: Estate) -> None:
    (estate.project / "notes.txt").write_text("work in progress\n")
    try:
        assert refused(estate.promote(), "the working tree has uncommitted changes")
    finally:
        (estate.project / "notes.txt").unlink()


def test_a_missing_target_stack_is_named(estate: Estate) -> None:
    assert refused(estate.promote(to="prod"), "there is no stack prod in file://")


def test_a_source_not_updated_from_this_commit_blocks_promotion(estate: Estate) -> None:
    assert refused(estate.promote(), "stack dev has no update yet")
    estate.dev.up()
    estate.commit("a later commit")
    assert refused(estate.promote(), "dev was last updated from commit")
    estate.dev.up()


def test_drift_in_the_source_blocks_promotion(estate: Estate) -> None:
    role_path = "auth/jwt-nomad/role/nomad-workloads"
    vault = estate.scenario.client(token=DEV_TOKEN)
    vault.write_data(role_path, data=vault.read(role_path)["data"] | {"token_period": 60})
    assert refused(estate.promote(), "dev has drift or pending changes")
    estate.dev.up(refresh=True)


def test_a_clean_promotion_applies_the_commit_to_staging(estate: Estate) -> None:
    dry = estate.promote("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "target staging: preview" in dry.stdout
    assert estate.staging_vault().read("sys/namespaces/nomad") is None, "a dry run changes nothing"

    result = estate.promote()
    assert result.returncode == 0, result.stdout + result.stderr
    head = estate.git("rev-parse", "HEAD").strip()
    inside = estate.staging_vault(namespace="nomad")
    assert "jwt-nomad/" in inside.sys.list_auth_methods()["data"]
    assert changes(estate.target.preview(refresh=True).change_summary) == {}

    (last,) = estate.target.history(page_size=1)
    assert last.message == f"promote dev@{head[:12]} to staging" and last.result == "succeeded"
    tags = estate.target.workspace.list_tags("staging")
    assert (tags["promoted-from"], tags["promoted-commit"]) == ("dev", head)
    assert f"; promote dev@{head[:12]} to staging" in result.stdout


def test_the_up_applies_nothing_its_checked_preview_did_not_show(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Staging's stack file moves the auth mount after the checks passed on a preview that
    showed no change: the plan-bound `up` refuses the move, which the checks would refuse."""
    stack_file = estate.project / "Pulumi.staging.yaml"
    committed = stack_file.read_text()
    apply = Promotion._apply

    def edit_then_apply(self: Promotion, *args: object, **kwargs: object) -> object:
        estate.configure_staging(auth_path="jwt-nomad-unchecked")
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(Promotion, "_apply", edit_then_apply)
    said: list[str] = []
    promotion = Promotion(
        project=estate.project,
        source="dev",
        target="staging",
        source_env=estate.env,
        target_env=estate.env,
        say=said.append,
    )
    try:
        with pytest.raises(PromotionRefused) as refusal:
            promotion.run()
    finally:
        stack_file.write_text(committed)
    assert "target staging: preview no changes" in said
    assert "staging changed after its checked preview" in str(refusal.value)
    assert "nothing was applied" in str(refusal.value)
    mounts = estate.staging_vault(namespace="nomad").sys.list_auth_methods()["data"]
    assert "jwt-nomad/" in mounts and "jwt-nomad-unchecked/" not in mounts


def test_moving_stagings_auth_mount_is_refused_without_allow_replace(estate: Estate) -> None:
    estate.change_staging(auth_path="jwt-nomad-v2")
    result = estate.promote()
    assert refused(result, "staging's preview would break running jobs")
    assert f"update {AUTH_BACKEND} nomad-auth: moves the auth mount" in result.stderr
    assert "--allow-replace" in result.stderr
    mounts = estate.staging_vault(namespace="nomad").sys.list_auth_methods()["data"]
    assert "jwt-nomad/" in mounts and "jwt-nomad-v2/" not in mounts


def test_replacing_stagings_namespace_is_refused_as_protected(estate: Estate) -> None:
    estate.change_staging(namespace="nomad-v2")
    result = estate.promote("--allow-replace")
    assert refused(result, "Pulumi refuses to touch these protected resources")
    # Moved to a namespace of another path, the auth mount is replaced (the engine stops at
    # the first protected step it meets, before the old namespace's delete).
    assert f"replace {AUTH_BACKEND} nomad-auth (protected)" in result.stderr
    assert estate.staging_vault().read("sys/namespaces/nomad") is not None
    assert estate.staging_vault().read("sys/namespaces/nomad-v2") is None


def test_destroying_a_protected_stack_stops_and_keeps_the_objects(estate: Estate) -> None:
    estate.change_staging()
    with pytest.raises(auto.CommandError, match="protected"):
        estate.target.destroy()
    assert estate.staging_vault().read("sys/namespaces/nomad") is not None


def test_neither_server_ever_saw_the_others_token(estate: Estate) -> None:
    dev_log = estate.scenario.audit_log.read_text()
    staging_log = estate.staging_log.read_text()
    assert DEV_TOKEN in dev_log and STAGING_TOKEN in staging_log, "the logs are raw"
    assert STAGING_TOKEN not in dev_log
    assert DEV_TOKEN not in staging_log
