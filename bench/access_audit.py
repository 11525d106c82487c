"""How long the access audit takes for 1 000, 5 000 and 10 000 Nomad jobs.

The audit is pure computation over the stack's settings and the jobs list (no server), so its
cost is what an operator waits for in `make audit` and in `make promote`'s audit gate. Two
shapes: the default role only, and the same plus a broad extra role (`secret/data/*` for every
job of one Nomad namespace), which makes every job of that namespace a reader of every other —
the audit's worst case, because each such job's cross-reads must all be listed. Then one job
ID in 100, 200 and 400 Nomad namespaces under `identityClaim: job-id`: one entity whose token
is evaluated in every namespace's state (an attack review measured 6, 46 and 334 s for this
before one entity's jobs were evaluated once). A script, not a test: `make bench` prints it;
nothing fails on time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from nomad_vault_setup.access import Cluster, Job
from nomad_vault_setup.audit import Audit, cluster_from_settings, run_audit
from nomad_vault_setup.config.schema import ClusterSettings
from nomad_vault_setup.server_kind import VaultServer

SIZES = (1_000, 5_000, 10_000)
SHARED_ID_NAMESPACES = (100, 200, 400)
RUNS = 3
NAMESPACES = ("default", "prod", "batch", "ci")
BROAD_NAMESPACE_JOBS = 200  # jobs in the broad role's namespace, whatever the total
OPENBAO = VaultServer("openbao", "2.7.2")
BROAD_ROLE = {
    "name": "ops",
    "boundClaims": {"nomad_namespace": ["ops"]},
    "policy": 'path "secret/data/*" {\n  capabilities = ["read"]\n}\n',
}


def cluster(roles: list[dict], identity_claim: str = "unique-id") -> Cluster:
    settings = ClusterSettings.model_validate(
        {"roles": json.dumps(roles), "identityClaim": identity_claim}
    )
    return cluster_from_settings("", settings)


def jobs(size: int, broad: bool) -> list[Job]:
    """`size` jobs spread over four namespaces, with IDs that share prefixes as real fleets'
    do (`web-1`, `web-10`, …), plus the broad role's namespace when it is there."""
    fleet = [Job(NAMESPACES[index % len(NAMESPACES)], f"web-{index}") for index in range(size)]
    if broad:
        fleet[:BROAD_NAMESPACE_JOBS] = [
            Job("ops", f"ops-{index}") for index in range(BROAD_NAMESPACE_JOBS)
        ]
    return fleet


def audit_once(size: int, broad: bool) -> tuple[float, float, Audit]:
    """Seconds for the audit, seconds for one who-can-read question, and the audit."""
    roles = [BROAD_ROLE] if broad else []
    fleet = jobs(size, broad)
    started = time.perf_counter()
    audit = run_audit([cluster(roles)], fleet, OPENBAO)
    audited = time.perf_counter() - started
    started = time.perf_counter()
    audit.who_can_read("secret/data/prod/web-1/config")
    return audited, time.perf_counter() - started, audit


def main() -> int:
    print(f"access audit on {OPENBAO.kind} {OPENBAO.version} (median of {RUNS}; broad: 1 run)")
    print(
        f"{'jobs':>6} {'broad role':>10} {'audit':>9} {'per job':>9} "
        f"{'who-can-read':>13} {'cross-reads':>12} {'findings':>9}"
    )
    for broad in (False, True):
        for size in SIZES:
            samples = [audit_once(size, broad) for _ in range(RUNS if not broad else 1)]
            audited = statistics.median(sample[0] for sample in samples)
            asked = statistics.median(sample[1] for sample in samples)
            audit = samples[0][2]
            cross = sum(len(others) for others in audit.reads_jobs.values())
            print(
                f"{size:>6} {'yes' if broad else 'no':>10} {audited:>8.2f}s "
                f"{audited / size * 1e6:>7.0f}µs {asked * 1000:>11.1f}ms "
                f"{cross:>12} {len(audit.findings):>9}"
            )
    print(f"\n{'one job ID in':>13} {'audit':>9} {'findings':>9}   (identityClaim job-id)")
    for namespaces in SHARED_ID_NAMESPACES:
        fleet = [Job(f"team-{index}", "web") for index in range(namespaces)]
        started = time.perf_counter()
        audit = run_audit([cluster([], "job-id")], fleet, OPENBAO)
        audited = time.perf_counter() - started
        print(f"{namespaces:>3} namespaces {audited:>8.2f}s {len(audit.findings):>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
