"""One local Pulumi stack on the Automation API: how `make`, `make promote`, the bench and the
e2e tier run the engine.

Everything here that drives Pulumi goes through this module: one builder of the engine's
environment (`pulumi_env`), one check for the CLI and its message (`require_cli`), one way to
open or create a stack (`open_stack`), which never changes the stack the user has selected, one
timed raw command for the bench (`run`), and the throwaway stack, in a copy of the project,
that the e2e tier and the bench run (`throwaway_stack`).

Pulumi is made fast where that is safe (measured on this project and machine):
- `PIP_DISABLE_PIP_VERSION_CHECK=1` for every command: the Python language host runs pip on
  every `up` and `preview`, and pip's version check costs ~0.1 s each time;
- `PULUMI_SKIP_CHECKPOINTS=true` only for throwaway stacks (the dev stack of `make up`, the e2e
  tier, the bench): the local backend rewrites the whole state after every step, so with 50
  clusters a first `up` takes about twice as long with checkpoints and a `destroy` about four
  times (`make bench` measures it); but an `up` that dies midway without checkpoints leaves no
  record of what it had created. Real stacks (`make promote`) keep their checkpoints, whatever
  the shell says.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml
from pulumi import automation as auto

from devtools.project_copy import copy_project
from nomad_vault_setup.resource_types import PROJECT

CONFIG_PREFIX = f"{PROJECT}:"

PULUMI_MISSING = (
    "the Pulumi CLI ('pulumi') is not on PATH. Install it "
    "(https://www.pulumi.com/docs/install/, e.g. `curl -fsSL https://get.pulumi.com | sh`), "
    "put it on PATH and run this again."
)
# The caller's settings that would send a local stack to another backend or unlock it with
# another passphrase; blanked (the Automation API lays its variables over the caller's own).
FOREIGN_BACKEND = ("PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_ORG")


class PulumiMissing(RuntimeError):
    """No `pulumi` on PATH: nothing here can run."""


class StackMissing(LookupError):
    """The stack asked for does not exist in its backend."""


class VaultServer(Protocol):
    """Where a local stack's Vault is and how to get in (a dev server, the bench's server)."""

    address: str
    token: str


def require_cli() -> str:
    """The path of the `pulumi` CLI, or PulumiMissing with how to get it."""
    found = shutil.which("pulumi")
    if found is None:
        raise PulumiMissing(PULUMI_MISSING)
    return found


def pulumi_env(
    *,
    state_dir: Path | None = None,
    passphrase: str | None = None,
    vault: VaultServer | None = None,
    skip_checkpoints: bool = False,
    base: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The variables every Pulumi command of a stack runs with, laid over the caller's `base`.

    Without `state_dir`, a real stack: the caller's backend, passphrase and Vault settings
    apply. With it, a local stack in that directory (file:// backend, so no login) that must
    reach only its own server: the caller's VAULT_* and other backends' settings are blanked
    (empty is unset for Pulumi and the Vault provider), and `vault`, if any, becomes
    VAULT_ADDR / VAULT_TOKEN (the dev stack's; other stacks carry their own in their config).
    """
    env = {
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PULUMI_SKIP_CHECKPOINTS": "true" if skip_checkpoints else "false",
    }
    if state_dir is not None:
        env |= {name: "" for name in base if name.startswith("VAULT_") or name in FOREIGN_BACKEND}
        env["PULUMI_BACKEND_URL"] = Path(state_dir).resolve().as_uri()
    if passphrase is not None:
        env["PULUMI_CONFIG_PASSPHRASE"] = passphrase
    if vault is not None:
        env |= {"VAULT_ADDR": vault.address, "VAULT_TOKEN": vault.token}
    return env


class _Workspace(auto.LocalWorkspace):
    """A LocalWorkspace that never selects a stack.

    Every command the Automation API runs names its stack (`--stack`), so selecting one would
    only change where the user's own `pulumi` commands in the project go.
    """

    def select_stack(self, stack_name: str) -> None:
        if not self.has_stack(stack_name):
            backend = {**os.environ, **self.env_vars}.get("PULUMI_BACKEND_URL")
            raise StackMissing(
                f"there is no stack {stack_name} in {backend or 'your current Pulumi backend'}"
            )

    def create_stack(self, stack_name: str) -> None:
        self.pulumi_command.run(
            ["stack", "init", stack_name, "--no-select"], self.work_dir, self.env_vars
        )

    def has_stack(self, stack_name: str) -> bool:
        """Whether the backend holds `stack_name` (plain, or `org/project/name` qualified)."""
        short = stack_name.rsplit("/", 1)[-1]
        return any(entry.name.rsplit("/", 1)[-1] == short for entry in self.list_stacks())


def open_stack(
    name: str, work_dir: Path, env: Mapping[str, str], *, create: bool = False
) -> auto.Stack:
    """Stack `name` of the project in `work_dir`, run with `env` (see `pulumi_env`); created
    if missing when `create`, else StackMissing."""
    require_cli()
    workspace = _Workspace(work_dir=str(work_dir), env_vars=dict(env))
    if create and not workspace.has_stack(name):
        return auto.Stack.create(name, workspace)
    return auto.Stack.select(name, workspace)


def outputs(stack: auto.Stack) -> dict[str, Any]:
    """The stack's outputs, plain values (secrets in clear)."""
    return {name: output.value for name, output in stack.outputs().items()}


@dataclass(frozen=True)
class Run:
    """One CLI command: how long it took, whether it succeeded, what it printed."""

    seconds: float
    ok: bool
    output: str


def run(
    stack: auto.Stack,
    *args: str,
    check: bool = True,
    on_output: Callable[[str], Any] | None = None,
) -> Run:
    """`pulumi <args> --stack <name>` in the stack's project, timed: that one command and
    nothing else (`Stack.up` also reads the outputs and the last update back: three more).

    A failure raises `auto.CommandError` unless `check` is off."""
    workspace = stack.workspace
    started = time.perf_counter()
    try:
        result = workspace.pulumi_command.run(
            [*args, "--stack", stack.name],
            workspace.work_dir,
            workspace.env_vars,
            on_output,
            on_output,
        )
    except auto.CommandError as failed:
        if check:
            raise
        return Run(time.perf_counter() - started, False, str(failed))
    return Run(time.perf_counter() - started, True, f"{result.stdout}\n{result.stderr}")


def throwaway_stack(root: Path, name: str, passphrase: str, vault: VaultServer) -> auto.Stack:
    """Stack `name` in a fresh copy of the project (`root/project`, state in `root/state`),
    without checkpoints, carrying `vault`'s address and (secret) token in its config as every
    stack but dev must."""
    state_dir = root / "state"
    state_dir.mkdir(parents=True)
    env = pulumi_env(state_dir=state_dir, passphrase=passphrase, skip_checkpoints=True)
    stack = open_stack(name, copy_project(root / "project"), env, create=True)
    stack.set_all_config(
        {
            "vault:address": auto.ConfigValue(vault.address),
            "vault:token": auto.ConfigValue(vault.token, secret=True),
        }
    )
    return stack


def stack_file(stack: auto.Stack) -> Path:
    return Path(stack.workspace.work_dir) / f"Pulumi.{stack.name.rsplit('/', 1)[-1]}.yaml"


def configure(stack: auto.Stack, **settings: Any) -> None:
    """Replace the stack's `nomad-vault-setup:` config with `settings` (camelCase keys), as a
    user would by editing its stack file; the provider's settings (`vault:`) and the program's
    secret values are kept, as that user would keep them."""
    path = stack_file(stack)
    document = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
    kept = {
        key: value
        for key, value in (document.get("config") or {}).items()
        if not key.startswith(CONFIG_PREFIX) or (isinstance(value, dict) and "secure" in value)
    }
    config = kept | {CONFIG_PREFIX + key: value for key, value in settings.items()}
    path.write_text(yaml.safe_dump(document | {"config": config}))
