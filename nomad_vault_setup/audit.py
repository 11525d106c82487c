"""The access audit: for the Nomad jobs that exist, which secrets each can read, and what
is wrong with that, before a secret leaks. Pure: a function of the jobs, the stack's
settings and the server's kind and version (access.py evaluates each job's tokens).

Findings, by severity (`high` fails `make audit` and gates `make promote`):
- high `glob-job-id`, `slash-job-id`, `prefix-overlap`, `shared-entity`: a job reads
  another existing job's secrets through its ID (`*`, `+`, `web*`; `web/db` reading job
  `web`'s `db`; `web` reading everything of `web/db`) or through an entity it shares under
  `identityClaim: job-id`;
- medium `refused-job-id`: the server refuses the job's token on every request, so it reads
  nothing, not even its own secrets; `risky-job-id`: an ID that reads no other job today
  but would read one created later; `role-reads-other-jobs`: an extra role's own policy
  lets a job read other jobs' secrets; `broad-role`: an extra role usable by more than one
  job through a glob or a missing `nomad_job_id` bound;
- low `unused-role`: no job can use an extra role; `unreadable-secret`: a secret no job
  can read (from the list of secrets given);
- medium `undecided-template`: an extra role's policy templated on something other than the
  job's namespace and ID (its task names, which the job chooses): not counted, and a job
  may reach other jobs' secrets through it;
- info `undecided-role`, `unknown-policy`, `unreadable-policy`: what the audit could not
  see (claims it does not know per job, policies this stack does not write), so answers
  are a lower bound there.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .access import (
    Cluster,
    Job,
    JobAccess,
    Role,
    job_access,
    refused_characters,
    unknown_templates,
)
from .acl import Rule, parse_rules
from .config import StackSettings
from .config.schema import ClusterSettings
from .server_kind import VaultServer, job_id_risks

Severity = Literal["high", "medium", "low", "info"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")
READ = "read"
# A secret name no rule can name (no policy or job ID holds a NUL): `<kv>/data/<ns>/<job>/
# <WITNESS>` stands for every name no rule mentions when asking whether another job's token
# reaches there. A printable name could be targeted by a deny (`.../a*` shadows `any-...`).
WITNESS = "\0"
LISTED = 5  # jobs named per finding before "and N more"


@dataclass(frozen=True)
class Finding:
    severity: Severity
    code: str
    cluster: str
    subject: str  # the job or role it is about
    message: str
    job: Job | None = None  # the job it is about, to match it to its row

    def as_dict(self) -> dict[str, str]:
        return {
            "severity": self.severity,
            "code": self.code,
            "cluster": self.cluster,
            "subject": self.subject,
            "message": self.message,
        }


@dataclass
class Audit:
    """The audit of one stack: every job's access per cluster, and the findings."""

    server: VaultServer
    accesses: list[JobAccess]
    findings: list[Finding] = field(default_factory=list)
    # (cluster name, job) -> the other jobs whose secrets it reads -> through which roles
    reads_jobs: dict[tuple[str, Job], dict[Job, list[str]]] = field(default_factory=dict)

    @property
    def high(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.severity == "high"]

    def who_can_read(self, path: str) -> list[tuple[JobAccess, list[str]]]:
        """Every job whose token can read `path` (relative to its cluster's Vault namespace),
        with the roles that give it that. Raises ValueError when `path` is not one."""
        path = request_path(path)
        readers = []
        for access in self.accesses:
            roles = [t.role.name for t in access.tokens if READ in t.capabilities(path)]
            if roles:
                readers.append((access, roles))
        return readers


def request_path(path: str) -> str:
    """`path` as a request reaches it: no leading or trailing `/`, a run of `/` as one (the
    server redirects `a//b` to `a/b`). Raises ValueError for a path no request names (empty,
    or a `.` or `..` segment, which the server redirects or refuses)."""
    parts = [part for part in path.strip().split("/") if part]
    if not parts or any(part in (".", "..") for part in parts):
        raise ValueError(
            f"{path!r} is not a Vault path: give one like <kv>/data/<namespace>/<job>/<secret>"
        )
    return "/".join(parts)


KV_V2_PATHS = ("data", "metadata", "subkeys", "delete", "undelete", "destroy", "config")


def kv_hint(audit: Audit, path: str) -> str:
    """For a path under a KV mount but not under its `data/` (the `bao kv get` form): the
    path a read of that secret requests."""
    parts = request_path(path).split("/")
    for access in audit.accesses:
        mount = access.cluster.kv_mount.split("/")
        rest = parts[len(mount) :]
        if parts[: len(mount)] == mount and rest and rest[0] not in KV_V2_PATHS:
            return f"KV v2 secrets are read at {'/'.join([*mount, 'data', *rest])}"
    return ""


def cluster_from_settings(
    name: str, settings: ClusterSettings, accessor: str | None = None
) -> Cluster:
    """The audit's view of one cluster: its default role (any job) and its extra roles."""
    roles = [Role(settings.role_name)]
    for extra in settings.roles:
        rules = parse_rules(extra.policy) if extra.policy.strip() else []
        roles.append(
            Role(
                extra.name,
                {claim: tuple(values) for claim, values in extra.bound_claims.items()},
                tuple(rules or ()),
                tuple(extra.policies),
                unreadable_policy=rules is None,
            )
        )
    return Cluster(
        name,
        settings.kv_mount,
        settings.identity_claim,
        tuple(roles),
        **({"accessor": accessor} if accessor else {}),
        namespace=settings.namespace,
    )


def audit_stack(
    stack: StackSettings,
    jobs: Iterable[Job],
    server: VaultServer,
    outputs: Mapping[str, Any] | None = None,
    secrets: Iterable[str] = (),
) -> Audit:
    """The audit of a stack from its settings; `outputs` (the stack's, when it has been up)
    give each cluster's real auth accessor, which inline role policies may be templated on."""
    accessors = (outputs or {}).get("auth_accessor")
    clusters = []
    for cluster in stack.clusters:
        accessor = accessors.get(cluster.name) if isinstance(accessors, dict) else accessors
        clusters.append(cluster_from_settings(cluster.name, cluster.settings, accessor or None))
    return run_audit(clusters, jobs, server, secrets)


def run_audit(
    clusters: Sequence[Cluster],
    jobs: Iterable[Job],
    server: VaultServer,
    secrets: Iterable[str] = (),
) -> Audit:
    """Audit `jobs` against every cluster of the stack on `server`; `secrets` (KV data paths)
    are checked for a reader."""
    jobs = sorted(set(jobs))
    refused = refused_characters(server)
    audit = Audit(server, [])
    for cluster in clusters:
        workload = cluster.workload_rules()
        entities: dict[str, list[Job]] = defaultdict(list)
        for job in jobs:
            entities[cluster.entity(job)].append(job)
        evaluated: dict = {}
        accesses = [
            job_access(cluster, job, entities[cluster.entity(job)], refused, workload, evaluated)
            for job in jobs
        ]
        audit.accesses += accesses
        _cross_reads(audit, cluster, accesses)
        audit.findings += _job_findings(audit, cluster, accesses)
        audit.findings += _role_findings(cluster, accesses)
    audit.findings += _secret_findings(audit, secrets)
    audit.findings.sort(key=lambda f: (SEVERITIES.index(f.severity), f.cluster, f.subject, f.code))
    return audit


def _literal_prefix(rule: Rule) -> str:
    """The part of a rule's path before any wildcard: every path it matches starts so."""
    path = rule.path.removeprefix("/")
    if path.startswith("+"):
        return ""
    if "/+" in path:
        return path[: path.index("/+") + 1]
    return path.removesuffix("*")


def _witnesses(rule: Rule, base: str) -> list[str]:
    """Concrete paths `rule` would match inside the secrets path `base` (`base` itself or
    below it), if its pattern reaches there: its `+` segments take `base`'s segments, a
    trailing `*` any continuation. Vault's evaluation of these decides (deny, priority)."""
    base_parts = base.split("/")
    segments = [
        (base_parts[index] if index < len(base_parts) else WITNESS) if segment == "+" else segment
        for index, segment in enumerate(rule.path.removeprefix("/").split("/"))
    ]
    stem = "/".join(segments)
    if stem.endswith("*"):
        stem = stem[:-1]
        found = [stem, stem + WITNESS, f"{stem.rstrip('/')}/{WITNESS}"]
    else:
        found = [stem]
    return [path for path in found if path == base or path.startswith(base + "/")]


def _deepened(witnesses: set[str], base: str, shadows: list[Rule]) -> set[str]:
    """`witnesses` and paths below them, one segment deeper than the deepest rule without
    read that reaches under `base`: such a rule (a deny on `x` and on `x/+`) can shadow every
    witness while a path below them (`x/y/z`) is still read through a broader rule."""
    depth = max(
        (
            rule.path.removeprefix("/").count("/") + 1
            for rule in shadows
            if (literal := _literal_prefix(rule)).startswith(base) or base.startswith(literal)
        ),
        default=0,
    )
    deeper = set(witnesses)
    for witness in witnesses:
        path = witness
        while path.count("/") + 1 <= depth:
            path += f"/{WITNESS}"
            deeper.add(path)
    return deeper


def _widens(job_id: str, risks: Mapping[str, str]) -> tuple[bool, bool]:
    """Whether `job_id`, rendered into the workload policy on a server with `risks`, becomes
    a glob (a trailing `*`, or a `+` segment: `a+b` stays literal) or adds a path segment."""
    glob = "glob" in risks and (job_id.endswith("*") or "+" in job_id.split("/"))
    return glob, "slash" in risks and "/" in job_id


def _cross_reads(audit: Audit, cluster: Cluster, accesses: list[JobAccess]) -> None:
    """For each job, the other jobs under whose secrets path one of its tokens can read, and
    through which roles. Jobs holding the same tokens (one entity's jobs) are worked out
    once; a job itself in another region has the same secrets by design, so is no finding."""
    bases = sorted((cluster.secrets_of(access.job), access.job) for access in accesses)
    keys = [base for base, _ in bases]
    owners: dict[str, list[Job]] = defaultdict(list)
    for base, job in bases:
        owners[base].append(job)
    reached: dict[tuple[tuple[str, int], ...], dict[Job, list[str]]] = {}
    for access in accesses:
        same_tokens = tuple((token.role.name, id(token.acls)) for token in access.tokens)
        if same_tokens not in reached:
            reached[same_tokens] = _reached_jobs(access, cluster, (keys, bases), owners)
        job = access.job
        readable = {
            other: roles
            for other, roles in reached[same_tokens].items()
            if (other.namespace, other.id) != (job.namespace, job.id)
        }
        if readable:
            audit.reads_jobs[(cluster.name, job)] = readable


def _reached_jobs(
    access: JobAccess,
    cluster: Cluster,
    sorted_bases: tuple[list[str], list[tuple[str, Job]]],
    owners: Mapping[str, list[Job]],
) -> dict[Job, list[str]]:
    """The jobs under whose secrets path one of `access`'s tokens can read, with the roles.
    Candidates come from each rule's literal prefix (a sorted search), so the work grows
    with what a job's rules reach, not with every pair of jobs."""
    keys, bases = sorted_bases
    candidates: set[Job] = set()
    rules = [rule for rule in access.rules if READ in rule.capabilities]
    for rule in rules:
        literal = _literal_prefix(rule)
        index = bisect.bisect_left(keys, literal)
        while index < len(keys) and keys[index].startswith(literal):
            candidates.add(bases[index][1])
            index += 1
        parts = literal.split("/")
        for cut in range(1, len(parts)):  # the rule reaching inside another job's path
            candidates.update(owners.get("/".join(parts[:cut]), ()))
    shadows = [rule for rule in access.rules if READ not in rule.capabilities]
    readable: dict[Job, list[str]] = {}
    for other in sorted(candidates):
        base = cluster.secrets_of(other)
        witnesses = {base, f"{base}/{WITNESS}"}
        for rule in rules:
            witnesses.update(_witnesses(rule, base))
        witnesses = _deepened(witnesses, base, shadows)
        roles = [
            token.role.name
            for token in access.tokens
            if any(READ in token.capabilities(path) for path in witnesses)
        ]
        if roles:
            readable[other] = roles
    return readable


def _names(jobs: Sequence[Job]) -> str:
    shown = ", ".join(f"`{job}`" for job in jobs[:LISTED])
    return shown + (f" and {len(jobs) - LISTED} more" if len(jobs) > LISTED else "")


def _job_findings(audit: Audit, cluster: Cluster, accesses: list[JobAccess]) -> list[Finding]:
    findings = []
    server = audit.server
    risks = job_id_risks(server)
    for access in accesses:
        job = access.job
        subject = str(job)

        def add(severity: Severity, code: str, message: str) -> None:
            findings.append(Finding(severity, code, cluster.name, subject, message, job))  # noqa: B023

        if access.tokens and all(token.refused for token in access.tokens):
            add(
                "medium",
                "refused-job-id",
                f"{server} refuses every request of this job's token (its ID renders into the"
                " policy with a character the server will not template): it reads nothing,"
                " not even its own secrets; rename the job",
            )
            continue
        others = audit.reads_jobs.get((cluster.name, job), {})
        default_role = cluster.roles[0].name
        shared = [other for other in others if cluster.same_entity(job, other)]
        globbing, slashing = _widens(job.id, risks)
        by_workload = [
            o for o, roles in others.items() if o not in shared and default_role in roles
        ]
        by_roles = [o for o in others if o not in shared and o not in by_workload]
        if shared and all(other.id == job.id for other in shared):
            add(
                "high",
                "shared-entity",
                f"under identityClaim job-id it is one Vault entity with {_names(shared)}: each"
                " login rewrites the entity's namespace, so its token reads their secrets;"
                " set identityClaim: unique-id",
            )
        elif shared:
            add(
                "high",
                "shared-entity",
                f"Vault matches entity aliases ignoring case, so it is one entity with"
                f" {_names(shared)}: its token can carry their namespace and ID and read their"
                " secrets; rename the job (job IDs that differ only in case)",
            )
        glob = [char for char in "*+" if char in job.id] if globbing else []
        if by_workload and glob:
            add(
                "high",
                "glob-job-id",
                f"{server} expands the {' and '.join(glob)} in its ID:"
                f" it reads the secrets of {_names(by_workload)}; rename the job",
            )
        elif by_workload and any(other.id.startswith(job.id + "/") for other in by_workload):
            add(
                "high",
                "prefix-overlap",
                f"its secrets path contains theirs: it reads the"
                f" secrets of {_names(by_workload)}; rename one of them (no `/` in job IDs)",
            )
        elif by_workload:
            add(
                "high",
                "slash-job-id",
                f"the `/` in its ID makes it read inside"
                f" {_names(by_workload)}'s secrets; rename the job",
            )
        elif globbing or slashing:
            add(
                "medium",
                "risky-job-id",
                f"on {server} its ID would let it read the secrets"
                " of jobs created later (whose IDs its `*`, `+` or `/` matches); rename the job",
            )
        if by_roles:
            roles = sorted({role for other in by_roles for role in others[other]})
            add(
                "medium",
                "role-reads-other-jobs",
                f"through role(s) {', '.join(roles)} it reads the secrets of {_names(by_roles)}",
            )
    return findings


def _role_findings(cluster: Cluster, accesses: list[JobAccess]) -> list[Finding]:
    findings = []
    for role in cluster.roles[1:]:
        users = [access.job for access in accesses if access.token(role.name)]
        undecided = [a.job for a in accesses if (t := a.token(role.name)) and t.may_use is None]

        def add(severity: Severity, code: str, message: str) -> None:
            findings.append(Finding(severity, code, cluster.name, f"role {role.name}", message))  # noqa: B023

        if not users:
            add("low", "unused-role", "no job can log in with it (its bound claims match none)")
        patterns = [p for values in role.bound_claims.values() for p in values if "*" in p]
        if len(users) > 1 and (patterns or "nomad_job_id" not in role.bound_claims):
            why = f"its glob(s) {', '.join(patterns)}" if patterns else "no nomad_job_id bound"
            add("medium", "broad-role", f"{len(users)} jobs can use it ({why}): {_names(users)}")
        if undecided:
            claims = sorted(
                c for c in role.bound_claims if c not in ("nomad_namespace", "nomad_job_id")
            )
            add(
                "info",
                "undecided-role",
                f"bound on {', '.join(claims)}, which the audit does"
                f" not know per job: counted as usable by {_names(undecided)}",
            )
        if role.unknown_policies:
            add(
                "info",
                "unknown-policy",
                f"its tokens also carry {', '.join(role.unknown_policies)},"
                " which this stack does not write: what they grant is not counted",
            )
        templates = unknown_templates(role.rules, cluster.accessor)
        if templates:
            add(
                "medium",
                "undecided-template",
                f"its policy is templated on {', '.join(templates)}, which the audit does not"
                " know per job (a job names its own tasks): the paths using them are not"
                " counted, and may reach other jobs' secrets; template on the job's namespace"
                " and ID only",
            )
        if role.unreadable_policy:
            add(
                "info",
                "unreadable-policy",
                "its inline policy is not plain path blocks (other"
                " keys, or a legacy `policy` value Vault refuses): what it grants is not counted",
            )
    return findings


def _secret_findings(audit: Audit, secrets: Iterable[str]) -> list[Finding]:
    findings = []
    for secret in secrets:
        if not audit.who_can_read(secret):
            findings.append(
                Finding(
                    "low",
                    "unreadable-secret",
                    "",
                    request_path(secret),
                    "no job can read it: left over, or its job is missing",
                )
            )
    return findings


def summary(audit: Audit) -> dict[str, int]:
    counts = {severity: 0 for severity in SEVERITIES}
    for finding in audit.findings:
        counts[finding.severity] += 1
    return counts


def read_paths(access: JobAccess) -> list[str]:
    """The paths its tokens can read, as rules (globs and prefixes shown as Vault has them)."""
    return sorted({rule.path for rule in access.rules if READ in rule.capabilities})


def as_json(audit: Audit) -> dict[str, Any]:
    jobs = []
    for access in audit.accesses:
        job = access.job
        jobs.append(
            {
                "cluster": access.cluster.name,
                "region": job.region,
                "namespace": job.namespace,
                "id": job.id,
                "roles": [
                    {"name": t.role.name, "refused": t.refused, "certain": t.may_use is True}
                    for t in access.tokens
                ],
                "reads": read_paths(access),
                "reads_jobs": [
                    str(o) for o in audit.reads_jobs.get((access.cluster.name, job), [])
                ],
            }
        )
    return {
        "server": str(audit.server),
        "summary": summary(audit),
        "findings": [finding.as_dict() for finding in audit.findings],
        "jobs": jobs,
    }


NOMAD_NAMESPACE = re.compile(r"[a-zA-Z0-9-]{1,128}")


def job_problems(job: Job) -> list[str]:
    """What Nomad would not accept in `job` (so the audit cannot reason about it)."""
    problems = []
    if not isinstance(job.namespace, str) or not NOMAD_NAMESPACE.fullmatch(job.namespace):
        problems.append(
            f"namespace {job.namespace!r}: Nomad namespaces are 1-128 letters, digits, '-'"
        )
    if not isinstance(job.id, str) or not job.id or any(c in job.id for c in " \0"):
        problems.append(f"id {job.id!r}: must be non-empty text without spaces or NUL")
    if not isinstance(job.region, str) or not job.region or any(c in job.region for c in ":/"):
        problems.append(f"region {job.region!r}: must be non-empty text without ':' or '/'")
    return problems


def jobs_from_json(document: Any) -> list[Job]:
    """Jobs from a JSON list of {"namespace", "id", "region"?} objects (or [region,
    namespace, id] triples). Raises ValueError naming every bad entry."""
    if not isinstance(document, list):
        raise ValueError("the jobs file must hold a JSON list of jobs")
    jobs, problems = [], []
    for index, entry in enumerate(document):
        if isinstance(entry, list) and len(entry) == 3:
            entry = dict(zip(("region", "namespace", "id"), entry, strict=True))
        if not isinstance(entry, Mapping) or set(entry) - {"region", "namespace", "id"}:
            problems.append(f'jobs[{index}]: must be {{"namespace", "id", "region"?}}')
            continue
        job = Job(entry.get("namespace"), entry.get("id"), entry.get("region", "global"))
        problems += [f"jobs[{index}]: {problem}" for problem in job_problems(job)]
        jobs.append(job)
    if problems:
        raise ValueError("bad jobs list:\n  - " + "\n  - ".join(problems))
    return jobs
