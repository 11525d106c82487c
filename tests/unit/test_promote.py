"""The promotion decisions on recorded preview and history data (no engine, no server)."""

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from devtools import promote
from devtools.promote import (
    Promotion,
    PromotionRefused,
    Step,
    check_token_binding,
    config_binding_problem,
    flagged_files,
    pending_changes,
    plan_violations,
    protected_refusals,
    risky_steps,
    source_problems,
)
from nomad_vault_setup.access import Job
from nomad_vault_setup.audit import Audit, cluster_from_settings, run_audit
from nomad_vault_setup.config.schema import ClusterSettings
from nomad_vault_setup.resource_types import (
    AUTH_BACKEND,
    CLUSTER_COMPONENT,
    LOCAL_FILE,
    MOUNT,
    NAMESPACE,
    POLICY,
    PROJECT,
    REMOTE_FILE,
    ROLE,
)
from nomad_vault_setup.server_kind import VaultServer

STACK = f"urn:pulumi:staging::{PROJECT}::"
COMPONENT = f"{CLUSTER_COMPONENT}$"
KV_LOST = "the managed KV mount: its secrets are deleted with it"
ROLE_GAP = "the role: logins with it fail between its delete and re-create"
KV_MOVED = "moves the KV mount (kvMount), so every job's secret paths change"
AGENT_FILE = (
    "a Nomad agent's vault block file: the command removes it and reloads the agent, whose "
    "jobs then get no Vault token"
)
HEAD = "f8cc32e45199a0b1c2d3e4f5a6b7c8d9e0f1a2b3"
RECORDED = json.loads((Path(__file__).parent / "data" / "promote_recorded.json").read_text())


def recorded_steps(entries: list[dict]) -> list[Step]:
    return [Step(**entry | {"diffs": tuple(entry["diffs"])}) for entry in entries]


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        ("token_period", []),
        (
            "move_auth_path",  # the role's `backend` forces a new role
            [
                f"update {AUTH_BACKEND} nomad-auth: moves the auth mount (authPath)",
                f"replace {ROLE} nomad-role ({ROLE_GAP})",
            ],
        ),
        ("rename_policy", [f"replace {POLICY} nomad-policy: renames the policy (policyName)"]),
        (
            "change_namespace",
            [
                f"replace {ROLE} nomad-role ({ROLE_GAP})",
                f"replace {AUTH_BACKEND} nomad-auth (the JWT auth mount)",
                f"replace {NAMESPACE} nomad-namespace (the namespace)",
            ],
        ),
        ("drop_kv_mount", [f"delete {MOUNT} nomad-kv ({KV_LOST})"]),
        ("move_kv_mount", [f"update {MOUNT} nomad-kv: {KV_MOVED}"]),
        ("rename_role", [f"replace {ROLE} nomad-role ({ROLE_GAP})"]),
        (
            "stop_delivering",
            [
                f"delete {LOCAL_FILE} nomad-local/etc/nomad.d/vault-server.hcl ({AGENT_FILE})",
                f"delete {LOCAL_FILE} nomad-local/etc/nomad.d/vault-client.hcl ({AGENT_FILE})",
            ],
        ),
    ],
)
def test_recorded_previews_get_the_right_verdict(change: str, verdict: list[str]) -> None:
    assert risky_steps(recorded_steps(RECORDED[change])) == verdict


def test_a_recorded_protection_error_lists_each_protected_resource() -> None:
    recorded = RECORDED["change_protected_namespace"]
    assert risky_steps(recorded_steps(recorded["steps"])) == [], "the engine stops first"
    assert protected_refusals(recorded["error"]) == [
        f"replace {NAMESPACE} nomad-namespace (protected)",
        f"replace {AUTH_BACKEND} nomad-auth (protected)",
    ]


def step(op: str, typ: str, name: str, diffs: tuple[str, ...] = (), protected: bool = False):
    return Step(op, f"{STACK}{COMPONENT}{typ}::{name}", typ, diffs, protected)


def update(kind: str = "update", result: str = "succeeded", **environment: str):
    return auto.UpdateSummary(
        version=3,
        kind=kind,
        start_time=None,
        message="",
        environment={"git.head": HEAD, "git.dirty": "false"} | environment,
        config={},
        result=result,
        end_time=None,
        resource_changes={},
    )


def test_a_plain_promotion_has_no_risky_step() -> None:
    """Removing an extra role (with its inline policy) from the config is what the config asks
    for, checked in the source first; new agent file text is an in-place update."""
    steps = [
        step("same", NAMESPACE, "nomad-namespace"),
        step("same", AUTH_BACKEND, "nomad-auth"),
        step("update", POLICY, "nomad-policy", ("policy",)),
        step("update", ROLE, "nomad-role", ("tokenPeriod",)),
        step("create", ROLE, "nomad-role-db-admin"),
        step("delete", ROLE, "nomad-role-old"),
        step("delete", POLICY, "nomad-role-old-policy"),
        step("update", MOUNT, "nomad-kv", ("description",)),
        step("update", REMOTE_FILE, "nomad-agent-10.0.0.5-22/etc/nomad.d/vault.hcl", ("stdin",)),
        step("create", LOCAL_FILE, "nomad-local/etc/nomad.d/vault-client.hcl"),
    ]
    assert risky_steps(steps) == []


def test_deleting_the_kv_mount_or_an_agent_file_or_replacing_a_role_is_risky() -> None:
    agent = "nomad-agent-10.0.0.5-22/etc/nomad.d/vault-client.hcl"
    steps = [
        step("replace", MOUNT, "nomad-kv", ("namespace",)),
        step("create-replacement", ROLE, "nomad-role", ("roleType",)),
        step("delete-replaced", ROLE, "nomad-role"),
        step("delete", REMOTE_FILE, agent),
        step("delete-replaced", LOCAL_FILE, "nomad-local/etc/nomad.d/vault-server.hcl"),
    ]
    assert risky_steps(steps) == [
        f"replace {MOUNT} nomad-kv ({KV_LOST})",
        f"replace {ROLE} nomad-role ({ROLE_GAP})",
        f"delete {REMOTE_FILE} {agent} ({AGENT_FILE})",
        f"replace {LOCAL_FILE} nomad-local/etc/nomad.d/vault-server.hcl ({AGENT_FILE})",
    ]


def test_replacing_or_deleting_the_mount_or_namespace_is_risky() -> None:
    steps = [
        step("delete-replaced", NAMESPACE, "nomad-namespace"),
        step("replace", AUTH_BACKEND, "nomad-auth", ("namespace",)),
        step("delete", AUTH_BACKEND, "nomad-auth-b"),
    ]
    assert risky_steps(steps) == [
        f"replace {NAMESPACE} nomad-namespace (the namespace)",
        f"replace {AUTH_BACKEND} nomad-auth (the JWT auth mount)",
        f"delete {AUTH_BACKEND} nomad-auth-b (the JWT auth mount)",
    ]


def test_moving_the_mount_renaming_the_policy_or_touching_protected_things_is_risky() -> None:
    steps = [
        step("update", AUTH_BACKEND, "nomad-auth", ("path",)),
        step("replace", POLICY, "nomad-policy", ("name",)),
        step("delete", ROLE, "nomad-role-old", protected=True),
    ]
    assert risky_steps(steps) == [
        f"update {AUTH_BACKEND} nomad-auth: moves the auth mount (authPath)",
        f"replace {POLICY} nomad-policy: renames the policy (policyName)",
        f"delete {ROLE} nomad-role-old (a protected resource)",
    ]


def test_pulumis_own_protection_errors_are_listed() -> None:
    recorded = (
        'error: unable to replace resource "urn:pulumi:staging::nomad-vault-setup::'
        f'{COMPONENT}{NAMESPACE}::nomad-namespace"\n'
        "as it is currently marked for protection. To unprotect the resource, ...\n"
        'error: unable to replace resource "urn:pulumi:staging::nomad-vault-setup::'
        f'{COMPONENT}{AUTH_BACKEND}::nomad-auth" as part of replacing "urn:pulumi:staging::x" '
        "as it is currently marked for protection.\n"
    )
    assert protected_refusals(recorded) == [
        f"replace {NAMESPACE} nomad-namespace (protected)",
        f"replace {AUTH_BACKEND} nomad-auth (protected)",
    ]
    assert protected_refusals("error: 400 error checking jwks URL") == []


def test_the_source_must_have_succeeded_from_this_commit() -> None:
    assert source_problems(update(), HEAD, "dev") == []
    assert "has no update yet" in source_problems(None, HEAD, "dev")[0]
    (failed,) = source_problems(update(result="failed"), HEAD, "dev")
    assert "did not succeed (failed)" in failed
    (refresh_only,) = source_problems(update(kind="refresh"), HEAD, "dev")
    assert "the last refresh of dev" in refresh_only
    (other,) = source_problems(update(**{"git.head": "0123456789ab" + "0" * 28}), HEAD, "dev")
    assert "last updated from commit 0123456789ab, not from f8cc32e45199" in other
    (dirty,) = source_problems(update(**{"git.dirty": "true"}), HEAD, "dev")
    assert "uncommitted changes" in dirty


def test_pending_changes_ignore_unchanged_resources() -> None:
    assert pending_changes({"same": 5}) == {}
    assert pending_changes({"same": 3, "update": 2, "create": 0}) == {"update": 2}


def config(address: str | None = None, token: str | None = None, secret: bool = True):
    """A stack's config as `Stack.get_all_config()` returns it."""
    values = {"nomad-vault-setup:jwksUrl": auto.ConfigValue("https://nomad.example:4646/jwks")}
    if address is not None:
        values["vault:address"] = auto.ConfigValue(address)
    if token is not None:
        values["vault:token"] = auto.ConfigValue(token, secret=secret)
    return values


ADDRESS = "https://vault.staging.example:8200"


@pytest.mark.parametrize(
    ("stack", "settings", "problem"),
    [
        ("staging", config(ADDRESS, "s.staging-token"), None),
        ("staging", config(ADDRESS, ""), "vault:token: set but empty"),
        ("staging", config(ADDRESS, "  \n"), "vault:token: set but empty"),
        ("staging", config(ADDRESS, "s.staging-token", secret=False), "stored in plain text"),
        ("staging", config(ADDRESS), "has no vault:token of its own"),
        ("staging", config(token="s.staging-token"), "but no vault:address"),
        ("staging", config(), "has neither vault:address nor vault:token"),
        ("acme/prod", config(), "has neither vault:address nor vault:token"),
        ("dev", config(), None),
        ("acme/dev", config(), None),
        ("dev", config(token=""), "vault:token: set but empty"),
    ],
)
def test_a_stack_sends_only_its_own_secret_token_to_its_own_server(
    stack: str, settings: dict[str, auto.ConfigValue], problem: str | None
) -> None:
    found = config_binding_problem(stack, settings)
    assert found is None if problem is None else problem in (found or "")


class ConfiguredStack:
    """The part of `auto.Stack` that `check_token_binding` uses."""

    def __init__(self, name: str, settings: dict[str, auto.ConfigValue]) -> None:
        self.name, self.settings = name, settings

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return self.settings


def test_the_token_check_reads_the_stacks_whole_config() -> None:
    check_token_binding(ConfiguredStack("staging", config(ADDRESS, "s.staging-token")), {})
    with pytest.raises(PromotionRefused, match="stack staging: vault:token: set but empty"):
        check_token_binding(ConfiguredStack("staging", config(ADDRESS, "")), {})
    with pytest.raises(PromotionRefused, match="stored in plain text"):
        check_token_binding(ConfiguredStack("staging", config(ADDRESS, "s.x", secret=False)), {})


@pytest.mark.parametrize("variable", ["VAULT_NAMESPACE", "VAULT_SKIP_VERIFY"])
def test_shell_settings_that_redirect_a_stacks_token_are_refused(variable: str) -> None:
    stack = ConfiguredStack("staging", config(ADDRESS, "s.staging-token"))
    with pytest.raises(PromotionRefused, match=f"{variable}: set in the shell"):
        check_token_binding(stack, {variable: "true"})
    check_token_binding(stack, {variable: "false" if variable == "VAULT_SKIP_VERIFY" else ""})


def test_git_ls_files_flags_are_read() -> None:
    listing = "H README.md\0S Pulumi.staging.yaml\0h Pulumi.prod.yaml\0s a b.yaml\0H x\0"
    assert flagged_files(listing) == {
        "skip-worktree": ["Pulumi.staging.yaml", "a b.yaml"],
        "assume-unchanged": ["Pulumi.prod.yaml", "a b.yaml"],
    }
    assert flagged_files("H README.md\0H Pulumi.staging.yaml\0") == {}


def git(project: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
    return subprocess.run(command, cwd=project, check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize("flag", ["--skip-worktree", "--assume-unchanged"])
def test_a_stack_file_edit_hidden_from_git_status_blocks_promotion(
    tmp_path: Path, flag: str
) -> None:
    """The edit is invisible to `git status`; the promotion refuses before any engine runs."""
    stack_file = tmp_path / "Pulumi.staging.yaml"
    stack_file.write_text("config:\n  nomad-vault-setup:protect: 'true'\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "staging")
    git(tmp_path, "update-index", flag, "Pulumi.staging.yaml")
    stack_file.write_text("config:\n  nomad-vault-setup:protect: 'false'\n")
    assert git(tmp_path, "status", "--porcelain") == "", "git status hides the edit"

    promotion = Promotion(tmp_path, "dev", "staging", source_env={}, target_env={})
    with pytest.raises(PromotionRefused) as refusal:
        promotion.run()
    message = str(refusal.value)
    assert f"    Pulumi.staging.yaml ({flag.removeprefix('--')})" in message
    assert f"git update-index --no-{flag.removeprefix('--')} -- Pulumi.staging.yaml" in message


class PlannedStack:
    """The part of `auto.Stack` a promotion's preview and `up` use, recording their options."""

    def __init__(self, up_output: str | None = None) -> None:
        self.up_output = up_output
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.config = {"vault:address": auto.ConfigValue(ADDRESS)}

    def get_all_config(self) -> dict[str, auto.ConfigValue]:
        return self.config

    def preview(self, **options: Any) -> Any:
        self.calls.append(("preview", options))
        Path(options["plan"]).write_text("{}")
        return auto.PreviewResult(stdout="", stderr="", change_summary={"same": 9})

    def up(self, **options: Any) -> Any:
        self.calls.append(("up", options | {"plan exists": Path(options["plan"]).exists()}))
        if self.up_output is not None:
            raise auto.CommandError(auto.CommandResult(self.up_output, "", 255))
        return "applied"


# From a promotion whose target's stack file moved the auth mount after the checked preview
# (tests/e2e/test_promote.py), and the CLI's words for an unplanned create and delete.
RECORDED_UP_OUTPUT = (
    " ~  vault:jwt:AuthBackend nomad-auth **refreshing failed (0.06s)** error: resource "
    f"{STACK}{COMPONENT}{AUTH_BACKEND}::nomad-auth violates plan: "
    "properties changed: =~path[{jwt-nomad-unchecked}]\n"
    "Diagnostics:\n"
    f"  {AUTH_BACKEND} (nomad-nomad-auth):\n"
    f"    error: resource {STACK}{COMPONENT}{AUTH_BACKEND}::nomad-auth "
    "violates plan: properties changed: =~path[{jwt-nomad-unchecked}]\n"
    f"    {LOCAL_FILE} extra  error: create is not allowed by the plan: no steps were "
    "expected for this resource\n"
    "    error: create is not allowed by the plan: no steps were expected for this resource\n"
    "    error: delete is not allowed by the plan: this resource is constrained to same\n"
)


@pytest.fixture
def committed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project at one commit with a clean tree (what promotion checked first)."""
    monkeypatch.setattr(promote, "head_commit", lambda _project: "c0ffee")
    monkeypatch.setattr(promote, "working_tree_changes", lambda _project: [])


def test_the_up_is_bound_to_the_plan_of_the_checked_preview(tmp_path: Path, committed) -> None:
    promotion = Promotion(tmp_path, "dev", "staging", {}, {}, say=lambda _: None)
    stack, plan = PlannedStack(), tmp_path / "plan.json"
    checked = promotion._fingerprint(stack)
    promotion._check_target(stack, plan)
    assert promotion._apply(stack, plan, "promote", checked) == "applied"
    (_, previewed), (_, applied) = stack.calls
    assert previewed["plan"] == str(plan) and previewed["refresh"] is True
    assert applied["plan"] == str(plan) and applied["plan exists"]


def test_a_configuration_changed_after_the_preview_is_not_applied(tmp_path, committed) -> None:
    """A plan accepts any value the preview could not know (the policy of a mount still to be
    created), so the configuration itself must still be the previewed one."""
    promotion = Promotion(tmp_path, "dev", "staging", {}, {}, say=lambda _: None)
    stack = PlannedStack()
    checked = promotion._fingerprint(stack)
    stack.config = stack.config | {"nomad-vault-setup:kvMount": auto.ConfigValue("other-kv")}
    with pytest.raises(PromotionRefused, match=r"changed after its checked preview.*nothing was"):
        promotion._apply(stack, tmp_path / "p", "m", checked)
    assert stack.calls == [], "no up ran"


def test_an_up_outside_the_plan_is_refused_and_each_refused_step_named(
    tmp_path: Path, committed
) -> None:
    promotion = Promotion(tmp_path, "dev", "staging", {}, {})
    stack = PlannedStack(RECORDED_UP_OUTPUT)
    with pytest.raises(PromotionRefused) as refusal:
        promotion._apply(stack, tmp_path / "p", "m", promotion._fingerprint(stack))
    assert "staging changed after its checked preview" in str(refusal.value)
    assert plan_violations(RECORDED_UP_OUTPUT) == [
        f"{AUTH_BACKEND} nomad-auth: properties changed: =~path[{{jwt-nomad-unchecked}}]",
        f"{LOCAL_FILE} extra: create is not allowed by the plan: no steps were expected "
        "for this resource",
        "delete is not allowed by the plan: this resource is constrained to same",
    ]
    failing = PlannedStack("error: 400 error checking jwks URL")
    with pytest.raises(auto.CommandError, match="400 error checking jwks URL"):
        promotion._apply(failing, tmp_path, "m", promotion._fingerprint(failing))


def test_promotion_keeps_checkpoints_on_its_stacks_whatever_the_shell_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Real stacks must survive an interrupted `up`: only throwaway stacks skip checkpoints."""
    monkeypatch.setenv("PULUMI_SKIP_CHECKPOINTS", "true")
    started: list[Promotion] = []
    monkeypatch.setattr(Promotion, "run", lambda self: started.append(self))
    argv = ["--from", "staging", "--to", "prod", "--project-dir", str(tmp_path)]
    assert promote.main(argv) == 0
    (promotion,) = started
    for env in (promotion.source_env, promotion.target_env):
        assert env["PULUMI_SKIP_CHECKPOINTS"] == "false"
        assert env["PIP_DISABLE_PIP_VERSION_CHECK"] == "1"


def audited(monkeypatch: pytest.MonkeyPatch, job_ids: list[str]) -> list[object]:
    """The target's access audit, on an OpenBao 2.7.2, of jobs `job_ids` in `default`."""
    asked: list[object] = []

    def audit_of_stack(stack: object, jobs_file: object, environment: object) -> Audit:
        asked.append(jobs_file)
        settings = ClusterSettings.model_validate({})
        jobs = [Job("default", job_id) for job_id in job_ids]
        cluster = cluster_from_settings("", settings)
        return run_audit([cluster], jobs, VaultServer("openbao", "2.7.2"))

    monkeypatch.setattr(promote, "audit_of_stack", audit_of_stack)
    return asked


def test_a_target_whose_jobs_read_each_others_secrets_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = audited(monkeypatch, ["web", "web/db"])
    promotion = Promotion(tmp_path, "dev", "staging", {}, {}, jobs_file=tmp_path / "jobs.json")
    with pytest.raises(PromotionRefused) as refusal:
        promotion._audit_target(PlannedStack())
    assert "prefix-overlap: default/web:" in str(refusal.value)
    assert "--allow-risky-jobs" in str(refusal.value)
    assert asked == [tmp_path / "jobs.json"]
    said: list[str] = []
    allowed = Promotion(
        tmp_path,
        "dev",
        "staging",
        {},
        {},
        jobs_file=tmp_path,
        allow_risky_jobs=True,
        say=said.append,
    )
    allowed._audit_target(PlannedStack())
    assert "promoting anyway: --allow-risky-jobs" in said[-1]


def test_the_access_audit_passes_quietly_or_is_skipped_and_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = audited(monkeypatch, ["web", "api"])
    said: list[str] = []
    Promotion(
        tmp_path, "dev", "staging", {}, {}, jobs_file=tmp_path, say=said.append
    )._audit_target(PlannedStack())
    assert said == ["target staging: access audit of 2 job(s) passed"]
    monkeypatch.delenv("NOMAD_ADDR", raising=False)
    Promotion(tmp_path, "dev", "staging", {}, {}, say=said.append)._audit_target(PlannedStack())
    assert "access audit skipped, no jobs to audit" in said[-1]
    assert len(asked) == 1
    Promotion(
        tmp_path, "dev", "staging", {}, {"NOMAD_ADDR": "http://127.0.0.1:4646"}, say=said.append
    )._audit_target(PlannedStack())
    assert asked == [tmp_path, None], "with NOMAD_ADDR the jobs come from Nomad"
