"""Nothing this stack did not create is changed: the live-server checks before any resource."""

import pytest

from nomad_vault_setup.ownership import (
    foreign_namespace_problem,
    foreign_policy_problem,
    marked,
    marker_line,
    namespace_metadata,
)
from nomad_vault_setup.policy import render_workload_policy
from nomad_vault_setup.preflight import PreflightError
from nomad_vault_setup.server_kind import VaultServer
from tests.unit.conftest import MOCK_ACCESSOR, ON_OPENBAO

NAMESPACE = "vault:index/namespace:Namespace"
POLICY = "vault:index/policy:Policy"
OWNER = "organization/nomad-vault-setup/unit"
MARKER = marker_line(OWNER)
OURS = namespace_metadata(OWNER)
ROLE = '[{"name": "db", "boundClaims": {"nomad_namespace": "prod"}, "policy": "path \\"x\\" {}"}]'


def test_an_existing_namespace_not_tagged_as_ours_is_refused(run_program) -> None:
    foreign = {"nomad": {"created-by": "nomad-setup"}}
    with pytest.raises(PreflightError, match="namespace 'nomad' already exists") as caught:
        run_program({"namespace": "nomad"}, existing_namespaces=foreign)
    assert "nomad-vault-setup:namespace:" in str(caught.value)
    assert run_program.registered == [], "nothing is registered"


def test_our_own_namespace_and_unrelated_ones_are_fine(run_program) -> None:
    existing = {"nomad": OURS, "team": {}}
    run = run_program({"namespace": "nomad"}, existing_namespaces=existing)
    assert run.one(NAMESPACE).inputs["path"] == "nomad"
    assert run.one(NAMESPACE).inputs["customMetadata"] == OURS


def test_another_stacks_namespace_is_refused(run_program) -> None:
    """Tagged by this program, but for another stack: its destroy is not ours to run."""
    theirs = {"nomad": namespace_metadata("organization/nomad-vault-setup/prod")}
    with pytest.raises(PreflightError, match="custom metadata: created-by=nomad-vault-setup, "):
        run_program({"namespace": "nomad"}, existing_namespaces=theirs)
    assert run_program.registered == []


@pytest.mark.parametrize(
    ("metadata", "managed", "refused"),
    [
        (OURS, False, False),
        ({"created-by": "nomad-vault-setup"}, True, False),  # an earlier release's, recorded
        ({"created-by": "nomad-vault-setup"}, False, True),  # an earlier release's, not ours
        (namespace_metadata("organization/nomad-vault-setup/prod"), True, True),
        ({"created-by": "nomad-setup"}, True, True),
        ({}, False, True),
        (None, False, True),
    ],
)
def test_foreign_namespace_problem(metadata, managed, refused) -> None:
    problem = foreign_namespace_problem("nomad", "namespace", metadata, OWNER, managed)
    assert (problem is not None) == refused


@pytest.mark.parametrize(
    ("config", "existing", "setting"),
    [
        ({}, {"nomad-workloads": 'path "secret/*" { capabilities = ["read"] }'}, "policyName"),
        ({"roles": ROLE}, {"nomad-workloads-db": 'path "y" {}'}, "roles[0].policy"),
    ],
)
def test_an_existing_policy_that_is_not_ours_is_refused(run_program, config, existing, setting):
    with pytest.raises(PreflightError) as caught:
        run_program(config, existing_policies=existing)
    assert f"nomad-vault-setup:{setting}: policy " in str(caught.value)
    assert MARKER in str(caught.value), "says how to hand it over on purpose"
    assert run_program.registered == [], "nothing is registered, so nothing is written"


def test_every_owned_problem_comes_in_one_error(run_program) -> None:
    with pytest.raises(PreflightError) as caught:
        run_program(
            {"namespace": "nomad", "roles": ROLE},
            existing_namespaces={"nomad": {}},
            server=VaultServer("vault", "1.14.10"),
        )
    text = str(caught.value)
    assert text.index("  - nomad-vault-setup:acceptJobIdRisks: ") < text.index(
        "  - nomad-vault-setup:namespace: namespace 'nomad' already exists"
    )


def test_policies_this_stack_wrote_are_its_own(run_program) -> None:
    legacy = render_workload_policy(MOCK_ACCESSOR, "secret")
    run = run_program(
        {"roles": ROLE},
        existing_policies={
            "nomad-workloads": legacy,  # an earlier release's, on the stack's own mount
            "nomad-workloads-db": marked('path "old" {}', OWNER),
        },
        existing_auth_mounts={"jwt-nomad": MOCK_ACCESSOR},
        # What an earlier release recorded: the mount, but no `vault_server`.
        previous_outputs={"auth_path": "jwt-nomad", "namespace": ""},
    )
    assert len(run.of_type(POLICY)) == 2


def test_a_workload_policy_bound_to_another_mount_is_not_ours(run_program) -> None:
    other_mounts = render_workload_policy("auth_jwt_99999999", "secret")
    with pytest.raises(PreflightError, match="policy 'nomad-workloads' already exists"):
        run_program(
            {},
            existing_policies={"nomad-workloads": other_mounts},
            existing_auth_mounts={"jwt-nomad": MOCK_ACCESSOR},
        )


def test_every_policy_is_written_with_its_owners_marker(run_program) -> None:
    run = run_program({"roles": ROLE})
    texts = [resource.inputs["policy"] for resource in run.of_type(POLICY)]
    assert all(text.splitlines()[0] == MARKER for text in texts), texts


@pytest.mark.parametrize(
    ("live", "refused"),
    [
        (None, False),
        (MARKER + '\npath "a" {}', False),
        ('path "a" {}\n' + MARKER, True),  # the marker counts as the first line only
        ('path "a" {}\u2028' + MARKER, True),
        (marker_line("organization/nomad-vault-setup/staging") + '\npath "a" {}', True),
        (marker_line("acme/nomad-vault-setup/unit") + '\npath "a" {}', True),
        ('path "a" {}', True),
        ("", True),
    ],
)
def test_foreign_policy_problem(live, refused) -> None:
    assert (foreign_policy_problem("p", "policyName", live, OWNER) is not None) == refused


def test_a_managed_policy_that_names_another_stack_is_still_refused() -> None:
    theirs = marker_line("organization/nomad-vault-setup/prod") + '\npath "a" {}'
    assert foreign_policy_problem("p", "policyName", theirs, OWNER, managed=True)
    assert foreign_policy_problem("p", "policyName", 'path "a" {}', OWNER, managed=True) is None


def test_an_inline_policy_with_the_configured_text_but_no_marker_is_not_ours(run_program):
    with pytest.raises(PreflightError, match=r"roles\[0\]\.policy: policy 'nomad-workloads-db'"):
        run_program({"roles": ROLE}, existing_policies={"nomad-workloads-db": 'path "x" {}'})


def test_a_json_inline_policy_is_refused_by_name(run_program) -> None:
    role = '[{"name": "db", "boundClaims": {"nomad_namespace": "p"}, "policy": "{\\"path\\": {}}"}]'
    with pytest.raises(Exception, match=r"roles\[0\]\.policy.*must be HCL, not JSON"):
        run_program({"roles": role})


def test_a_server_that_expands_globs_is_refused_unless_accepted(run_program) -> None:
    vault_1_14 = VaultServer("vault", "1.14.10")
    with pytest.raises(PreflightError, match="acceptJobIdRisks") as caught:
        run_program({}, server=vault_1_14)
    assert run_program.registered == []
    assert "1.14.10" in str(caught.value)
    run = run_program({"acceptJobIdRisks": '["glob", "slash"]'}, server=vault_1_14)
    assert run.of_type(POLICY)
    assert run_program.probed == ["https://vault.example.test:8200"]


@pytest.mark.parametrize(
    ("outputs", "config"),
    [
        ({"vault_policies": ["nomad-workloads", "nomad-workloads-db"], "namespace": ""}, {}),
        ({"policy_name": "nomad-workloads", "namespace": ""}, {}),  # an earlier release's
        (
            {"vault_policies": {"east": ["nomad-workloads-east"]}, "namespace": {"east": ""}},
            {"clusters": '[{"name": "east"}]'},
        ),
    ],
)
def test_a_policy_the_last_update_managed_is_repaired_whatever_its_text(
    run_program, outputs, config
) -> None:
    drifted = {
        name: 'path "sys/*" { capabilities = ["read"] }'
        for name in ("nomad-workloads", "nomad-workloads-east")
    }
    run = run_program(
        config, existing_policies=drifted, previous_outputs=outputs | {"vault_server": ON_OPENBAO}
    )
    assert run.of_type(POLICY)


def test_outputs_recorded_on_another_server_are_not_trusted(run_program) -> None:
    drifted = {"nomad-workloads": 'path "sys/*" { capabilities = ["read"] }'}
    outputs = {"vault_policies": ["nomad-workloads"], "namespace": ""}
    for elsewhere in (
        None,  # an earlier release recorded no server
        {"cluster_id": "another-cluster", "namespace": ""},
        {"cluster_id": "cluster-unit", "namespace": "org"},
    ):
        with pytest.raises(PreflightError, match="policy 'nomad-workloads' already exists"):
            run_program(
                {},
                existing_policies=drifted,
                previous_outputs=outputs | {"vault_server": elsewhere},
            )


def test_the_server_a_run_applied_to_is_an_output(run_program) -> None:
    assert run_program().exports["vault_server"] == ON_OPENBAO


def test_a_policy_managed_in_another_namespace_is_not_this_ones(run_program) -> None:
    with pytest.raises(PreflightError, match="policy 'nomad-workloads' already exists"):
        run_program(
            {"namespace": "nomad"},
            existing_namespaces={"nomad": OURS},
            existing_policies={"nomad-workloads": 'path "x" {}'},
            previous_outputs={
                "vault_policies": ["nomad-workloads"],
                "namespace": "",
                "vault_server": ON_OPENBAO,
            },
        )


def test_the_policies_a_stack_manages_are_an_output(run_program) -> None:
    run = run_program({"roles": ROLE})
    assert run.exports["vault_policies"] == ["nomad-workloads", "nomad-workloads-db"]
