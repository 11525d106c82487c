"""The access audit's rules, without a server: Vault's ACL matching, what a job ID renders to
on each server, the findings, the reports, and reading jobs from Nomad's API.

The Vault-side rules are checked against the behaviour measured on HashiCorp Vault 1.14.10:
a job `*` or `+` reads every secret of its Nomad namespace, `web*` those of every job whose ID
starts with `web`, `web/db` job `web`'s secret `db`, a `+*` in an ID breaks the token; on
OpenBao 2.6.0 and later such jobs get nothing. (tests/e2e/test_audit.py checks the same model
against a real OpenBao, with and without its fix.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi import automation as auto

from devtools import audit as audit_cli
from devtools.issuer import Issuer, IssuerServer
from nomad_vault_setup.access import Cluster, Job, glob_match, go_lower
from nomad_vault_setup.acl import Acl, PolicyRefused, Rule, parse_rules
from nomad_vault_setup.audit import (
    audit_stack,
    cluster_from_settings,
    jobs_from_json,
    request_path,
    run_audit,
)
from nomad_vault_setup.audit_report import (
    as_mermaid,
    as_text,
    printable,
    render,
    who_can_read_text,
)
from nomad_vault_setup.config.fields import acl_policy_problem
from nomad_vault_setup.config.schema import ClusterSettings
from nomad_vault_setup.nomad_jobs import NomadUnreadable, read_jobs
from nomad_vault_setup.server_kind import VaultServer

VAULT_1_14 = VaultServer("vault", "1.14.10")
VAULT_FIXED = VaultServer("vault", "1.21.6")
OPENBAO_OLD = VaultServer("openbao", "2.5.5")
OPENBAO = VaultServer("openbao", "2.7.2")
NAMESPACE_JOBS = ["web", "webapp", "web-api", "api", "db"]
SECRET = "secret/data/default/{}/config"


def read(*rules: tuple[str, str]) -> Acl:
    return Acl(Rule(path, frozenset(caps.split(","))) for path, caps in rules)


def cluster(identity_claim: str = "unique-id", roles: list[dict] | None = None) -> Cluster:
    settings = ClusterSettings.model_validate(
        {"identityClaim": identity_claim, "roles": json.dumps(roles or [])}
    )
    return cluster_from_settings("", settings)


def audit_of(job_ids: list[str], server: VaultServer, namespace: str = "default", **options):
    jobs = [Job(namespace, job_id) for job_id in job_ids]
    return run_audit([cluster(**options)], jobs, server)


def readers(audit, path: str) -> set[str]:
    return {str(access.job) for access, _ in audit.who_can_read(path)}


# --- Vault's ACL matching (acl.py) ---


def test_an_exact_rule_wins_over_any_prefix() -> None:
    acl = read(("secret/data/a", "deny"), ("secret/data/*", "read"))
    assert acl.capabilities("secret/data/a") == frozenset()
    assert acl.capabilities("secret/data/b") == {"read"}


def test_the_longest_prefix_decides_alone_and_deny_wins_a_merge() -> None:
    acl = read(("secret/*", "read,list"), ("secret/data/*", "list"), ("secret/data/*", "deny"))
    assert acl.capabilities("secret/data/x") == frozenset(), "merged with deny: deny"
    assert acl.capabilities("secret/metadata/x") == {"read", "list"}


def test_a_star_inside_a_path_is_literal_and_only_a_trailing_one_is_a_prefix() -> None:
    acl = read(("secret/data/web*/*", "read"))
    assert acl.capabilities("secret/data/web*/x") == {"read"}
    assert acl.capabilities("secret/data/webapp/x") == frozenset()


def test_plus_segments_match_one_segment_and_prefer_later_wildcards() -> None:
    acl = read(("secret/data/+/config", "read"), ("secret/data/prod/+", "list"))
    assert acl.capabilities("secret/data/dev/config") == {"read"}
    assert acl.capabilities("secret/data/prod/config") == {"list"}, "first + later wins"
    assert acl.capabilities("secret/data/dev/other") == frozenset()
    assert read(("a+b/c", "read")).capabilities("axb/c") == frozenset(), "`a+b` is literal"


def test_a_prefix_rule_beats_a_wildcard_rule_whose_plus_comes_earlier() -> None:
    acl = read(("secret/+/db/*", "read"), ("secret/data/*", "deny"))
    assert acl.capabilities("secret/data/db/x") == frozenset()
    assert acl.capabilities("secret/kv/db/x") == {"read"}


def test_plus_star_is_refused_as_vault_refuses_the_policy() -> None:
    with pytest.raises(PolicyRefused, match=r"\+\*"):
        read(("secret/data/a+*/x", "read"))


@pytest.mark.parametrize(
    "text",
    [
        'path "a/*" {\n  capabilities = ["list"]\n  policy = "read"\n}\n',
        'path "a/*" { capabilities = ["read"] } path "a/*" { capabilities = ["list"] }\n',
        'path "a/*" {\n  capabilities = ["list"]\n}\n'
        '"path" "a/*" {\n  capabilities = ["read"]\n}\n',
        'path "a/*" {\n  capabilities = ["read"]\n}\npath "a/*" {\n  capabilities = ["list"]\n}\n',
    ],
    ids=["legacy policy field", "one line", "quoted keyword", "two blocks"],
)
def test_every_block_and_the_legacy_policy_field_count_as_vault_merges_them(text: str) -> None:
    """Texts OpenBao 2.7.2 grants read on `a/x` for (an attack review found pyhcl's view of
    them lost the read): pyhcl folds repeated blocks, so each block is read as written."""
    rules = parse_rules(text)
    assert rules is not None
    assert Acl(rules).capabilities("a/x") == {"read", "list"}


def test_a_legacy_deny_wins_and_what_vault_refuses_is_not_read() -> None:
    legacy = 'path "a/*" {\n  capabilities = ["read"]\n}\npath "a/x" {\n  policy = "deny"\n}\n'
    assert Acl(parse_rules(legacy) or []).capabilities("a/x") == frozenset()
    assert parse_rules('path "a" {\n  policy = "bogus"\n}\n') is None
    assert parse_rules('other "a" {\n  capabilities = ["read"]\n}\n') is None
    assert parse_rules("not hcl {") is None
    assert parse_rules('path "a/*" {\n capabilities = ["read"]\n}\n') == [
        Rule("a/*", frozenset({"read"}))
    ]


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("deploy-*", "deploy-web", True),
        ("deploy-*", "deploy-", True),
        ("deploy-*", "xdeploy-web", False),
        ("*", "anything/at all", True),
        ("a*b*c", "a-b/c", True),
        ("a*b*c", "acb", False),
        ("web", "web*", False),
        ("*-prod", "api-prod", True),
        ("ab*ba", "aba", False),
    ],
)
def test_bound_claims_glob_as_go_glob(pattern: str, value: str, matches: bool) -> None:
    assert glob_match(pattern, value) is matches


# --- what a job ID reads, per server (measured on Vault 1.14.10) ---


@pytest.mark.parametrize("server", [VAULT_1_14, OPENBAO_OLD])
@pytest.mark.parametrize("job_id", ["*", "+"])
def test_on_vault_1_14_a_star_or_plus_job_reads_its_whole_namespace(server, job_id) -> None:
    audit = audit_of([*NAMESPACE_JOBS, job_id], server)
    for other in NAMESPACE_JOBS:
        assert f"default/{job_id}" in readers(audit, SECRET.format(other)), other
    assert f"default/{job_id}" not in readers(audit, "secret/data/prod/web/config")
    assert {f.code for f in audit.high} == {"glob-job-id"}


def test_on_vault_1_14_web_star_reads_every_job_starting_with_web() -> None:
    audit = audit_of([*NAMESPACE_JOBS, "web*"], VAULT_1_14)
    reading = {
        job for job in NAMESPACE_JOBS if "default/web*" in readers(audit, SECRET.format(job))
    }
    assert reading == {"web", "webapp", "web-api"}


def test_on_vault_1_14_web_slash_db_reads_job_webs_secret_db_only() -> None:
    audit = audit_of(["web", "web/db"], VAULT_1_14)
    assert "default/web/db" in readers(audit, "secret/data/default/web/db")
    assert "default/web/db" not in readers(audit, "secret/data/default/web/config")
    codes = {(f.code, f.subject) for f in audit.high}
    assert codes == {("slash-job-id", "default/web/db"), ("prefix-overlap", "default/web")}


def test_on_vault_1_14_plus_star_breaks_the_token() -> None:
    audit = audit_of(["a+*", "web"], VAULT_1_14)
    (access,) = [a for a in audit.accesses if a.job.id == "a+*"]
    assert all(token.refused for token in access.tokens)
    assert [(f.code, f.subject) for f in audit.findings] == [("refused-job-id", "default/a+*")]


@pytest.mark.parametrize("job_id", ["*", "+", "web*", "web/db", "a+*"])
def test_on_openbao_2_6_and_later_such_jobs_get_nothing(job_id: str) -> None:
    audit = audit_of(["web", job_id], OPENBAO)
    (access,) = [a for a in audit.accesses if a.job.id == job_id]
    assert all(token.refused for token in access.tokens)
    assert access.capabilities(SECRET.format(job_id)) == frozenset(), "not even its own"
    assert ("refused-job-id", f"default/{job_id}") in {(f.code, f.subject) for f in audit.findings}


def test_vault_with_the_glob_fix_still_lets_a_slash_read() -> None:
    audit = audit_of(["web", "web/db", "web*"], VAULT_FIXED)
    assert "default/web/db" in readers(audit, "secret/data/default/web/db")
    assert "default/web*" not in readers(audit, SECRET.format("web"))


def test_a_job_only_reads_its_own_secrets_and_lists_the_metadata() -> None:
    audit = audit_of(NAMESPACE_JOBS, OPENBAO)
    assert readers(audit, SECRET.format("web")) == {"default/web"}
    assert readers(audit, "secret/data/default/web") == {"default/web"}
    (web,) = [a for a in audit.accesses if a.job.id == "web"]
    assert web.capabilities("secret/metadata/default/api") == {"list"}
    assert audit.findings == []


def test_a_prefix_overlap_leaks_on_every_server() -> None:
    """`web`'s path holds `web/db`'s: even where `web/db` cannot log in, `web` reads it."""
    audit = audit_of(["web", "web/db"], OPENBAO)
    assert readers(audit, "secret/data/default/web/db/config") == {"default/web"}
    assert [f.code for f in audit.high] == ["prefix-overlap"]


def test_under_job_id_the_same_id_in_two_namespaces_reads_both() -> None:
    jobs = [Job("default", "web"), Job("prod", "web"), Job("prod", "db")]
    shared = run_audit([cluster("job-id")], jobs, OPENBAO)
    assert readers(shared, "secret/data/prod/web/config") == {"default/web", "prod/web"}
    assert {(f.code, f.subject) for f in shared.high} == {
        ("shared-entity", "default/web"),
        ("shared-entity", "prod/web"),
    }
    separate = run_audit([cluster("unique-id")], jobs, OPENBAO)
    assert readers(separate, "secret/data/prod/web/config") == {"prod/web"}
    assert separate.findings == []


# --- extra roles ---

OPS = {
    "name": "ops",
    "boundClaims": {"nomad_namespace": ["prod"]},
    "policy": 'path "secret/data/prod/+/config" {\n  capabilities = ["read"]\n}\n',
}
DEPLOYER = {
    "name": "deployer",
    "boundClaims": {"nomad_namespace": ["ci"], "nomad_job_id": ["deploy-*"]},
    "policy": 'path "secret/data/shared/*" {\n  capabilities = ["read"]\n}\n',
}


def test_roles_are_usable_by_the_jobs_their_bound_claims_match() -> None:
    jobs = [Job("prod", "api"), Job("prod", "db"), Job("ci", "deploy-web"), Job("ci", "lint")]
    audit = run_audit([cluster(roles=[OPS, DEPLOYER])], jobs, OPENBAO)
    usable = {str(a.job): sorted(t.role.name for t in a.tokens) for a in audit.accesses}
    assert usable == {
        "prod/api": ["nomad-workloads", "ops"],
        "prod/db": ["nomad-workloads", "ops"],
        "ci/deploy-web": ["deployer", "nomad-workloads"],
        "ci/lint": ["nomad-workloads"],
    }
    assert readers(audit, "secret/data/prod/db/config") == {"prod/api", "prod/db"}
    assert readers(audit, "secret/data/shared/token") == {"ci/deploy-web"}
    findings = {(f.code, f.subject) for f in audit.findings}
    assert ("role-reads-other-jobs", "prod/api") in findings
    assert ("broad-role", "role ops") in findings
    assert ("broad-role", "role deployer") not in findings, "its glob matches one job"


def test_what_the_audit_cannot_see_is_said_not_guessed() -> None:
    task_bound = {
        "name": "by-task",
        "boundClaims": {"nomad_namespace": ["prod"], "nomad_task": ["migrate"]},
        "policies": ["db-migrations"],
    }
    nobody = DEPLOYER | {"name": "nobody", "boundClaims": {"nomad_namespace": ["none"]}}
    audit = run_audit([cluster(roles=[task_bound, nobody])], [Job("prod", "db")], OPENBAO)
    findings = {(f.severity, f.code, f.subject) for f in audit.findings}
    assert ("info", "undecided-role", "role by-task") in findings
    assert ("info", "unknown-policy", "role by-task") in findings
    assert ("low", "unused-role", "role nobody") in findings
    (access,) = audit.accesses
    assert access.token("by-task").may_use is None


def test_the_stack_settings_and_outputs_give_each_cluster_its_accessor() -> None:
    clusters = json.dumps([{"name": "east"}, {"name": "west", "kvMount": "kv"}])
    stack = audit_cli.stack_settings({"nomad-vault-setup:clusters": auto.ConfigValue(clusters)})
    outputs = {"auth_accessor": {"east": "auth_jwt_1", "west": "auth_jwt_2"}}
    audit = audit_stack(stack, [Job("default", "web")], OPENBAO, outputs)
    assert [(a.cluster.name, a.cluster.accessor) for a in audit.accesses] == [
        ("east", "auth_jwt_1"),
        ("west", "auth_jwt_2"),
    ]
    assert readers(audit, "kv/data/default/web/x") == {"default/web"}


def test_secrets_no_job_reads_are_listed() -> None:
    audit = run_audit(
        [cluster()],
        [Job("default", "web")],
        OPENBAO,
        secrets=["secret/data/default/web/db", "secret/data/default/gone/db"],
    )
    assert [(f.code, f.subject) for f in audit.findings] == [
        ("unreadable-secret", "secret/data/default/gone/db")
    ]


# --- the jobs ---


def test_a_bad_jobs_list_names_every_bad_entry() -> None:
    with pytest.raises(ValueError) as bad:
        jobs_from_json(
            [
                {"namespace": "default", "id": "web"},
                ["global", "default", "api"],
                {"namespace": "a b", "id": "x"},
                {"namespace": "default", "id": ""},
                {"namespace": "default", "id": "x", "extra": 1},
                7,
            ]
        )
    message = str(bad.value)
    for index in (2, 3, 4, 5):
        assert f"jobs[{index}]" in message
    assert "jobs[0]" not in message and "jobs[1]" not in message
    with pytest.raises(ValueError, match="JSON list"):
        jobs_from_json({"jobs": []})


@pytest.fixture
def nomad() -> IssuerServer:
    server = IssuerServer(Issuer()).start()
    server.jobs = [
        {"ID": "web", "ParentID": "", "Namespace": "default"},
        {"ID": "report", "ParentID": "", "Namespace": "prod"},
        {"ID": "report/periodic-1700000000", "ParentID": "report", "Namespace": "prod"},
        {"ID": "web", "ParentID": "", "Namespace": "default", "Region": "east"},
        {"ID": "purged/dispatch-1", "ParentID": "purged", "Namespace": "prod"},
    ]
    yield server
    server.stop()


def test_jobs_are_read_from_every_region_and_children_are_their_parents(nomad) -> None:
    """A child logs in with its parent's ID, even when the parent was purged."""
    assert read_jobs(nomad.url) == [
        Job("default", "web", "east"),
        Job("default", "web", "global"),
        Job("prod", "purged", "global"),
        Job("prod", "report", "global"),
    ]


def test_nomads_acl_refusal_and_an_unreachable_nomad_are_said(nomad) -> None:
    nomad.nomad_token = "s3cret-token"
    with pytest.raises(NomadUnreadable, match="HTTP 403"):
        read_jobs(nomad.url, token="wrong")
    assert len(read_jobs(nomad.url, token="s3cret-token")) == 4
    with pytest.raises(NomadUnreadable, match="cannot reach Nomad"):
        read_jobs("http://127.0.0.1:1")
    with pytest.raises(NomadUnreadable, match="not an http"):
        read_jobs("nomad.internal:4646")


# --- the reports and the command's input ---


def test_the_text_report_has_a_table_per_namespace_and_every_finding() -> None:
    audit = audit_of(["web", "web/db", "*"], VAULT_1_14)
    text = as_text(audit)
    assert "Nomad namespace default" in text
    assert "HIGH   glob-job-id: default/*:" in text
    assert "Findings: 3 high" in text
    assert who_can_read_text(audit, "secret/data/default/web/db/x").startswith("3 job(s) can read")
    assert (
        who_can_read_text(audit, "/secret/data/other/x/") == "No job can read secret/data/other/x."
    )


def test_the_json_report_round_trips_and_the_mermaid_graph_quotes_labels() -> None:
    audit = audit_of(['we"b]', "web", "*"], VAULT_1_14)
    document = json.loads(render(audit, "json"))
    assert document["summary"]["high"] == 1
    assert {job["id"] for job in document["jobs"]} == {'we"b]', "web", "*"}
    graph = as_mermaid(audit)
    assert graph.startswith("graph LR\n")
    assert "-. reads .->" in graph and "linkStyle" in graph
    assert '"we\'b]"' in graph, 'labels are quoted; a `"` cannot end them'


def test_the_command_refuses_unusable_input_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(audit_cli.AuditUnavailable, match="NOMAD_ADDR"):
        audit_cli.jobs_of(None, {})
    bad = tmp_path / "jobs.json"
    bad.write_text("[{}]")
    with pytest.raises(audit_cli.AuditUnavailable, match=r"jobs\[0\]"):
        audit_cli.jobs_of(bad, {})
    with pytest.raises(audit_cli.AuditUnavailable, match="vault:<version>"):
        audit_cli.server_of("vault:latest", {}, {})
    with pytest.raises(audit_cli.AuditUnavailable, match="no Vault address"):
        audit_cli.server_of(None, {}, {})
    assert audit_cli.server_of("openbao:2.7.2", {}, {}) == OPENBAO
    assert audit_cli.stack_settings({}).clusters[0].settings.identity_claim == "unique-id"


# --- what an attack review found (each was a silent wrong answer before) ---


@pytest.mark.parametrize("identity_claim", ["unique-id", "job-id"])
@pytest.mark.parametrize(
    ("victim", "attacker"),
    [
        (Job("default", "web"), Job("default", "Web")),
        (Job("prod", "kafka"), Job("prod", "\u212aafka")),
    ],
    ids=["case", "kelvin sign"],
)
def test_ids_that_differ_only_in_case_are_one_entity(identity_claim, victim, attacker) -> None:
    """OpenBao 2.7.2 finds entity aliases ignoring case (Go's strings.ToLower, which folds the
    Kelvin sign into `k`): the second job's token carries the first's metadata."""
    audit = run_audit([cluster(identity_claim)], [victim, attacker], OPENBAO)
    assert readers(audit, f"secret/data/{victim.namespace}/{victim.id}/db") == {
        str(victim),
        str(attacker),
    }
    assert {(f.code, f.subject) for f in audit.high} == {
        ("shared-entity", str(victim)),
        ("shared-entity", str(attacker)),
    }
    assert "ignoring case" in audit.high[0].message


def test_go_lower_folds_each_character_alone() -> None:
    assert go_lower("\u0130STANBUL\u03a3") == "istanbul\u03c3", (
        "Python's lower gives i\u0307, \u03c2"
    )


def test_the_same_job_in_two_regions_is_no_finding() -> None:
    jobs = [Job("default", "web"), Job("default", "web", "east")]
    for identity_claim in ("unique-id", "job-id"):
        audit = run_audit([cluster(identity_claim)], jobs, OPENBAO)
        assert audit.findings == [], identity_claim
        assert readers(audit, "secret/data/default/web/x") == {"default/web", "east:default/web"}


def test_a_path_below_every_deny_is_still_found_as_read() -> None:
    """Deny `x` and `x/+` shadow both witnesses the search used to try; `x/y/z` is read."""
    ops = {
        "name": "ops",
        "boundClaims": {"nomad_namespace": ["prod"], "nomad_job_id": ["api"]},
        "policy": (
            'path "secret/data/prod/*" {\n  capabilities = ["read"]\n}\n'
            'path "secret/data/prod/payments" {\n  capabilities = ["deny"]\n}\n'
            'path "secret/data/prod/payments/+" {\n  capabilities = ["deny"]\n}\n'
        ),
    }
    jobs = [Job("prod", "api"), Job("prod", "payments")]
    audit = run_audit([cluster(roles=[ops])], jobs, OPENBAO)
    assert "prod/api" in readers(audit, "secret/data/prod/payments/ledger/key")
    assert audit.reads_jobs[("", Job("prod", "api"))] == {Job("prod", "payments"): ["ops"]}
    assert [f.code for f in audit.findings if f.subject == "prod/api"] == ["role-reads-other-jobs"]


def test_a_job_sorting_after_the_search_bound_is_still_found() -> None:
    audit = audit_of(["*", "\U0010ffffdb"], VAULT_1_14)
    assert [f.code for f in audit.high] == ["glob-job-id"]


@pytest.mark.parametrize("job_id", ["a+b", "+b", "a*b", "a+"])
def test_a_literal_star_or_plus_is_no_risk_on_vault_1_14(job_id: str) -> None:
    """Only a trailing `*` or a whole `+` segment is a wildcard once rendered."""
    assert audit_of([job_id], VAULT_1_14).findings == []


@pytest.mark.parametrize("job_id", ["web*", "x/+", "web/db"])
def test_an_id_that_would_widen_is_a_risk_before_any_victim_exists(job_id: str) -> None:
    assert [f.code for f in audit_of([job_id], VAULT_1_14).findings] == ["risky-job-id"]


def test_a_policy_templated_on_the_task_is_a_medium_finding() -> None:
    """A job names its own tasks: a template on them may reach any job's secrets."""
    by_task = {
        "name": "by-task",
        "boundClaims": {"nomad_namespace": ["default"]},
        "policy": (
            'path "secret/data/{{identity.entity.aliases.auth_jwt_audit.metadata.nomad_namespace}}'
            '/{{identity.entity.aliases.auth_jwt_audit.metadata.nomad_task}}/*" {\n'
            '  capabilities = ["read"]\n}\n'
        ),
    }
    audit = run_audit([cluster(roles=[by_task])], [Job("default", "web")], OPENBAO)
    (finding,) = [f for f in audit.findings if f.code == "undecided-template"]
    assert "metadata.nomad_task" in finding.message and finding.severity == "medium"


def test_a_job_id_cannot_forge_or_hide_report_lines() -> None:
    forged = "x\nFindings: 0 high, 0 medium, 0 low, 0 info\x1b[8m\xa0\ud800"
    audit = audit_of([forged, "*"], VAULT_1_14)
    text = as_text(audit) + who_can_read_text(audit, "secret/data/default/x")
    forged_lines = [line for line in text.splitlines() if line.startswith("Findings:")]
    assert len(forged_lines) == 1, "the forged line stays inside its cell"
    assert all(char.isprintable() for char in text.replace("\n", "")), "nothing raw"
    assert "x\\nFindings" in text and "\\x1b[8m\\xa0\\ud800" in text
    text.encode()  # a lone surrogate no longer breaks the output
    assert json.loads(render(audit, "json"))["jobs"][1]["id"] == forged, "JSON keeps it as is"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/secret//data/default/web/x/", "secret/data/default/web/x"),
        (" secret/data/a ", "secret/data/a"),
    ],
)
def test_a_path_is_asked_about_as_a_request_reaches_it(path: str, shown: str) -> None:
    assert request_path(path) == shown


@pytest.mark.parametrize("path", ["", "/", "secret/data/default/../prod/db", "secret/./x"])
def test_a_path_no_request_names_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="not a Vault path"):
        request_path(path)


def test_the_kv_get_form_of_a_path_gets_a_hint() -> None:
    audit = audit_of(["web"], OPENBAO)
    answer = who_can_read_text(audit, "secret/default/web/db")
    assert answer.startswith("No job can read secret/default/web/db.")
    assert "read at secret/data/default/web/db" in answer


def test_deeply_nested_or_unreadable_inputs_are_refused_not_crashed(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(audit_cli.AuditUnavailable, match="nested too deeply"):
        audit_cli.jobs_of(deep, {})
    with pytest.raises(audit_cli.AuditUnavailable, match="secrets file"):
        audit_cli.secrets_of(deep)
    dotted = tmp_path / "secrets.json"
    dotted.write_text('["secret/data/../x"]')
    with pytest.raises(audit_cli.AuditUnavailable, match="not a Vault path"):
        audit_cli.secrets_of(dotted)


def test_who_can_read_with_an_empty_path_is_refused_before_anything_runs(capsys) -> None:
    assert audit_cli.main(["--who-can-read", ""], env={}) == audit_cli.CANNOT_AUDIT
    assert "not a Vault path" in capsys.readouterr().err


# --- a second attack review ---

BOUND_REPORTING = {"nomad_namespace": ["prod"], "nomad_job_id": ["reporting"]}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('path "a/*" "x" {\n  capabilities = ["read"]\n}\n', "second label"),
        ('path = {\n  "a/*" = {\n    capabilities = ["read"]\n  }\n}\n', "second label"),
        ('path "a/\\u002a" {\n  capabilities = ["read"]\n}\n', "backslash"),
        ('path "\\x2b/a" {\n  capabilities = ["read"]\n}\n', "backslash"),
        # pyhcl does not end a string at `\\"`, so the comment hid the second block from it
        (
            'path "a/x" { capabilities = ["read"], comment = "ends in \\\\" } # " } /*\n'
            'path "a/*" { capabilities = ["read"] }\n# */\n',
            "backslash",
        ),
        ('path "a/{{x" {\n  capabilities = ["read"]\n}\n', "`{{...}}` pair"),
    ],
)
def test_texts_pyhcl_reads_otherwise_than_vault_are_refused(text: str, says: str) -> None:
    """OpenBao 2.7.2 grants read on `a/x` for each (the first label is the path, escapes are
    decoded); pyhcl saw no grant. Not read, and refused as a role's inline policy."""
    assert parse_rules(text) is None
    assert says in (acl_policy_problem(text) or "")


@pytest.mark.parametrize(
    "deny",
    [
        'capabilities = ["deny", "read"]',
        'policy = "read"\n  capabilities = ["deny"]',
        'capabilities = ["deny"]',
    ],
)
def test_a_block_that_denies_denies_whatever_else_it_lists(deny: str) -> None:
    """Vault keeps `deny` alone in such a block, so it shadows like any deny: the read of
    `payments/db/password` below it, through the broad prefix, is still found."""
    policy = (
        'path "secret/data/prod/*" {\n  capabilities = ["read"]\n}\n'
        f'path "secret/data/prod/payments" {{\n  {deny}\n}}\n'
        f'path "secret/data/prod/payments/+" {{\n  {deny}\n}}\n'
    )
    rules = parse_rules(policy)
    assert rules is not None and rules[1].capabilities == {"deny"}
    role = {"name": "reporting", "boundClaims": BOUND_REPORTING, "policy": policy}
    jobs = [Job("prod", "reporting"), Job("prod", "payments")]
    audit = run_audit([cluster(roles=[role])], jobs, OPENBAO)
    assert audit.reads_jobs[("", Job("prod", "reporting"))] == {
        Job("prod", "payments"): ["reporting"]
    }


def test_a_deny_aimed_at_a_guessable_secret_name_does_not_hide_a_read() -> None:
    """`.../payments/a*` would shadow a printable stand-in name such as `any-secret`."""
    policy = (
        'path "secret/data/prod/*" {\n  capabilities = ["read"]\n}\n'
        'path "secret/data/prod/payments" {\n  capabilities = ["deny"]\n}\n'
        'path "secret/data/prod/payments/a*" {\n  capabilities = ["deny"]\n}\n'
    )
    role = {"name": "reporting", "boundClaims": BOUND_REPORTING, "policy": policy}
    jobs = [Job("prod", "reporting"), Job("prod", "payments")]
    audit = run_audit([cluster(roles=[role])], jobs, OPENBAO)
    assert Job("prod", "payments") in audit.reads_jobs[("", Job("prod", "reporting"))]


def test_an_expiring_block_and_unknown_keys_are_refused() -> None:
    """OpenBao ignores a block past its `expiration` (measured on 2.7.2: an expired `list`
    block no longer shadows a broader read), so what it grants depends on the hour; a key
    neither server knows makes it refuse the policy."""
    expiring = (
        'path "a/*" {\n  capabilities = ["read"]\n}\n'
        'path "a/b" {\n  capabilities = ["list"]\n  expiration = "2000-01-01T00:00:00Z"\n}\n'
    )
    assert parse_rules(expiring) is None
    assert "`expiration` is not supported" in (acl_policy_problem(expiring) or "")
    unknown = 'path "a" {\n  capabilities = ["read"]\n  foo = 1\n}\n'
    assert parse_rules(unknown) is None
    assert "unknown key(s) foo (allowed:" in (acl_policy_problem(unknown) or "")


def test_two_legacy_policy_keys_are_refused_not_crashed() -> None:
    text = 'path "a" {\n  policy = "read"\n  policy = "write"\n}\n'
    assert parse_rules(text) is None
    assert "nothing else" in (acl_policy_problem(text) or "")


def test_distinct_job_ids_never_print_alike() -> None:
    """An ESC and a typed `\\x1b`, a blank filler, a combining mark: each stays visible."""
    shown = {printable(text) for text in ("pay\x1b", "pay\\x1b", "pay", "pay\u3164", "pay\u0301")}
    assert len(shown) == 5
    with pytest.raises(ValueError, match="without ':' or '/'"):
        jobs_from_json([["a/b", "x", "y"]])


def test_no_kv_hint_for_the_other_kv_v2_endpoints() -> None:
    audit = audit_of(["web"], OPENBAO)
    assert "read at" not in who_can_read_text(audit, "secret/subkeys/default/web/db")
