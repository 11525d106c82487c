"""Job IDs with glob or path characters, on a real OpenBao through the real engine.

Nomad allows `*`, `+` and `/` in job IDs, and the workload policy renders the job ID into its
paths. On HashiCorp Vault before its 2026 fix a job `*` reads its whole Nomad namespace, and on
any Vault without `deny_slash_in_templated_paths` a job `web/db` reads job `web`'s secret `db`
(measured on Vault 1.14.10). OpenBao
2.6.0 and later refuse such a rendering: the job logs in, but its token is refused on every
request, its own paths included. Shown here under both `identityClaim` settings, the stack
otherwise on its defaults (so the server passes the program's job-ID preflight as it is), next
to job `web` reading its own secrets and, as the contrast, the same jobs on a policy copy that
turns OpenBao's fix off, where they read what they read on Vault 1.14.10.
"""

import pytest
import requests
from hvac.exceptions import InternalServerError
from pulumi import automation as auto

from nomad_vault_setup.server_kind import job_id_risks, probe_server
from tests.e2e.harness import Scenario
from tests.e2e.vault_checks import login, read_secret, refused, write_secret

AUTH, ROLE, POLICY, KV = "jwt-nomad", "nomad-workloads", "nomad-workloads", "secret"
ODD_JOB_IDS = ["*", "+", "web*", "web+", "web/db", "a+*"]
# Job web's secrets, a neighbour whose ID starts with `web`, another job, and each odd job's
# "own" paths: every one exists, so a read that is not refused returns data.
SECRETS = {
    path: {"path": path}
    for path in [
        "default/web",
        "default/web/db",
        "default/webapp/config",
        "default/api/config",
        *(f"default/{job_id}" for job_id in ODD_JOB_IDS),
        *(f"default/{job_id}/config" for job_id in ODD_JOB_IDS),
    ]
}


def bind_stack_to_server(scenario: Scenario) -> None:
    """The stack's own `vault:address` and secret `vault:token`, as a non-dev stack needs."""
    scenario.stack.set_config("vault:address", auto.ConfigValue(scenario.server.address))
    scenario.stack.set_config("vault:token", auto.ConfigValue(scenario.server.token, secret=True))


@pytest.fixture(scope="module", params=["unique-id", "job-id"])
def deployed(request: pytest.FixtureRequest, new_scenario) -> Scenario:
    scenario = new_scenario()
    scenario.configure(identityClaim=request.param)
    bind_stack_to_server(scenario)
    scenario.up()
    for path, data in SECRETS.items():
        write_secret(scenario.vault, KV, path, data)
    return scenario


def test_the_server_has_no_job_id_risk_so_defaults_deploy(deployed: Scenario) -> None:
    server = probe_server(deployed.server.address)
    assert server.kind == "openbao", server
    assert job_id_risks(server) == {}, server


def test_job_web_reads_its_own_secrets_and_lists(deployed: Scenario) -> None:
    """The control: the same reads and lists that the odd job IDs are refused work for web."""
    web = login(deployed, deployed.issuer.mint("web"), AUTH, ROLE)
    assert read_secret(web, KV, "default/web") == SECRETS["default/web"]
    assert read_secret(web, KV, "default/web/db") == SECRETS["default/web/db"]
    assert "web/" in web.list(f"{KV}/metadata/default")["data"]["keys"]
    assert "default/" in web.list(f"{KV}/metadata")["data"]["keys"]
    assert refused(read_secret, web, KV, "default/webapp/config")
    assert refused(read_secret, web, KV, "default/api/config")


@pytest.mark.parametrize("job_id", ODD_JOB_IDS)
def test_a_job_id_with_glob_or_path_characters_gets_nothing(
    deployed: Scenario, job_id: str
) -> None:
    job = login(deployed, deployed.issuer.mint(job_id), AUTH, ROLE)
    assert job.token, "the login itself succeeds"
    attempts = {
        "job web's secret": (read_secret, job, KV, "default/web"),
        "job web's secret db": (read_secret, job, KV, "default/web/db"),
        "job webapp's secret": (read_secret, job, KV, "default/webapp/config"),
        "job api's secret": (read_secret, job, KV, "default/api/config"),
        "its own path": (read_secret, job, KV, f"default/{job_id}"),
        "its own secret": (read_secret, job, KV, f"default/{job_id}/config"),
        "the namespace's listing": (job.list, f"{KV}/metadata/default"),
        "the mount's listing": (job.list, f"{KV}/metadata"),
        "its own token": (job.auth.token.lookup_self,),
    }
    allowed = [what for what, (action, *args) in attempts.items() if not refused(action, *args)]
    assert allowed == [], f"job {job_id!r} was allowed: {allowed}"


@pytest.fixture
def expanding_role(deployed: Scenario):
    """A copy of the workload policy with OpenBao's opt-outs of the 2.6.0 fix
    (`allow_wildcards_in_identity_templates`, `allow_slashes_in_identity_templates`; the program
    never sets them), and a role like the program's that grants it: a server that expands job
    IDs, as Vault before its fix (globs) and every Vault (slashes) do."""
    role = deployed.vault.read(f"auth/{AUTH}/role/{ROLE}")["data"]
    response = requests.put(
        f"{deployed.server.address}/v1/sys/policies/acl/expanding",
        headers={"X-Vault-Token": deployed.server.token},
        json={
            "policy": deployed.vault.sys.read_acl_policy(POLICY)["data"]["policy"],
            "allow_wildcards_in_identity_templates": True,
            "allow_slashes_in_identity_templates": True,
        },
        timeout=10,
    )
    assert response.status_code == 204, response.text
    deployed.vault.write_data(
        f"auth/{AUTH}/role/expanding",
        data={
            name: role[name]
            for name in ("role_type", "bound_audiences", "user_claim", "claim_mappings")
        }
        | {"user_claim_json_pointer": True, "token_policies": ["expanding"]},
    )
    yield "expanding"
    deployed.vault.delete(f"auth/{AUTH}/role/expanding")
    deployed.vault.sys.delete_acl_policy("expanding")


def test_the_same_checks_catch_a_server_that_expands_job_ids(
    deployed: Scenario, expanding_role: str
) -> None:
    """What the refusals above protect against, measured on this OpenBao with the fix turned
    off: a job `*` or `+` reads every secret of its Nomad namespace, `web*` those of every job
    whose ID starts with `web`, `web/db` job web's secret db; `a+*` breaks its own token
    (500). The same as the finding measured on Vault 1.14.10."""

    def job(job_id: str):
        return login(deployed, deployed.issuer.mint(job_id), AUTH, expanding_role)

    whole_namespace = [
        "default/web",
        "default/web/db",
        "default/webapp/config",
        "default/api/config",
    ]
    leaks = {
        "*": whole_namespace,
        "+": whole_namespace,
        "web*": ["default/web", "default/web/db", "default/webapp/config"],
        "web/db": ["default/web/db"],
    }
    for job_id, paths in leaks.items():
        client = job(job_id)
        for path in paths:
            assert read_secret(client, KV, path) == SECRETS[path], (job_id, path)
    assert refused(read_secret, job("web*"), KV, "default/api/config")
    assert refused(read_secret, job("web/db"), KV, "default/web")
    with pytest.raises(InternalServerError):
        job("a+*").auth.token.lookup_self()
