"""`make promote FROM=dev TO=staging`: move what proved itself in one stack to the next.

Promotion applies the current commit's program to the target stack, and only after checks
that make a bad promotion hard to do by accident:

1. the working tree is clean (what is promoted is a commit, reproducible later);
2. the source stack's last update succeeded and was made from this very commit;
3. the source has no drift and no pending changes (refresh + preview show nothing);
4. the target's preview replaces or deletes no auth mount, namespace or protected resource,
   moves no auth mount and renames no policy, since each breaks every running job
   (a new mount has a new accessor) — unless `--allow-replace`.

Then it shows the target's preview summary, runs `up` on the target with a message naming the
source and commit, and records both as stack tags. `--dry-run` stops after the preview.
The checks are pure functions of recorded data, unit-tested without an engine.
"""

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pulumi import automation as auto

from components.provider_guard import token_binding_problem
from devtools import dev_stack, openbao

AUTH_BACKEND = "vault:jwt/authBackend:AuthBackend"
NAMESPACE = "vault:index/namespace:Namespace"
POLICY = "vault:index/policy:Policy"
GUARDED_TYPES = {AUTH_BACKEND: "the JWT auth mount", NAMESPACE: "the namespace"}
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
        if op in DESTRUCTIVE_OPS and (what or step.protected):
            risky[f"{op} {step.type} {step.name} ({what or 'a protected resource'})"] = None
        elif step.type == AUTH_BACKEND and op == "update" and "path" in step.diffs:
            risky[f"update {step.type} {step.name}: moves the auth mount (authPath)"] = None
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


def pending_changes(change_summary: Mapping[str, int]) -> dict[str, int]:
    """The non-`same` entries of a change summary."""
    return {op: count for op, count in change_summary.items() if op != "same" and count}


def working_tree_changes(project: Path) -> list[str]:
    """Uncommitted (tracked or untracked, not ignored) changes, as `git status` lists them."""
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True, check=True
    )
    return status.stdout.splitlines()


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
    try:
        return auto.select_stack(
            stack_name=name,
            work_dir=str(project),
            opts=auto.LocalWorkspaceOptions(env_vars=dict(env)),
        )
    except auto.StackNotFoundError:
        backend = env.get("PULUMI_BACKEND_URL", "your current Pulumi backend")
        raise PromotionRefused(
            f"there is no stack {name} in {backend}: create it with `pulumi stack init {name}`, "
            f"give it its own token (`pulumi config set --stack {name} --secret vault:token ...`)"
            " and commit its stack file"
        ) from None


def check_token_binding(stack: auto.Stack) -> None:
    """Refuse before the engine runs at all: a refresh starts providers before the program."""
    config = stack.get_all_config()
    address = config.get("vault:address")
    problem = token_binding_problem(address.value if address else None, "vault:token" in config)
    if problem:
        raise PromotionRefused(f"stack {stack.name}: {problem}")


@dataclass
class Promotion:
    """One promotion; `say` prints progress (a function so tests can capture it)."""

    project: Path
    source: str
    target: str
    source_env: Mapping[str, str]
    target_env: Mapping[str, str]
    source_config_file: str | None = None
    dry_run: bool = False
    allow_replace: bool = False
    say: Callable[[str], None] = print

    def run(self) -> None:
        dirty = working_tree_changes(self.project)
        if dirty:
            listed = "\n".join(f"    {line}" for line in dirty[:20])
            raise PromotionRefused(
                "the working tree has uncommitted changes; commit or stash them, so that "
                f"what is promoted is a commit:\n{listed}"
            )
        head = head_commit(self.project)
        source = open_stack(self.source, self.project, self.source_env)
        target = open_stack(self.target, self.project, self.target_env)
        check_token_binding(source)
        check_token_binding(target)

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

        recorder = StepRecorder()
        try:
            preview = target.preview(refresh=True, on_event=recorder)
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
        if self.dry_run:
            self.say("dry run: stopping before `pulumi up`")
            return

        message = f"promote {self.source}@{head[:12]} to {self.target}"
        result = target.up(refresh=True, message=message)
        target.workspace.set_tag(self.target, TAG_SOURCE, self.source)
        target.workspace.set_tag(self.target, TAG_COMMIT, head)
        changed = pending_changes(result.summary.resource_changes or {})
        self.say(f"target {self.target}: {changed or 'no changes'}; {message}")


def dev_stack_environment(
    project: Path, base: Mapping[str, str]
) -> tuple[dict[str, str], str] | None:
    """The environment and config file `make up` uses for the dev stack, if it ran here."""
    layout = dev_stack.Layout(project)
    server = openbao.load_recorded(layout.dev_dir / openbao.STATE_FILE)
    if server is None or not layout.generated_config.exists():
        return None
    return dev_stack.pulumi_env(base, layout.state_dir, server), str(layout.generated_config)


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
        help="promote even if the target would replace/delete its auth mount or namespace",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    base_env = dict(os.environ)
    source_env: Mapping[str, str] = base_env
    config_file = None
    dev = (
        dev_stack_environment(args.project_dir.resolve(), base_env)
        if args.source == "dev"
        else None
    )
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
    )
    try:
        promotion.run()
    except PromotionRefused as refused:
        print(f"promotion {args.source} -> {args.target} refused: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
