"""`make promote FROM=dev TO=staging`: move what proved itself in one stack to the next.

Promotion applies the current commit's program to the target stack, and only after checks
that make a bad promotion hard to do by accident:

1. the working tree is clean (what is promoted is a commit, reproducible later);
2. the source stack's last update succeeded and was made from this very commit;
3. the source has no drift and no pending changes (refresh + preview show nothing);
4. the target's preview breaks no running job (see `risky_steps`: it replaces or deletes no
   auth mount, namespace, managed KV mount, agent config file or protected resource, replaces
   no role, moves no mount and renames no policy) — unless `--allow-replace`;
5. the access audit of the target (devtools/audit.py) finds no job reading another job's
   secrets under the target's settings — unless `--allow-risky-jobs`. Its jobs come from
   `--jobs FILE` or the target's Nomad (NOMAD_ADDR); with neither it is skipped, and said.

Then it shows the target's preview summary and runs `up` on the target bound to that preview's
update plan (`pulumi preview --save-plan` / `pulumi up --plan`): whatever changed in between
(the stack file, the program, the servers), the engine refuses every step the checked preview
did not show. The `up`'s message names the source and commit, also recorded as stack tags.
`--dry-run` stops after the preview. The checks are pure functions of recorded data,
unit-tested without an engine.
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulumi import automation as auto

from devtools import dev_stack, openbao, workspace
from devtools.audit import AuditUnavailable, audit_of_stack
from nomad_vault_setup.audit import Audit
from nomad_vault_setup.audit_report import printable
from nomad_vault_setup.provider_guard import shell_override_problems, token_binding_problem
from nomad_vault_setup.resource_types import (
    AUTH_BACKEND,
    LOCAL_FILE,
    MOUNT,
    NAMESPACE,
    POLICY,
    REMOTE_FILE,
    ROLE,
)

_AGENT_FILE = (
    "a Nomad agent's vault block file: the command removes it and reloads the agent, whose "
    "jobs then get no Vault token"
)
# What deleting or replacing one breaks. A replacement deletes too: the old auth mount takes
# its accessor (every entity alias and templated policy), the old KV mount its secrets; an
# agent file's replacement runs the old resource's delete (`rm` + reload) on the same path.
GUARDED_TYPES = {
    AUTH_BACKEND: "the JWT auth mount",
    NAMESPACE: "the namespace",
    MOUNT: "the managed KV mount: its secrets are deleted with it",
    LOCAL_FILE: _AGENT_FILE,
    REMOTE_FILE: _AGENT_FILE,
}
# Replacing a role is a delete, then a create (delete_before_replace: Vault writes overwrite):
# in between, every login with that role fails. Deleting a role (or a policy) is only what
# removing it from the config asks for, checked in the source first: not flagged.
GUARDED_ON_REPLACE = {ROLE: "the role: logins with it fail between its delete and re-create"}
DESTRUCTIVE_OPS = frozenset(
    {"replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced"}
)
TAG_SOURCE, TAG_COMMIT = "promoted-from", "promoted-commit"


class PromotionRefused(Exception):
    """A check failed; the message says why and what to do."""


@dataclass(frozen=True)
class Step:
    """One planned step of a preview, as the engine reported it."""

    op: str
    urn: str
    type: str
    diffs: tuple[str, ...] = ()
    protected: bool = False

    @property
    def name(self) -> str:
        return self.urn.rsplit("::", 1)[-1]


# The engine reports one replacement as up to three steps; the operator needs one line.
_AS_REPLACE = {"create-replacement": "replace", "delete-replaced": "replace"}


def risky_steps(steps: Iterable[Step]) -> list[str]:
    """Every planned step that would break running jobs, one line per resource and change."""
    risky: dict[str, None] = {}
    for step in steps:
        op = _AS_REPLACE.get(step.op, step.op)
        what = GUARDED_TYPES.get(step.type)
        if op == "replace" and step.type in GUARDED_ON_REPLACE:
            risky[f"replace {step.type} {step.name} ({GUARDED_ON_REPLACE[step.type]})"] = None
        elif op in DESTRUCTIVE_OPS and (what or step.protected):
            risky[f"{op} {step.type} {step.name} ({what or 'a protected resource'})"] = None
        elif step.type == AUTH_BACKEND and op == "update" and "path" in step.diffs:
            risky[f"update {step.type} {step.name}: moves the auth mount (authPath)"] = None
        elif step.type == MOUNT and op == "update" and "path" in step.diffs:
            risky[
                f"update {step.type} {step.name}: moves the KV mount (kvMount), so every job's "
                "secret paths change"
            ] = None
        elif step.type == POLICY and "name" in step.diffs:
            risky[f"{op} {step.type} {step.name}: renames the policy (policyName)"] = None
    return list(risky)


_PROTECTED = re.compile(
    r'unable to (replace|delete) resource "(urn:[^"]+)"\s+'
    r'(?:as part of \w+ "[^"]+"\s+)?as it is currently marked for protection'
)


def protected_refusals(engine_output: str) -> list[str]:
    """The steps Pulumi itself refused in a preview because the resource is protected."""
    found = set()
    for op, urn in _PROTECTED.findall(engine_output):
        qualified_type, name = urn.split("::")[-2:]
        found.add(f"{op} {qualified_type.rsplit('$', 1)[-1]} {name} (protected)")
    return sorted(found)


def source_problems(last_update: auto.UpdateSummary | None, head: str, source: str) -> list[str]:
    """Why the source stack's last update does not vouch for this commit, if it does not."""
    if last_update is None:
        return [f"stack {source} has no update yet: run `pulumi up` on it from this commit"]
    problems = []
    if last_update.kind != "update" or last_update.result != "succeeded":
        problems.append(
            f"the last {last_update.kind} of {source} did not succeed "
            f"({last_update.result}): fix it and run `pulumi up` on {source} again"
        )
    commit = last_update.environment.get("git.head", "")
    if commit != head:
        problems.append(
            f"{source} was last updated from commit {commit[:12] or 'unknown'}, not from "
            f"{head[:12]} (HEAD): run `pulumi up` on {source} from this commit first"
        )
    elif last_update.environment.get("git.dirty") == "true":
        problems.append(f"{source} was last updated from uncommitted changes: update it again")
    return problems


# Steps that change nothing anywhere: the program reads its own stack's last outputs through a
# StackReference (`read`), which a destroy drops from the state (`discard`).
NO_CHANGE_OPS = frozenset({"same", "read", "discard"})


def pending_changes(change_summary: Mapping[str, int]) -> dict[str, int]:
    """The entries of a change summary that change something."""
    return {op: n for op, n in change_summary.items() if op not in NO_CHANGE_OPS and n}


def working_tree_changes(project: Path) -> list[str]:
    """Uncommitted (tracked or untracked, not ignored) changes, as `git status` lists them."""
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True
    )
    return status.stdout.splitlines()


# `git ls-files -v` tags an entry whose changes git does not look for: lowercase when it is
# assume-unchanged, `S` when it is skip-worktree (`s`: both).
_GIT_FLAGS = {"assume-unchanged": "--no-assume-unchanged", "skip-worktree": "--no-skip-worktree"}


def flagged_files(ls_files_v: str) -> dict[str, list[str]]:
    """The paths of a `git ls-files -v -z` listing whose edits `git status` hides, by flag."""
    flagged: dict[str, list[str]] = {}
    for entry in filter(None, ls_files_v.split("\0")):
        tag, path = entry[:1], entry[2:]
        if tag.islower():
            flagged.setdefault("assume-unchanged", []).append(path)
        if tag in ("S", "s"):
            flagged.setdefault("skip-worktree", []).append(path)
    return flagged


def flagged_files_problem(flagged: Mapping[str, list[str]]) -> str | None:
    """Why a tree that looks clean may not be, and the commands that make git look again."""
    if not flagged:
        return None
    listed, commands = [], []
    for flag, paths in sorted(flagged.items()):
        listed += [f"    {path} ({flag})" for path in paths]
        quoted = " ".join(shlex.quote(path) for path in paths)
        commands.append(f"    git update-index {_GIT_FLAGS[flag]} -- {quoted}")
    return (
        "git is told not to look for local edits of these files (update-index flags), so the "
        "clean-tree check cannot vouch for them:\n"
        + "\n".join(listed[:20])
        + ("\n    ..." if len(listed) > 20 else "")
        + "\nClear the flags, then commit or undo what `git status` shows:\n"
        + "\n".join(commands)
        + "\n(a sparse checkout sets skip-worktree too: promote from a full checkout)"
    )


def hidden_changes(project: Path) -> dict[str, list[str]]:
    """Tracked files flagged assume-unchanged or skip-worktree, by flag."""
    listing = subprocess.run(
        ["git", "ls-files", "-v", "-z"], cwd=project, capture_output=True, text=True, check=True
    )
    return flagged_files(listing.stdout)


def head_commit(project: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=project, capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass
class StepRecorder:
    """Collects the steps of a preview from the engine's event stream."""

    steps: list[Step] = field(default_factory=list)

    def __call__(self, event: auto.EngineEvent) -> None:
        pre = event.resource_pre_event
        if pre is None:
            return
        meta = pre.metadata
        self.steps.append(
            Step(
                op=str(meta.op.value if hasattr(meta.op, "value") else meta.op),
                urn=meta.urn,
                type=meta.type,
                diffs=tuple(meta.diffs or ()),
                protected=bool(meta.old and meta.old.protect),
            )
        )


def open_stack(name: str, project: Path, env: Mapping[str, str]) -> auto.Stack:
    """Stack `name`, run with `env` laid over this process's environment."""
    try:
        return workspace.open_stack(name, project, env)
    except workspace.StackMissing as missing:
        raise PromotionRefused(
            f"{missing}: create it with `pulumi stack init {name}`, give it its own token "
            f"(`pulumi config set --stack {name} --secret vault:token ...`) and commit its stack "
            "file"
        ) from None


def config_binding_problem(stack_name: str, config: Mapping[str, auto.ConfigValue]) -> str | None:
    """`token_binding_problem` on a stack's config as `pulumi config --json` gives it."""
    address, token = config.get("vault:address"), config.get("vault:token")
    return token_binding_problem(
        stack_name.rsplit("/", 1)[-1],  # `org/staging` is the program's stack `staging`
        str(address.value) if address and address.value is not None else None,
        str(token.value) if token and token.value is not None else None,
        bool(token and token.secret),
    )


def check_token_binding(stack: auto.Stack, environment: Mapping[str, str]) -> None:
    """Refuse before the engine runs at all: a refresh starts providers before the program."""
    config = stack.get_all_config()
    name = stack.name.rsplit("/", 1)[-1]
    problems = [config_binding_problem(stack.name, config)]
    problems += shell_override_problems(name, set(config), environment)
    if any(problems):
        listed = "; ".join(problem for problem in problems if problem)
        raise PromotionRefused(f"stack {stack.name}: {listed}")


_VIOLATES = re.compile(r"resource (urn:\S+) violates plan: (.*)")
_NOT_ALLOWED = re.compile(r"\w[\w-]* is not allowed by the plan: .*")
# A progress line names its resource first: ` ~  vault:jwt:AuthBackend nomad-auth ... error:`.
_PROGRESS_RESOURCE = re.compile(r"\W*(\S+:\S+) (\S+)")


def plan_violations(engine_output: str) -> list[str]:
    """The steps an `up --plan` refused because the checked preview did not show them.

    The engine words them two ways: `resource URN violates plan: properties changed: ...`
    (another diff, or another operation on a planned resource) and `create is not allowed by
    the plan: ...` (a step for a resource the plan has none for, named only by the progress
    line it is printed on)."""
    found: dict[str, None] = {}
    unnamed: list[str] = []
    for line in engine_output.splitlines():
        if violation := _VIOLATES.search(line):
            qualified_type, name = violation[1].split("::")[-2:]
            found[f"{qualified_type.rsplit('$', 1)[-1]} {name}: {violation[2].strip()}"] = None
        elif not_allowed := _NOT_ALLOWED.search(line):
            who = _PROGRESS_RESOURCE.match(line[: not_allowed.start()])
            if who:
                found[f"{who[1]} {who[2]}: {not_allowed[0].strip()}"] = None
            else:
                unnamed.append(not_allowed[0].strip())
    for why in unnamed:
        if not any(line.endswith(f": {why}") for line in found):
            found[why] = None
    return list(found)


@dataclass
class Promotion:
    """One promotion; `say` prints progress (a function so tests can capture it).

    `source_env` / `target_env` are what each stack's commands add to this process's
    environment (`workspace.pulumi_env`)."""

    project: Path
    source: str
    target: str
    source_env: Mapping[str, str]
    target_env: Mapping[str, str]
    source_config_file: str | None = None
    dry_run: bool = False
    allow_replace: bool = False
    jobs_file: Path | None = None
    allow_risky_jobs: bool = False
    say: Callable[[str], None] = print

    def run(self) -> None:
        dirty = working_tree_changes(self.project)
        if dirty:
            listed = "\n".join(f"    {line}" for line in dirty[:20])
            raise PromotionRefused(
                "the working tree has uncommitted changes; commit or stash them, so that "
                f"what is promoted is a commit:\n{listed}"
            )
        hidden = flagged_files_problem(hidden_changes(self.project))
        if hidden:
            raise PromotionRefused(hidden)
        head = head_commit(self.project)
        source = open_stack(self.source, self.project, self.source_env)
        target = open_stack(self.target, self.project, self.target_env)
        check_token_binding(source, {**os.environ, **self.source_env})
        check_token_binding(target, {**os.environ, **self.target_env})

        history = source.history(page_size=1)
        problems = source_problems(history[0] if history else None, head, self.source)
        if problems:
            raise PromotionRefused("\n".join(problems))
        self.say(f"source {self.source}: last update succeeded from {head[:12]}")

        drift = pending_changes(
            source.preview(refresh=True, config_file=self.source_config_file).change_summary
        )
        if drift:
            raise PromotionRefused(
                f"{self.source} has drift or pending changes {drift}: run "
                f"`pulumi up --refresh` on {self.source}, check it, and promote again"
            )
        self.say(f"source {self.source}: refresh + preview show no changes")
        self._audit_target(target)

        # The plan holds the target's secrets (encrypted with its secrets provider) and lives
        # only as long as this promotion, in a directory only this user can read.
        with tempfile.TemporaryDirectory(prefix="promote-plan-") as plans:
            plan = Path(plans) / "plan.json"
            checked = self._fingerprint(target)
            self._check_target(target, plan)
            if self.dry_run:
                self.say("dry run: stopping before `pulumi up`")
                return
            message = f"promote {self.source}@{head[:12]} to {self.target}"
            result = self._apply(target, plan, message, checked)
        target.workspace.set_tag(self.target, TAG_SOURCE, self.source)
        target.workspace.set_tag(self.target, TAG_COMMIT, head)
        changed = pending_changes(result.summary.resource_changes or {})
        self.say(f"target {self.target}: {changed or 'no changes'}; {message}")

    def _audit_target(self, target: auto.Stack) -> None:
        """Refuse a target whose jobs would read each other's secrets (high findings)."""
        environment = {**os.environ, **self.target_env}
        if self.jobs_file is None and not environment.get("NOMAD_ADDR"):
            self.say(
                f"target {self.target}: access audit skipped, no jobs to audit (give --jobs FILE"
                " or set NOMAD_ADDR to the target's Nomad)"
            )
            return
        try:
            audit = audit_of_stack(target, self.jobs_file, environment)
        except AuditUnavailable as error:
            raise PromotionRefused(
                f"the access audit of {self.target} cannot run: {error}"
            ) from None
        refusal = risky_jobs_refusal(audit, self.target)
        if refusal is None and not audit.accesses:
            self.say(
                f"target {self.target}: access audit found no jobs (an empty list, or a"
                " Nomad token that sees none): nothing checked"
            )
        elif refusal is None:
            self.say(f"target {self.target}: access audit of {len(audit.accesses)} job(s) passed")
        elif self.allow_risky_jobs:
            self.say(f"{refusal}\npromoting anyway: --allow-risky-jobs")
        else:
            raise PromotionRefused(f"{refusal}\nFix them, or promote with --allow-risky-jobs")

    def _check_target(self, target: auto.Stack, plan: Path) -> None:
        """Preview the target (saving its update plan to `plan`) and refuse what is risky."""
        recorder = StepRecorder()
        try:
            preview = target.preview(refresh=True, on_event=recorder, plan=str(plan))
        except auto.CommandError as failed:
            protected = protected_refusals(str(failed))
            if not protected:
                raise PromotionRefused(f"the preview of {self.target} failed:\n{failed}") from None
            listed = "\n".join(f"    {line}" for line in protected)
            raise PromotionRefused(
                f"{self.target}'s preview would break running jobs, and Pulumi refuses to touch "
                f"these protected resources:\n{listed}\nUndo the change, or unprotect them "
                "(`pulumi state unprotect`) if every Nomad job can survive it."
            ) from None
        risky = risky_steps(recorder.steps)
        if risky and not self.allow_replace:
            listed = "\n".join(f"    {line}" for line in risky)
            raise PromotionRefused(
                f"{self.target}'s preview would break running jobs:\n{listed}\n"
                "Re-run with --allow-replace only if every Nomad job can survive it "
                "(protected resources stay protected: unprotect them first)."
            )
        summary = pending_changes(preview.change_summary)
        self.say(f"target {self.target}: preview {summary or 'no changes'}")

    def _fingerprint(self, target: auto.Stack) -> str:
        """What the target's `up` depends on besides the server: its whole configuration and
        the program (commit and working tree)."""
        config = {
            key: [value.value, value.secret] for key, value in target.get_all_config().items()
        }
        state = [config, head_commit(self.project), working_tree_changes(self.project)]
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()

    def _apply(self, target: auto.Stack, plan: Path, message: str, checked: str) -> auto.UpResult:
        """`pulumi up --refresh --plan`, once the configuration and program are still those
        of the checked preview.

        The plan alone is not enough: where the preview could not know a value (a policy
        rendered from the accessor of a mount still to be created), the plan accepts any, so a
        configuration edited after the preview would be applied. With both, the engine runs no
        step the checked preview did not show (another step, another diff, a replacement for an
        update, a delete for a same)."""
        if self._fingerprint(target) != checked:
            raise PromotionRefused(
                f"{self.target} changed after its checked preview: its configuration or the "
                "program is no longer what was previewed, so nothing was applied. Promote "
                f"again to check {self.target} as it is now."
            )
        try:
            return target.up(refresh=True, plan=str(plan), message=message)
        except auto.CommandError as failed:
            violations = plan_violations(str(failed))
            if not violations:
                raise
            listed = "\n".join(f"    {line}" for line in violations)
            raise PromotionRefused(
                f"{self.target} changed after its checked preview (its stack file, the program "
                "or its servers), and `pulumi up --plan` refused what that preview did not "
                f"show:\n{listed}\nNo step outside the checked preview ran (steps it showed "
                f"may have). Promote again to check {self.target} as it is now."
            ) from None


def risky_jobs_refusal(audit: Audit, target: str) -> str | None:
    """Why `target` must not be promoted as its access audit stands (its high findings)."""
    if not audit.high:
        return None
    listed = "\n".join(
        printable(f"  - {finding.code}: {finding.subject}: {finding.message}")
        for finding in audit.high
    )
    return f"the access audit of {target} finds jobs reading other jobs' secrets:\n{listed}"


def dev_stack_environment(project: Path) -> tuple[dict[str, str], str] | None:
    """The environment and config file `make up` uses for the dev stack, if it ran here."""
    layout = dev_stack.Layout(project)
    server = openbao.load_recorded(layout.dev_dir / openbao.STATE_FILE)
    if server is None or not layout.generated_config.exists():
        return None
    return dev_stack.dev_env(layout, server), str(layout.generated_config)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.promote", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--from", dest="source", required=True, help="source stack (e.g. dev)")
    parser.add_argument("--to", dest="target", required=True, help="target stack (e.g. staging)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--dry-run", action="store_true", help="stop after the checks and preview")
    parser.add_argument(
        "--allow-replace",
        action="store_true",
        help="promote even if the target's preview would break running jobs (a replaced or "
        "deleted mount, namespace, role or agent file, a moved mount, a renamed policy)",
    )
    parser.add_argument(
        "--jobs",
        type=Path,
        help="the target's Nomad jobs (JSON list of {namespace, id, region?}) for the access "
        "audit; default: read them from NOMAD_ADDR, or skip the audit",
    )
    parser.add_argument(
        "--allow-risky-jobs",
        action="store_true",
        help="promote even if the access audit finds a job reading another job's secrets",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Real stacks: the user's backend, passphrase and Vault settings, checkpoints kept.
    base_env = workspace.pulumi_env()
    source_env: Mapping[str, str] = base_env
    config_file = None
    dev = dev_stack_environment(args.project_dir.resolve()) if args.source == "dev" else None
    if dev:
        source_env, config_file = dev
    promotion = Promotion(
        project=args.project_dir.resolve(),
        source=args.source,
        target=args.target,
        source_env=source_env,
        target_env=base_env,
        source_config_file=config_file,
        dry_run=args.dry_run,
        allow_replace=args.allow_replace,
        jobs_file=args.jobs,
        allow_risky_jobs=args.allow_risky_jobs,
    )
    try:
        promotion.run()
    except workspace.PulumiMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    except PromotionRefused as refused:
        print(f"promotion {args.source} -> {args.target} refused: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
