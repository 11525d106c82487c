"""What this stack owns in Vault, decided before anything is written: pure rules.

Vault answers a write to an existing namespace or policy with success, so without these rules a
stack would silently take over an object someone else made, overwrite it on `up` and delete it
(with everything inside, for a namespace) on `destroy`. Ownership is written on the objects
themselves, so any run can check it: a namespace carries `created-by: nomad-vault-setup` in its
custom metadata, a policy (like a delivered agent file) starts with a comment line naming the
stack that wrote it.
"""

from collections.abc import Collection, Mapping, Sequence

PROJECT = "nomad-vault-setup"


def marker_prefix(owner: str) -> str:
    """What everything stack `owner` ("<project>/<stack>") writes starts with: the part of
    the marker line that is compared."""
    return f"# Written by {PROJECT} (stack {owner}):"


def marker_line(owner: str) -> str:
    """The first line (a comment, in HCL) of every policy and agent file stack `owner` writes:
    who owns it, and what runs will do with it."""
    return f"{marker_prefix(owner)} pulumi up rewrites it, pulumi destroy removes it."


def policy_marker(project: str, stack: str) -> str:
    """The marker line of the policies `stack` of `project` writes."""
    return marker_line(f"{project}/{stack}")


def marked(text: str, marker: str) -> str:
    """HCL policy `text` with the owner's marker as its first line (a comment)."""
    return f"{marker}\n{text}"


def foreign_policy_problem(
    name: str,
    setting: str,
    live_text: str | None,
    marker: str,
    managed: bool = False,
    ours: Collection[str] = (),
) -> str | None:
    """Why the stack must not write policy `name`, if it must not.

    `live_text` is the policy's text on the server (None: there is none). It is this stack's
    when the stack's last update `managed` it (its outputs list it: then a hand edit is drift
    to repair, whatever the text says), when it carries the stack's marker line (written by a
    run of this stack that did not finish, or handed over on purpose), or when it is exactly
    one of `ours`: the workload policy an earlier release of this program wrote, unmarked, for
    the stack's own auth mount (its text names that mount's accessor, so no other install has
    it).
    """
    if live_text is None or managed or marker in live_text.splitlines() or live_text in ours:
        return None
    return (
        f"{setting}: policy {name!r} already exists and was not written by this stack; `pulumi up`"
        " would overwrite it and `pulumi destroy` would delete it. Choose another name, or, to"
        " hand it to this stack on purpose, add this line to its text first:\n"
        f"      {marker}"
    )


def foreign_namespace_problem(
    path: str, setting: str, existing: Sequence[str], metadata: Mapping[str, str] | None
) -> str | None:
    """Why this program must not take over the namespace at `path`, if it must not.

    Like `nomad setup vault -destroy`, only a namespace carrying our tag is ours: deleting a
    namespace deletes everything in it.
    """
    if path not in {entry.strip("/") for entry in existing}:
        return None
    owner = (metadata or {}).get("created-by")
    if owner == PROJECT:
        return None
    return (
        f"{setting}: namespace {path!r} already exists and was not created by {PROJECT} "
        f"(created-by: {owner or 'unset'}); managing it would delete it and everything in it "
        "on `pulumi destroy`. Choose another `namespace`, or, to hand it to this stack on "
        f"purpose, tag it first: custom_metadata created-by={PROJECT}"
    )
