"""What one Nomad job can do in Vault under a cluster's setup: pure, no Vault token needed.

A job's token comes from a role whose bound claims its identity satisfies (the default role
binds none: every job of the cluster), and carries the workload policy plus the role's own.
The workload policy is templated on the entity alias's metadata, so what it grants depends
on the job's namespace and ID, and on the server:

- HashiCorp Vault before its 2026 fix, and OpenBao before 2.6.0, paste the value in as
  written: a `*` or `+` in a job ID then acts as a glob (acl.py), a `/` adds path segments,
  and a `+*` makes Vault refuse the whole policy (the token fails every request);
- OpenBao 2.6.0 and later refuse a rendered `*`, `+` or `/` (the job logs in, its token
  fails every request: measured on 2.7.2); Vault with the fix refuses `*` and `+` (modelled
  the same way; not measured here).

Under `identityClaim: job-id` every job with the same ID (any namespace, any region) is one
entity, and each login rewrites the alias metadata for every token of it: a job's token
grants, over time, what any of those jobs' metadata renders to. `states` are those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .acl import NOTHING, TEMPLATE, Acl, PolicyRefused, Rule, parse_rules
from .policy import render_workload_policy
from .server_kind import VaultServer, job_id_risks

# The accessor the audit renders the workload policy with when the stack's outputs do not
# give the real one: only the alias it names matters, never its spelling.
PLACEHOLDER_ACCESSOR = "auth_jwt_audit"
# Claims a job's identity carries that the audit knows from (region, namespace, job ID).
KNOWN_CLAIMS = ("nomad_namespace", "nomad_job_id")
# Characters a server treats specially in a rendered value, by the job-ID risk they carry.
RISKY_CHARACTERS = {"glob": "*+", "slash": "/"}


@dataclass(frozen=True, order=True)
class Job:
    """A Nomad job as its workload identity names it."""

    namespace: str
    id: str
    region: str = "global"

    def __str__(self) -> str:
        """`namespace/id`, `region:namespace/id` outside the global region (neither a region
        nor a namespace holds `:` or `/`), as written: reports make it printable."""
        where = "" if self.region == "global" else f"{self.region}:"
        return f"{where}{self.namespace}/{self.id}"


@dataclass(frozen=True)
class Role:
    """A JWT role of the cluster: who may use it (bound claims, glob patterns) and the
    policies its tokens carry. `unknown_policies` are named policies this stack does not
    write, whose text the audit cannot see."""

    name: str
    bound_claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    unknown_policies: tuple[str, ...] = ()
    unreadable_policy: bool = False

    def matches(self, job: Job) -> bool | None:
        """Whether `job`'s identity satisfies the bound claims; None when that depends on a
        claim the audit does not know (its task, allocation, ...): then it may."""
        undecided = False
        for claim, patterns in self.bound_claims.items():
            if claim not in KNOWN_CLAIMS:
                undecided = True
                continue
            value = job.namespace if claim == "nomad_namespace" else job.id
            if not any(glob_match(pattern, value) for pattern in patterns):
                return False
        return None if undecided else True


def go_lower(text: str) -> str:
    """Go's strings.ToLower: each character's own lower case (Python's str.lower turns `İ`
    into two characters and a final `Σ` into `ς`; Go does neither)."""
    return "".join("i" if char == "\u0130" else char.lower() for char in text)


def glob_match(pattern: str, value: str) -> bool:
    """Vault's bound-claims glob (ryanuber/go-glob): only `*` is special, and it matches any
    run of characters, `/` included."""
    if "*" not in pattern:
        return pattern == value
    parts = pattern.split("*")
    if not value.startswith(parts[0]) or not value.endswith(parts[-1]):
        return False
    position = len(parts[0])
    end = len(value) - len(parts[-1])
    for part in parts[1:-1]:
        found = value.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return position <= end


@dataclass(frozen=True)
class Cluster:
    """What the audit knows of one cluster's setup (from the stack's settings and outputs)."""

    name: str
    kv_mount: str
    identity_claim: str
    roles: tuple[Role, ...]
    accessor: str = PLACEHOLDER_ACCESSOR
    namespace: str = ""

    def workload_rules(self) -> tuple[Rule, ...]:
        rules = parse_rules(render_workload_policy(self.accessor, self.kv_mount))
        assert rules is not None, "the workload policy is plain HCL"
        return tuple(rules)

    def secrets_of(self, job: Job) -> str:
        """The KV v2 data path under which `job`'s secrets live."""
        return f"{self.kv_mount}/data/{job.namespace}/{job.id}"

    def entity(self, job: Job) -> str:
        """The name of `job`'s Vault entity alias as the server matches it: its ID alone under
        `identityClaim: job-id`, else `region:namespace:ID`; lower-cased, as Vault and
        OpenBao look aliases up (so `Web` and `web` are one entity: measured on 2.7.2)."""
        name = (
            job.id if self.identity_claim == "job-id" else f"{job.region}:{job.namespace}:{job.id}"
        )
        return go_lower(name)

    def same_entity(self, one: Job, other: Job) -> bool:
        return self.entity(one) == self.entity(other)


def refused_characters(server: VaultServer) -> str:
    """The characters that make `server` refuse a rendered value (and so the token)."""
    risks = job_id_risks(server)
    return "".join(chars for risk, chars in RISKY_CHARACTERS.items() if risk not in risks)


def render_rules(
    rules: Iterable[Rule], accessor: str, metadata: Mapping[str, str], refused: str
) -> tuple[Rule, ...]:
    """The rules a token carries once its entity's `metadata` fills the templates.

    A path templated on anything else (another mount's alias, the entity's name, a claim not
    mapped) does not render, and Vault drops it. Raises PolicyRefused when the server
    refuses a rendered value (`refused` characters) or the rendered text (`+*`).
    """
    prefix = f"identity.entity.aliases.{accessor}.metadata."
    rendered = []
    for rule in rules:
        values = []
        for expression in TEMPLATE.findall(rule.path):
            key = expression.removeprefix(prefix) if expression.startswith(prefix) else None
            values.append(metadata.get(key) if key else None)
        if None in values:
            continue
        if any(char in value for value in values for char in refused):  # type: ignore[operator]
            raise PolicyRefused(f"a rendered value contains one of {refused!r}")
        pieces = TEMPLATE.split(rule.path)  # text, expression, text, ...: fill the expressions
        pieces[1::2] = values
        rendered.append(Rule("".join(pieces), rule.capabilities))  # type: ignore[arg-type]
    return tuple(rendered)


def unknown_templates(rules: Iterable[Rule], accessor: str) -> list[str]:
    """The template expressions in `rules` other than the job's namespace and ID on this
    mount's alias (its task, the entity's name, another alias, ...): what they render to per
    job is not known here, so the rules using them are left out of the answers."""
    known = {f"identity.entity.aliases.{accessor}.metadata.{claim}" for claim in KNOWN_CLAIMS}
    return sorted({found for rule in rules for found in TEMPLATE.findall(rule.path)} - known)


@dataclass(frozen=True)
class Token:
    """A token `job` gets from `role`; `acls` are what it grants in each entity state (None:
    refused in that state), `states` the jobs whose login set that state."""

    role: Role
    may_use: bool | None  # None: depends on a claim the audit does not know
    states: tuple[Job, ...]
    acls: tuple[Acl | None, ...]

    @property
    def refused(self) -> bool:
        """The token fails every request whatever state the entity is in."""
        return all(acl is None for acl in self.acls)

    def capabilities(self, path: str) -> frozenset[str]:
        """What the token may do on `path` at some time: the union over entity states."""
        granted: frozenset[str] = NOTHING
        for acl in self.acls:
            if acl is not None:
                granted |= acl.capabilities(path)
        return granted


@dataclass(frozen=True)
class JobAccess:
    """Every token `job` can get on `cluster`, and what they grant."""

    cluster: Cluster
    job: Job
    tokens: tuple[Token, ...]

    def capabilities(self, path: str) -> frozenset[str]:
        granted: frozenset[str] = NOTHING
        for token in self.tokens:
            granted |= token.capabilities(path)
        return granted

    def token(self, role: str) -> Token | None:
        return next((token for token in self.tokens if token.role.name == role), None)

    @cached_property
    def rules(self) -> tuple[Rule, ...]:
        """Every rule its tokens carry in any state (for the listing and candidate search)."""
        seen: dict[Rule, None] = {}
        for token in self.tokens:
            for acl in token.acls:
                if acl is not None:
                    seen.update(dict.fromkeys(acl.rules))
        return tuple(seen)


def job_access(
    cluster: Cluster,
    job: Job,
    peers: Iterable[Job],
    refused: str,
    workload: tuple[Rule, ...],
    evaluated: dict[tuple[str, tuple[Job, ...]], tuple[Acl | None, ...]] | None = None,
) -> JobAccess:
    """What `job` can get: a token per role it may use, evaluated in every state its entity
    can be in (`peers`: the jobs sharing its entity, itself included). `evaluated` keeps
    each (role, states)'s evaluation for the jobs that share them: an ID shared by n jobs
    would otherwise be evaluated n² times."""
    states = tuple(sorted(set(peers) | {job}))
    evaluated = {} if evaluated is None else evaluated
    tokens = []
    for role in cluster.roles:
        may_use = role.matches(job)
        if may_use is False:
            continue
        if (role.name, states) not in evaluated:
            evaluated[(role.name, states)] = tuple(
                _evaluate([*workload, *role.rules], cluster.accessor, state, refused)
                for state in states
            )
        tokens.append(Token(role, may_use, states, evaluated[(role.name, states)]))
    return JobAccess(cluster, job, tuple(tokens))


def _evaluate(rules: list[Rule], accessor: str, state: Job, refused: str) -> Acl | None:
    """The token's ACL while its entity's metadata is `state`'s; None if the server refuses."""
    metadata = {"nomad_namespace": state.namespace, "nomad_job_id": state.id}
    try:
        return Acl(render_rules(rules, accessor, metadata, refused))
    except PolicyRefused:
        return None
