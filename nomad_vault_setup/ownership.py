"""What this stack owns in Vault, decided before anything is written: pure rules.

Vault answers a write to an existing namespace or policy with success, so without these rules a
stack would silently take over an object someone else made, overwrite it on `up` and delete it
(with everything inside, for a namespace) on `destroy`. Ownership is written on the objects
themselves, so any run can check it: a namespace carries `created-by: nomad-vault-setup` and
`stack: <owner>` in its custom metadata, a policy (like a delivered agent file) starts with a
comment line naming the stack that wrote it. The owner is "<organization>/<project>/<stack>".

Besides, what the stack's last update managed is recorded in its outputs; that record is
trusted only when it was made on the same Vault cluster and provider namespace (`vault_server`),
so a stack pointed at another server cannot claim that server's objects.
"""

from collections.abc import Collection, Mapping
from typing import Any

import pulumi

PROJECT = "nomad-vault-setup"
# The custom metadata of a namespace this program creates.
CREATED_BY, STACK_KEY = "created-by", "stack"
_MARKER_START = f"# Written by {PROJECT} (stack "
# The description of a KV mount the program creates (`manageKvMount`).
KV_MOUNT_DESCRIPTION = f"Nomad workload secrets (managed by {PROJECT})"


def stack_owner() -> str:
    """The stack this program runs as, as markers name it: "<organization>/<project>/<stack>"
    (the organization too: two backends may hold stacks of the same name)."""
    return f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"


def marker_prefix(owner: str) -> str:
    """What everything stack `owner` writes starts with: the part of the marker line that is
    compared."""
    return f"{_MARKER_START}{owner}):"


def marker_line(owner: str) -> str:
    """The first line (a comment, in HCL) of every policy and agent file stack `owner` writes:
    who owns it, and what runs will do with it."""
    return f"{marker_prefix(owner)} pulumi up rewrites it, pulumi destroy removes it."


def marked(text: str, owner: str) -> str:
    """HCL policy `text` with the owner's marker as its first line (a comment)."""
    return f"{marker_line(owner)}\n{text}"


def mount_description(owner: str) -> str:
    """The description of an auth mount stack `owner` enables: Vault sets it only then, so it
    tells a mount a run of this stack made (even one that did not finish) from any other."""
    return f"Nomad workload identities (managed by {PROJECT}, stack {owner})"


def foreign_mount_problem(
    path: str,
    setting: str,
    adopt_setting: str | None,
    live: Mapping[str, Any] | None,
    owner: str,
    managed: bool,
) -> str | None:
    """Why the stack must not create the auth mount at `path`, if it must not.

    `live` is the mount's `sys/auth` entry (None: there is none). It is the stack's when the
    stack's last update `managed` it, or when its description names the stack. Any other mount
    is someone else's, and the likeliest someone is `nomad setup vault`: adopting is the way in
    (where the settings offer `adopt_setting`).
    """
    if live is None or managed or live.get("description") == mount_description(owner):
        return None
    adopt = (
        f" If `nomad setup vault` made it, set `{adopt_setting}: true` to adopt it, jobs and all"
        " (docs/adoption.md); otherwise choose another auth path"
        if adopt_setting
        else " Choose another auth path"
    )
    return (
        f"{setting}: auth mount {path!r} already exists and was not made by this stack"
        f" (description: {live.get('description', '')!r}); creating it would fail.{adopt}"
    )


def namespace_metadata(owner: str) -> dict[str, str]:
    """The custom metadata that makes a namespace this stack's."""
    return {CREATED_BY: PROJECT, STACK_KEY: owner}


def foreign_policy_problem(
    name: str,
    setting: str,
    live_text: str | None,
    owner: str,
    managed: bool = False,
    ours: Collection[str] = (),
) -> str | None:
    """Why the stack must not write policy `name`, if it must not.

    `live_text` is the policy's text on the server (None: there is none). A first line naming
    another stack settles it: not ours. Otherwise it is this stack's when the stack's last
    update `managed` it (a trusted record: then a hand edit is drift to repair), when its first
    line is the stack's marker (written by a run of this stack that did not finish, or handed
    over on purpose), or when it is exactly one of `ours`: the workload policy an earlier
    release of this program wrote, unmarked, for the stack's own auth mount (its text names
    that mount's accessor, so no other install has it).
    """
    if live_text is None:
        return None
    first_line = live_text.split("\n", 1)[0]
    if first_line == marker_line(owner) or (
        not first_line.startswith(_MARKER_START) and (managed or live_text in ours)
    ):
        return None
    return (
        f"{setting}: policy {name!r} already exists and was not written by this stack; `pulumi up`"
        " would overwrite it and `pulumi destroy` would delete it. Choose another name, or, to"
        " hand it to this stack on purpose, make this its first line:\n"
        f"      {marker_line(owner)}"
    )


def foreign_namespace_problem(
    path: str, setting: str, metadata: Mapping[str, str] | None, owner: str, managed: bool
) -> str | None:
    """Why this stack must not take over the existing namespace at `path`, if it must not.

    Like `nomad setup vault -destroy`, only a namespace carrying our tag is ours, and only this
    stack's: deleting a namespace deletes everything in it. A namespace tagged by an earlier
    release (no `stack` key) is ours when the stack's trusted record says it `managed` it.
    """
    metadata = metadata or {}
    tagged_by = metadata.get(STACK_KEY)
    if metadata.get(CREATED_BY) == PROJECT and (
        tagged_by == owner or (tagged_by is None and managed)
    ):
        return None
    found = ", ".join(f"{key}={value}" for key, value in sorted(metadata.items())) or "none"
    return (
        f"{setting}: namespace {path!r} already exists and was not created by this stack "
        f"(custom metadata: {found}); managing it would delete it and everything in it on "
        "`pulumi destroy`. Choose another `namespace`, or, to hand it to this stack on purpose, "
        f"set its custom metadata {CREATED_BY}={PROJECT} and {STACK_KEY}={owner} first"
    )
