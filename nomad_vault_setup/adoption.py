"""Taking over what `nomad setup vault` made, without re-creating anything: pure rules.

A cluster prepared by hand already has the JWT mount every running job logged in at. A
re-created mount gets a new accessor, and every job's entity alias and templated policy break
at once, so with `adopt: true` the first `up` *imports* the namespace, mount, policy and role
(Pulumi's `import` option) instead of creating them. Pulumi's import does not stop on differing
inputs (it imports, then updates), so the live objects are compared with the settings first,
and any difference is refused naming the setting that would make it match: adoption changes
nothing a running job depends on.

Three writes are expected and not differences: the policy gains this stack's marker line (its
rules are compared by meaning, not bytes), the namespace's `created-by: nomad-setup` tag
becomes this stack's (so `nomad setup vault -destroy` no longer deletes it), and the auth
config's algorithm list is written in this program's order.

Objects inside a namespace are imported with the provider's `TERRAFORM_VAULT_NAMESPACE_IMPORT`
set to that namespace, which redirects every provider call for an object without a namespace
into it: so that step imports only the inner objects, on a stack that manages nothing else,
and the namespace itself is imported by the next `up`, without the variable.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .config import Cluster, StackSettings
from .config.fields import hcl_parser, policy_name
from .durations import format_duration
from .ownership import CREATED_BY, STACK_KEY
from .policy import alias_metadata, render_workload_policy
from .vault_setup import (
    CLAIM_MAPPINGS,
    JWT_SUPPORTED_ALGS,
    NOTHING_IMPORTED,
    USER_CLAIMS,
    Imports,
)

# The provider's environment variable for importing objects inside a namespace.
NAMESPACE_IMPORT_VARIABLE = "TERRAFORM_VAULT_NAMESPACE_IMPORT"
# The tag `nomad setup vault` puts on the namespace it creates.
NOMAD_SETUP_TAG = "nomad-setup"


@dataclass(frozen=True)
class LiveInstall:
    """What one cluster's paths hold on the server, read before anything is written.

    None where there is nothing: `mount` is the `sys/auth/<path>` entry, `config` the auth
    method's config, `role` the default role, `policy` the workload policy's text;
    `extra_roles` the names of the cluster's extra roles that already exist on the mount.
    """

    mount: Mapping[str, Any] | None = None
    config: Mapping[str, Any] | None = None
    role: Mapping[str, Any] | None = None
    policy: str | None = None
    extra_roles: tuple[str, ...] = ()


NOTHING = Imports()


@dataclass(frozen=True)
class Adoption:
    """What this run adopts: objects per cluster name, namespaces by path.

    In the first step of adopting a namespace's contents (`namespaces_deferred`) the provider
    reads every object that has no namespace of its own inside that namespace, so no Namespace
    resource may be registered in that run: the next one adopts the namespace.
    """

    imports: Mapping[str, Imports] = field(default_factory=dict)
    namespaces: frozenset[str] = frozenset()
    namespaces_deferred: bool = False

    def of(self, cluster: Cluster) -> Imports:
        """The import ids of one cluster's objects."""
        return self.imports.get(cluster.name, NOTHING_IMPORTED)

    def namespace_id(self, path: str) -> str | None:
        """The import id of the namespace at `path`, when this run adopts it."""
        return f"{path}/" if path in self.namespaces else None


NOTHING_ADOPTED = Adoption()


def is_nomad_setups(metadata: Mapping[str, str] | None) -> bool:
    """Whether a namespace's custom metadata is the tag `nomad setup vault` gives it."""
    metadata = metadata or {}
    return metadata.get(CREATED_BY) == NOMAD_SETUP_TAG and STACK_KEY not in metadata


def import_ids(cluster: Cluster, live: LiveInstall) -> Imports:
    """The ids pulumi-vault imports each existing object by (REFERENCE.md)."""
    settings = cluster.settings
    return Imports(
        auth=settings.auth_path if live.mount is not None else None,
        policy=settings.policy_name if live.policy is not None else None,
        role=(
            f"auth/{settings.auth_path}/role/{settings.role_name}"
            if live.role is not None
            else None
        ),
    )


def acl_rules(text: str) -> dict[str, frozenset[str]] | None:
    """A policy's meaning: each path's capabilities (None when it is not such a policy, or
    when this parser could not see all of it).

    pyhcl keeps only the last of two blocks for one path, or of two `capabilities` in one
    block, where Vault merges them: a text that repeats either is not compared, only refused.
    """
    try:
        parsed = hcl_parser().parse(text)
    except ValueError:
        return None
    paths = parsed.get("path") if isinstance(parsed, dict) else None
    if set(parsed) != {"path"} or not isinstance(paths, dict):
        return None
    if len(re.findall(r'(?m)^\s*path\s*"', text)) != len(paths):
        return None  # a path repeated: Vault would merge what pyhcl drops
    rules = {}
    for path, body in paths.items():
        capabilities = body.get("capabilities") if isinstance(body, dict) else None
        if not isinstance(capabilities, list) or set(body) != {"capabilities"}:
            return None
        if not all(isinstance(capability, str) for capability in capabilities):
            return None  # `capabilities` repeated in one block, or not a list of names
        rules[path] = frozenset(capabilities)
    return rules


def _kv_mount_read(rules: Mapping[str, frozenset[str]], accessor: str) -> str | None:
    """The KV mount a `nomad setup vault` policy for this accessor reads, if it is one
    (`-kv-path`, Nomad >= 2.0.4)."""
    namespace = alias_metadata(accessor, "nomad_namespace")
    job_secrets = re.escape(f"/data/{namespace}/{alias_metadata(accessor, 'nomad_job_id')}/*")
    for path in rules:
        match = re.fullmatch(f"(.+){job_secrets}", path)
        if match and rules == acl_rules(render_workload_policy(accessor, match[1])):
            return match[1]
    return None


def _entry(name: str, live: Any, wanted: Any, key: str | None, fix: str = "") -> str:
    """One difference: what Vault holds, what the settings give, how to make them match
    (a setting only when it can take the live value: else it is changed in Vault first)."""
    if key is None or not (fix or live):
        how = f"this program always writes {wanted!r}: change it in Vault first, or do not adopt"
    else:
        how = f"set `{key}: {fix or live}` to adopt it as it is"
    return f"{name} is {live!r} in Vault, the settings give {wanted!r}; {how}"


def _accepted(setting: Callable[[str], str], value: str) -> bool:
    """Whether the setting's own validator takes the live value (else it is no suggestion)."""
    try:
        setting(value)
    except ValueError:
        return False
    return True


def _listed(value: Any) -> list[str]:
    """A list field as Vault may answer it: a list, one comma-separated string, or nothing."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",")]
    return [str(part) for part in value]


def _config_differences(cluster: Cluster, config: Mapping[str, Any]) -> list[tuple[str, str]]:
    settings = cluster.settings
    found = []
    if (config.get("jwks_url") or "") != settings.jwks_url:
        found.append(
            (
                "jwksUrl",
                _entry("the JWKS URL", config.get("jwks_url"), settings.jwks_url, "jwksUrl"),
            )
        )
    if (config.get("jwks_ca_pem") or "").strip() != settings.jwks_ca_pem.strip():
        found.append(
            (
                "jwksCaFile",
                "the JWKS CA certificate differs from jwksCaFile's: point jwksCaFile at the"
                " certificate the mount trusts (`-jwks-ca-file` of `nomad setup vault`)",
            )
        )
    if (config.get("default_role") or "") != settings.role_name:
        found.append(
            (
                "roleName",
                _entry(
                    "the mount's default role",
                    config.get("default_role"),
                    settings.role_name,
                    "roleName",
                ),
            )
        )
    if set(_listed(config.get("jwt_supported_algs"))) != set(JWT_SUPPORTED_ALGS):
        algs = _listed(config.get("jwt_supported_algs"))
        found.append(("authPath", _entry("jwt_supported_algs", algs, JWT_SUPPORTED_ALGS, None)))
    for unmanaged in ("bound_issuer", "oidc_discovery_url", "jwt_validation_pubkeys"):
        if config.get(unmanaged):
            found.append(
                ("authPath", f"{unmanaged} is set in Vault and this program never sets it")
            )
    return found


def _identity_claim_of(user_claim: Any) -> str | None:
    return next((key for key, claim in USER_CLAIMS.items() if claim == user_claim), None)


def _role_differences(cluster: Cluster, role: Mapping[str, Any]) -> list[tuple[str, str]]:
    settings = cluster.settings
    found = []
    audiences = _listed(role.get("bound_audiences"))
    if set(audiences) != set(settings.audiences):
        fix = "[" + ", ".join(audiences) + "]" if audiences else ""
        found.append(
            (
                "audiences",
                _entry(
                    "the role's bound audiences",
                    audiences,
                    list(settings.audiences),
                    "audiences",
                    fix,
                ),
            )
        )
    wanted_claim = USER_CLAIMS[settings.identity_claim]
    if role.get("user_claim") != wanted_claim:
        claim = _identity_claim_of(role.get("user_claim"))
        found.append(
            (
                "identityClaim",
                _entry(
                    "the role's user claim",
                    role.get("user_claim"),
                    wanted_claim,
                    "identityClaim" if claim else None,
                    claim or "",
                ),
            )
        )
    if role.get("token_period") != settings.token_period:
        period = role.get("token_period")
        fix = format_duration(period) if isinstance(period, int) and period > 0 else ""
        found.append(
            (
                "tokenPeriod",
                _entry(
                    "the role's token period (seconds)",
                    period,
                    settings.token_period,
                    "tokenPeriod" if fix else None,
                    fix,
                ),
            )
        )
    policies = _listed(role.get("token_policies"))
    if policies != [settings.policy_name]:
        fix = policies[0] if len(policies) == 1 and _accepted(policy_name, policies[0]) else ""
        found.append(
            (
                "policyName",
                _entry(
                    "the role's token policies",
                    policies,
                    [settings.policy_name],
                    "policyName" if fix else None,
                    fix,
                ),
            )
        )
    fixed: dict[str, Any] = {
        "role_type": "jwt",
        "user_claim_json_pointer": True,
        "claim_mappings": CLAIM_MAPPINGS,
        "token_type": "service",
        "token_explicit_max_ttl": 0,
    }
    for name, wanted in fixed.items():
        if role.get(name) != wanted:
            found.append(("roleName", _entry(f"the role's {name}", role.get(name), wanted, None)))
    unset = (
        "groups_claim",
        "token_strictly_bind_ip",
        "bound_claims",
        "bound_subject",
        "token_ttl",
        "token_max_ttl",
        "token_bound_cidrs",
        "bound_cidrs",
        "token_num_uses",
        "token_no_default_policy",
    )
    for name in unset:
        if role.get(name):
            found.append(
                (
                    "roleName",
                    f"the role's {name} is {role.get(name)!r} in Vault and this"
                    " program never sets it: clear it in Vault first, or do not adopt",
                )
            )
    return found


def _policy_differences(cluster: Cluster, text: str, accessor: str) -> list[tuple[str, str]]:
    settings = cluster.settings
    live = acl_rules(text)
    if live == acl_rules(render_workload_policy(accessor, settings.kv_mount)):
        return []
    kv_mount = _kv_mount_read(live or {}, accessor)
    if kv_mount is not None:
        return [
            (
                "kvMount",
                _entry("the KV mount the policy reads", kv_mount, settings.kv_mount, "kvMount"),
            )
        ]
    return [
        (
            "policyName",
            f"policy {settings.policy_name!r} is not `nomad setup vault`'s workload policy for"
            f" this mount (accessor {accessor}) and KV mount {settings.kv_mount!r}: adopting"
            " would replace its rules. Restore it, or choose another policyName",
        )
    ]


def install_differences(cluster: Cluster, live: LiveInstall) -> list[str]:
    """Every way the live install differs from the settings, each naming its setting.

    Empty when adopting changes nothing a running job relies on. Fields the program does not
    set are compared with their zero value: a later `up` could not keep them either.
    """
    settings = cluster.settings
    where = f" in namespace {settings.namespace!r}" if settings.namespace else ""
    if live.mount is None:
        return [
            f"{cluster.setting('adopt')}: there is no auth mount at {settings.auth_path!r}{where}"
            " to adopt: check authPath and namespace (and the provider's address), or remove"
            " adopt to create new objects"
        ]
    mount = live.mount
    found: list[tuple[str, str]] = []
    if mount.get("type") != "jwt" or mount.get("local"):
        kind = f"a {'local ' if mount.get('local') else ''}{mount.get('type')!r} mount"
        found.append(("authPath", f"the mount is {kind}, not a replicated 'jwt' mount"))
    found += _config_differences(cluster, live.config or {})
    if live.role is not None:  # a missing role is created: no running job holds its token
        found += _role_differences(cluster, live.role)
    if live.policy is not None:
        found += _policy_differences(cluster, live.policy, mount.get("accessor", ""))
    for name in live.extra_roles:
        found.append(
            (
                "roles",
                f"role {name!r} already exists on the mount; `nomad setup vault` makes no"
                " such role, so it is not adopted: rename it in `roles`, or delete it",
            )
        )
    return [
        f"{cluster.setting(key)}: adopting {settings.auth_path!r}{where}: {text}"
        for key, text in found
    ]


def namespace_import_problems(
    stack: StackSettings, variable: str, needs_inner_import: Mapping[str, bool], managed: bool
) -> list[str]:
    """Whether this run may import with `TERRAFORM_VAULT_NAMESPACE_IMPORT` as it is set.

    `variable` is its value ("" unset), `needs_inner_import` says, per cluster name, whether
    the cluster's objects inside its namespace are still to be imported, `managed` whether the
    stack manages anything in Vault already. The variable redirects into its namespace every
    provider call for an object without a namespace of its own (a refresh, a create), so it is
    accepted only for the first step of adopting that namespace, on a stack that has nothing
    else; and that step is required before the namespace is adopted.
    """
    wanted = variable.strip("/")
    adopting = {
        c.settings.namespace
        for c in stack.clusters
        if c.settings.namespace and needs_inner_import.get(c.name)
    }
    if not variable:
        return [
            f"{_first_setting(stack, path)}: the objects inside namespace {path!r} are adopted"
            f" first, on their own: run `{NAMESPACE_IMPORT_VARIABLE}={path} pulumi up`, then"
            " `pulumi up` (without the variable) adopts the namespace itself"
            for path in sorted(adopting)
        ]
    why = (
        f"{NAMESPACE_IMPORT_VARIABLE}={variable} makes the Vault provider read and write every"
        f" object without a namespace of its own inside namespace {wanted!r}; it is only for the"
        " first step of adopting that namespace's contents"
    )
    problems = []
    if adopting != {wanted}:
        problems.append(f"{why}, and no `adopt: true` cluster needs that now: unset it")
    others = [c for c in stack.clusters if c.settings.namespace != wanted]
    if others or managed:
        problems.append(
            f"{why}, on a stack that manages nothing else: adopt into a stack of its own"
            " first, and add other clusters after the adoption"
        )
    return problems[:1]


def _first_setting(stack: StackSettings, path: str) -> str:
    cluster = next(c for c in stack.clusters if c.settings.namespace == path)
    return cluster.setting("namespace")
