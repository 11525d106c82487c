"""What the deploying token must be allowed, path by path, and what it lacks: pure rules.

A token missing one capability would otherwise fail half-way through an `up`, after writing
some objects (the mount, say) and not others (its role). So before anything is written the
program asks Vault what the token may do on every path this stack touches
(`sys/capabilities-self`) and refuses, naming each path and each missing capability.

The rules are `deployer-policy.hcl`'s, for this stack's names (a test keeps the two the
same). A preview needs only the reads: a read-only token can run the scheduled
`pulumi preview --expect-no-changes` that alerts on drift.
"""

from collections.abc import Mapping

from .config import StackSettings

MANAGE = frozenset({"create", "read", "update", "delete"})
READ = frozenset({"read"})
# Vault's answer for a root token: everything.
ROOT = "root"


def required_capabilities(
    stack: StackSettings, child_token: bool = True, prefix: str = ""
) -> dict[str, frozenset[str]]:
    """Every path this stack's `up` touches, with the capabilities it needs there.

    Asked in the token's own namespace, as the provider uses it: the token store's paths
    there, every other path under `prefix` (the provider's namespace relative to the token's,
    "" when they are the same), and a cluster's paths under its own namespace too.
    `child_token`: the provider logs in with a child token of this one unless
    `vault:skipChildToken` is set.
    """
    rules: dict[str, frozenset[str]] = {"auth/token/lookup-self": READ}
    if child_token:
        rules["auth/token/create"] = frozenset({"update"})
    stack_rules = _stack_rules(stack)
    under = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return {**rules, **{under + path: needed for path, needed in stack_rules.items()}}


def _stack_rules(stack: StackSettings) -> dict[str, frozenset[str]]:
    rules: dict[str, frozenset[str]] = {}
    namespaces = sorted({c.settings.namespace for c in stack.clusters if c.settings.namespace})
    if namespaces:
        rules["sys/namespaces"] = frozenset({"list"})
    for namespace in namespaces:
        rules[f"sys/namespaces/{namespace}"] = MANAGE
    for cluster in stack.clusters:
        settings = cluster.settings
        inside = f"{settings.namespace}/" if settings.namespace else ""
        auth = settings.auth_path
        rules[f"{inside}sys/auth/{auth}"] = MANAGE | {"sudo"}
        rules[f"{inside}sys/mounts/auth/{auth}"] = READ
        rules[f"{inside}sys/mounts/auth/{auth}/tune"] = frozenset({"read", "update"})
        rules[f"{inside}auth/{auth}/config"] = frozenset({"create", "read", "update"})
        for role in (settings.role_name, *(role.name for role in settings.roles)):
            rules[f"{inside}auth/{auth}/role/{role}"] = MANAGE
        for policy in settings.policy_names():
            rules[f"{inside}sys/policies/acl/{policy}"] = MANAGE
        if settings.manage_kv_mount:
            rules[f"{inside}sys/mounts/{settings.kv_mount}"] = MANAGE
            rules[f"{inside}sys/mounts/{settings.kv_mount}/tune"] = frozenset({"read", "update"})
    return rules


def for_preview(rules: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """What a preview needs of `rules`: the reads, listing and the child token; and `sudo`
    on `sys/auth/<path>`, which reading an auth mount's entry needs."""
    kept = {"auth/token/create"}
    preview = {}
    for path, needed in rules.items():
        if path in kept:
            preview[path] = needed
        elif needed & {"read", "list"}:
            reads = {"read", "list"} | ({"sudo"} if "/sys/auth/" in f"/{path}" else set())
            preview[path] = needed & reads
    return preview


def missing_capabilities(
    required: Mapping[str, frozenset[str]], granted: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    """Per path, the capabilities required and not granted (sorted); {} when none lacks."""
    missing = {}
    for path, needed in required.items():
        has = set(granted.get(path) or ())
        if ROOT in has:
            continue
        if "update" in has and "/role/" not in path:
            # Only a role checks whether it exists: everywhere else Vault takes every write
            # for an update, so `update` alone is enough.
            has.add("create")
        lacking = needed if "deny" in has else needed - has
        if lacking:
            missing[path] = sorted(lacking)
    return missing


def missing_problems(setting: str, missing: Mapping[str, list[str]]) -> list[str]:
    """One line per path the token lacks capabilities on, saying how to grant them."""
    return [
        f"{setting}: the token may not {', '.join(lacking)} `{path}`, which this stack needs;"
        f' add `path "{path}" {{ capabilities = {_hcl_list(lacking)} }}` to its policy'
        " (deployer-policy.hcl has them all)"
        for path, lacking in missing.items()
    ]


def _hcl_list(values: list[str]) -> str:
    return "[" + ", ".join(f'"{value}"' for value in values) + "]"
