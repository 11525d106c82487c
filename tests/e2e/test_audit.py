"""The access audit checked against a real OpenBao, never against itself.

For a fixture of 30 Nomad jobs (one ID in several namespaces and regions, prefix overlaps,
`*`, `+`, `/`, `web*`, `a+*`, extra roles with globs, a namespace-wide role, a segment
wildcard and a deny), the stand-in issuer mints each job's identity, it logs in with every
role of the stack (the audit must say which logins succeed), and for every state its entity
can be in (under `identityClaim: job-id`, each job sharing its ID logs in in turn) the token
asks `sys/capabilities-self` for every probed path: the audit must give the same capabilities
on every probe, or say the token is refused exactly when the server refuses it.

Twice: on the server as it is (OpenBao 2.7.2 refuses rendered `*`, `+`, `/`), and on copies
of the stack's policies with OpenBao's opt-outs of that fix set (`allow_wildcards_...`,
`allow_slashes_in_identity_templates`), which expand job IDs as HashiCorp Vault 1.14.10
does: there the audit is asked about `vault:1.14.10`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from pulumi import automation as auto

from devtools import audit as audit_cli
from devtools import workload
from nomad_vault_setup.access import Job
from nomad_vault_setup.audit import Audit, audit_stack
from nomad_vault_setup.server_kind import VaultServer, probe_server
from tests.e2e.harness import Scenario

AUTH, DEFAULT_ROLE, KV = "jwt-nomad", "nomad-workloads", "secret"
ROLES = [
    {
        "name": "ci-deployer",
        "boundClaims": {"nomad_namespace": ["ci"], "nomad_job_id": ["deploy-*"]},
        "policy": 'path "secret/data/shared/*" {\n  capabilities = ["read"]\n}\n',
    },
    {
        "name": "ops",
        "boundClaims": {"nomad_namespace": ["prod"]},
        "policy": (
            'path "secret/data/prod/+/config" {\n  capabilities = ["read"]\n}\n'
            'path "secret/data/prod/payments/*" {\n  capabilities = ["deny"]\n}\n'
        ),
    },
    {
        # Vault's legacy `policy = "read"` shorthand and one path written twice (read, then
        # deny with read: deny alone), which pyhcl alone would fold into one block.
        "name": "reporting",
        "boundClaims": {"nomad_namespace": ["ci"], "nomad_job_id": ["test-runner"]},
        "policy": (
            'path "secret/data/prod/+/config" {\n  capabilities = ["list"]\n'
            '  policy = "read"\n}\n'
            'path "secret/data/prod/payments/config" { capabilities = ["read"] }'
            ' path "secret/data/prod/payments/config" { capabilities = ["deny", "read"] }\n'
        ),
    },
    {
        "name": "db-admin",
        "boundClaims": {"nomad_namespace": ["prod", "staging"], "nomad_job_id": ["db"]},
        "policy": 'path "secret/data/+/db/*" {\n  capabilities = ["read", "list"]\n}\n',
    },
]
JOBS = [
    *(("global", "default", job) for job in ("web", "web/db", "webapp", "web*", "*", "+")),
    *(("global", "default", job) for job in ("api", "api+", "a+*", "db", "worker", "cache")),
    *(("global", "prod", job) for job in ("web", "db", "api", "payments", "payments/ledger", "+")),
    *(("global", "ci", job) for job in ("deploy-web", "deploy-api", "deployer", "test-runner")),
    *(("global", "staging", job) for job in ("web", "api", "db", "web/db", "batch*")),
    ("global", "staging", "*"),
    ("east", "default", "web"),
    ("east", "prod", "db"),
]
EXTRA_PATHS = ["secret/data/shared/config", "secret/metadata/", "secret/data/nobody/x"]


def probe_paths() -> list[str]:
    paths = []
    for _, namespace, job_id in JOBS:
        base = f"{namespace}/{job_id}"
        paths += [f"{KV}/data/{base}", f"{KV}/data/{base}/config", f"{KV}/metadata/{base}"]
    paths += [f"{KV}/data/{ns}/db/admin" for ns in ("prod", "staging", "default")]
    return sorted({*paths, *EXTRA_PATHS})


PROBES = probe_paths()


def jobs() -> list[Job]:
    return [Job(namespace, job_id, region) for region, namespace, job_id in JOBS]


@pytest.fixture(scope="module", params=["unique-id", "job-id"])
def deployed(request: pytest.FixtureRequest, new_scenario) -> Scenario:
    scenario = new_scenario()
    scenario.configure(identityClaim=request.param, roles=ROLES)
    scenario.stack.set_config("vault:address", auto.ConfigValue(scenario.server.address))
    scenario.up()
    return scenario


def settings_of(scenario: Scenario):
    return audit_cli.stack_settings(scenario.stack.get_all_config())


def expanding_copies(scenario: Scenario) -> dict[str, str]:
    """Copies of every role, granting copies of its policies with OpenBao's opt-outs of the
    2.6.0 fix set: role name -> its copy's name."""
    vault = scenario.vault
    copies = {}
    for role in [DEFAULT_ROLE, *(role["name"] for role in ROLES)]:
        definition = vault.read(f"auth/{AUTH}/role/{role}")["data"]
        policies = []
        for policy in definition["token_policies"]:
            response = requests.put(
                f"{scenario.server.address}/v1/sys/policies/acl/{policy}-expanding",
                headers={"X-Vault-Token": scenario.server.token},
                json={
                    "policy": vault.sys.read_acl_policy(policy)["data"]["policy"],
                    "allow_wildcards_in_identity_templates": True,
                    "allow_slashes_in_identity_templates": True,
                },
                timeout=10,
            )
            assert response.status_code == 204, response.text
            policies.append(f"{policy}-expanding")
        kept = (
            "role_type",
            "bound_audiences",
            "user_claim",
            "user_claim_json_pointer",
            "claim_mappings",
            "bound_claims",
            "bound_claims_type",
            "token_type",
            "token_period",
        )
        vault.write_data(
            f"auth/{AUTH}/role/{role}-expanding",
            data={name: definition[name] for name in kept if definition.get(name) is not None}
            | {"token_policies": policies},
        )
        copies[role] = f"{role}-expanding"
    return copies


def log_in(scenario: Scenario, job: Job, role: str) -> str | None:
    """`job`'s token from `role`, or None when the server refuses the login."""
    jwt = scenario.issuer.mint(job.id, namespace=job.namespace, region=job.region)
    if workload.login_error(scenario.server.address, jwt, AUTH, role) is not None:
        return None
    return workload.login(scenario.server.address, jwt, AUTH, role).token


def server_capabilities(address: str, token: str) -> dict[str, frozenset[str]] | None:
    """`sys/capabilities-self` for every probed path; None when the token is refused."""
    response = requests.post(
        f"{address}/v1/sys/capabilities-self",
        headers={"X-Vault-Token": token},
        json={"paths": PROBES},
        timeout=30,
    )
    if response.status_code != 200:
        return None
    answer = response.json()["data"]
    return {path: frozenset(answer[path]) - {"deny"} for path in PROBES}


def compare(
    scenario: Scenario, audit: Audit, role_names: dict[str, str]
) -> tuple[Counter, list[str]]:
    """Log every job in with every role, put its entity in every state, probe; return how
    many logins, refused tokens and path probes the audit agreed with the server on, and
    every disagreement."""
    address, agreed, disagreements = scenario.server.address, Counter(), []
    for access in audit.accesses:
        for role in role_names:
            token_model = access.token(role)
            token = log_in(scenario, access.job, role_names[role])
            if (token is not None) != (token_model is not None):
                disagreements.append(f"{access.job} login with {role}: server {token is not None}")
                continue
            agreed["logins"] += 1
            if token is None or token_model is None:
                continue
            for state, acl in zip(token_model.states, token_model.acls, strict=True):
                log_in(scenario, state, DEFAULT_ROLE)  # the entity's metadata is now `state`'s
                answer = server_capabilities(address, token)
                if (answer is None) != (acl is None):
                    disagreements.append(
                        f"{access.job} via {role} in state {state}: server refused={answer is None}"
                    )
                    continue
                if answer is None or acl is None:
                    agreed["refused tokens"] += 1
                    continue
                for path in PROBES:
                    if acl.capabilities(path) == answer[path]:
                        agreed["path probes"] += 1
                    else:
                        disagreements.append(
                            f"{access.job} via {role} in state {state} on {path}: audit "
                            f"{sorted(acl.capabilities(path))}, server {sorted(answer[path])}"
                        )
    return agreed, disagreements


def test_the_audit_agrees_with_openbao_on_every_probe(deployed: Scenario) -> None:
    server = probe_server(deployed.server.address)
    audit = audit_stack(settings_of(deployed), jobs(), server, deployed.outputs())
    agreed, disagreements = compare(
        deployed, audit, {r: r for r in [DEFAULT_ROLE, *(x["name"] for x in ROLES)]}
    )
    assert disagreements == [], "\n".join(disagreements[:20])
    assert agreed["logins"] == len(JOBS) * (1 + len(ROLES)), agreed
    assert agreed["refused tokens"] >= 8, "every `*`, `+`, `/` job's token is refused here"
    assert agreed["path probes"] >= 20 * len(PROBES), agreed
    print(f"\n{server}: the audit agrees with the server on {dict(agreed)}, 0 disagreements")


@pytest.fixture
def expanding(deployed: Scenario) -> Iterator[dict[str, str]]:
    copies = expanding_copies(deployed)
    yield copies
    for copy in copies.values():
        deployed.vault.delete(f"auth/{AUTH}/role/{copy}")
    for policy in deployed.vault.sys.list_acl_policies()["data"]["keys"]:
        if policy.endswith("-expanding"):
            deployed.vault.sys.delete_acl_policy(policy)


def test_the_audit_agrees_with_a_server_that_expands_job_ids(
    deployed: Scenario, expanding: dict[str, str]
) -> None:
    audit = audit_stack(
        settings_of(deployed), jobs(), VaultServer("vault", "1.14.10"), deployed.outputs()
    )
    agreed, disagreements = compare(deployed, audit, expanding)
    assert disagreements == [], "\n".join(disagreements[:20])
    assert agreed["refused tokens"] >= 1, "job a+*: '+*' refuses the whole policy"
    assert agreed["path probes"] >= 25 * len(PROBES), agreed
    print(f"\nexpanding (as Vault 1.14.10): the audit agrees on {dict(agreed)}, 0 disagreements")
    codes = {(f.code, f.subject) for f in audit.findings if f.severity == "high"}
    assert ("glob-job-id", "default/*") in codes
    assert ("slash-job-id", "default/web/db") in codes
    assert ("prefix-overlap", "default/web") in codes


def test_make_audit_reads_the_stack_and_gates_on_high_findings(
    deployed: Scenario, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps([list(job) for job in JOBS]))
    argv = [
        "--stack",
        deployed.stack.name,
        "--project-dir",
        str(deployed.work_dir),
        "--jobs",
        str(jobs_file),
    ]
    env = {**os.environ, **deployed.env}
    status = audit_cli.main([*argv, "--format", "json"], env=env)
    report = json.loads(capsys.readouterr().out)
    assert status == 1, "job default/web reads all of job default/web/db: high"
    assert report["server"].startswith("OpenBao 2.7.2")
    assert report["summary"]["high"] >= 1
    assert audit_cli.main([*argv, "--who-can-read", "secret/data/prod/db/admin"], env=env) == 0
    answer = capsys.readouterr().out
    assert "  prod/db (role nomad-workloads, ops, db-admin)\n" in answer
    assert "  staging/db (role " in answer
    shared = settings_of(deployed).clusters[0].settings.identity_claim == "job-id"
    assert ("  default/db (role nomad-workloads)\n" in answer) == shared, "one entity under job-id"


def test_ids_that_differ_only_in_case_share_one_entity_and_the_audit_says_so(
    deployed: Scenario,
) -> None:
    """Vault and OpenBao find entity aliases ignoring case, under either identity claim: the
    second of `Nightly` and `nightly` to log in gets the first's metadata, and reads its
    secrets (found by an attack review; the audit once compared entity names as written)."""
    first, second = Job("default", "Nightly"), Job("default", "nightly")
    deployed.vault.secrets.kv.v2.create_or_update_secret(
        path="default/Nightly/db", secret={"password": "first's"}, mount_point=KV
    )
    assert log_in(deployed, first, DEFAULT_ROLE)
    token = log_in(deployed, second, DEFAULT_ROLE)
    response = requests.get(
        f"{deployed.server.address}/v1/{KV}/data/default/Nightly/db",
        headers={"X-Vault-Token": token or ""},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json()["data"]["data"] == {"password": "first's"}

    server = probe_server(deployed.server.address)
    audit = audit_stack(settings_of(deployed), [first, second], server, deployed.outputs())
    assert {(f.code, f.subject) for f in audit.high} == {
        ("shared-entity", "default/Nightly"),
        ("shared-entity", "default/nightly"),
    }
    readers = {str(access.job) for access, _ in audit.who_can_read(f"{KV}/data/default/Nightly/db")}
    assert readers == {"default/Nightly", "default/nightly"}
