"""What the deploying token must be allowed (capabilities.py): deployer-policy.hcl's rules
exactly, for the stack's own names, and each missing capability named with its path."""

import json

from devtools.project_copy import PROJECT_DIR
from nomad_vault_setup.adoption import acl_rules
from nomad_vault_setup.capabilities import (
    for_preview,
    missing_capabilities,
    missing_problems,
    required_capabilities,
)
from nomad_vault_setup.config import parse_settings

ADDRESS = {"nomadVaultAddress": "http://127.0.0.1:8200"}


def required(
    child_token: bool = True, prefix: str = "", **raw: object
) -> dict[str, frozenset[str]]:
    return required_capabilities(parse_settings(ADDRESS | raw), child_token, prefix)


def test_the_defaults_need_exactly_the_deployer_policy() -> None:
    documented = acl_rules((PROJECT_DIR / "deployer-policy.hcl").read_text())
    asked = {"sys/capabilities-self": frozenset({"update"})}  # the question itself
    assert {**required(), **asked} == documented


def test_every_name_and_namespace_of_the_stack_is_asked_for() -> None:
    rules = required(
        namespace="team",
        authPath="jwt-east",
        roleName="east",
        policyName="east",
        manageKvMount="true",
        kvMount="kv",
        roles=json.dumps(
            [{"name": "db", "boundClaims": {"nomad_namespace": "db"}, "policy": 'path "x" {}'}]
        ),
    )
    assert rules["sys/namespaces"] == {"list"}
    assert rules["sys/namespaces/team"] == {"create", "read", "update", "delete"}
    assert rules["team/sys/auth/jwt-east"] == {"create", "read", "update", "delete", "sudo"}
    assert "team/auth/jwt-east/role/db" in rules
    assert "team/sys/policies/acl/east-db" in rules
    assert rules["team/sys/mounts/kv"] == {"create", "read", "update", "delete"}
    assert not any(path.startswith("sys/auth/") for path in rules), "nothing outside team"


def test_without_a_child_token_token_create_is_not_needed() -> None:
    assert "auth/token/create" in required()
    assert "auth/token/create" not in required(child_token=False)


def test_a_preview_needs_only_the_reads() -> None:
    preview = for_preview(required())
    assert preview["sys/auth/jwt-nomad"] == {"read", "sudo"}, "reading a mount's entry needs sudo"
    assert preview["auth/jwt-nomad/role/nomad-workloads"] == {"read"}
    assert preview["auth/token/create"] == {"update"}
    assert all(
        needed <= {"read", "list", "sudo"}
        for path, needed in preview.items()
        if path != "auth/token/create"
    )


def test_each_missing_capability_is_named_with_its_path() -> None:
    rules = required()
    granted = {path: sorted(needed) for path, needed in rules.items()}
    granted["auth/jwt-nomad/role/nomad-workloads"] = ["create", "read", "update"]
    granted["sys/auth/jwt-nomad"] = ["deny"]
    missing = missing_capabilities(rules, granted)
    assert missing == {
        "auth/jwt-nomad/role/nomad-workloads": ["delete"],
        "sys/auth/jwt-nomad": ["create", "delete", "read", "sudo", "update"],
    }
    assert (
        "vault:token: the token may not delete `auth/jwt-nomad/role/nomad-workloads`, which this"
        ' stack needs; add `path "auth/jwt-nomad/role/nomad-workloads" { capabilities ='
        ' ["delete"] }` to its policy (deployer-policy.hcl has them all)'
    ) in missing_problems("vault:token", missing)


def test_a_root_token_lacks_nothing() -> None:
    rules = required()
    assert missing_capabilities(rules, {path: ["root"] for path in rules}) == {}


def test_update_is_enough_where_vault_checks_no_existence() -> None:
    rules = required()
    granted = {path: sorted(needed - {"create"}) for path, needed in rules.items()}
    assert missing_capabilities(rules, granted) == {
        "auth/jwt-nomad/role/nomad-workloads": ["create"]  # a role checks: create is needed
    }


def test_the_stack_paths_are_asked_under_the_providers_namespace_not_the_token_store() -> None:
    rules = required(prefix="team")
    assert "auth/token/lookup-self" in rules and "auth/token/create" in rules
    assert "team/sys/auth/jwt-nomad" in rules
    assert "sys/auth/jwt-nomad" not in rules
