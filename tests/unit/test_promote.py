"""The promotion decisions on recorded preview and history data (no engine, no server)."""

import json
from pathlib import Path

import pytest
from pulumi import automation as auto

from devtools.promote import (
    Step,
    pending_changes,
    protected_refusals,
    risky_steps,
    source_problems,
)

STACK = "urn:pulumi:staging::nomad-vault-setup::"
COMPONENT = "nomad-vault-setup:index:NomadVaultSetup$"
AUTH = "vault:jwt/authBackend:AuthBackend"
NAMESPACE = "vault:index/namespace:Namespace"
POLICY = "vault:index/policy:Policy"
ROLE = "vault:jwt/authBackendRole:AuthBackendRole"
HEAD = "f8cc32e45199a0b1c2d3e4f5a6b7c8d9e0f1a2b3"
RECORDED = json.loads((Path(__file__).parent / "data" / "promote_recorded.json").read_text())


def recorded_steps(entries: list[dict]) -> list[Step]:
    return [Step(**entry | {"diffs": tuple(entry["diffs"])}) for entry in entries]


@pytest.mark.parametrize(
    ("change", "verdict"),
    [
        ("token_period", []),
        ("move_auth_path", [f"update {AUTH} nomad-auth: moves the auth mount (authPath)"]),
        ("rename_policy", [f"replace {POLICY} nomad-policy: renames the policy (policyName)"]),
        (
            "change_namespace",
            [
                f"replace {AUTH} nomad-auth (the JWT auth mount)",
                f"replace {NAMESPACE} nomad-namespace (the namespace)",
            ],
        ),
    ],
)
def test_recorded_previews_get_the_right_verdict(change: str, verdict: list[str]) -> None:
    assert risky_steps(recorded_steps(RECORDED[change])) == verdict


def test_a_recorded_protection_error_lists_each_protected_resource() -> None:
    recorded = RECORDED["change_protected_namespace"]
    assert risky_steps(recorded_steps(recorded["steps"])) == [], "the engine stops first"
    assert protected_refusals(recorded["error"]) == [
        f"replace {NAMESPACE} nomad-namespace (protected)",
        f"replace {AUTH} nomad-auth (protected)",
    ]


def step(op: str, typ: str, name: str, diffs: tuple[str, ...] = (), protected: bool = False):
    return Step(op, f"{STACK}{COMPONENT}{typ}::{name}", typ, diffs, protected)


def update(kind: str = "update", result: str = "succeeded", **environment: str):
    return auto.UpdateSummary(
        version=3,
        kind=kind,
        start_time=None,
        message="",
        environment={"git.head": HEAD, "git.dirty": "false"} | environment,
        config={},
        result=result,
        end_time=None,
        resource_changes={},
    )


def test_a_plain_promotion_has_no_risky_step() -> None:
    steps = [
        step("same", NAMESPACE, "nomad-namespace"),
        step("same", AUTH, "nomad-auth"),
        step("update", POLICY, "nomad-policy", ("policy",)),
        step("update", ROLE, "nomad-role", ("tokenPeriod",)),
        step("create", ROLE, "nomad-role-db-admin"),
        step("delete", ROLE, "nomad-role-old"),
    ]
    assert risky_steps(steps) == []


def test_replacing_or_deleting_the_mount_or_namespace_is_risky() -> None:
    steps = [
        step("delete-replaced", NAMESPACE, "nomad-namespace"),
        step("replace", AUTH, "nomad-auth", ("namespace",)),
        step("delete", AUTH, "nomad-auth-b"),
    ]
    assert risky_steps(steps) == [
        f"replace {NAMESPACE} nomad-namespace (the namespace)",
        f"replace {AUTH} nomad-auth (the JWT auth mount)",
        f"delete {AUTH} nomad-auth-b (the JWT auth mount)",
    ]


def test_moving_the_mount_renaming_the_policy_or_touching_protected_things_is_risky() -> None:
    steps = [
        step("update", AUTH, "nomad-auth", ("path",)),
        step("replace", POLICY, "nomad-policy", ("name",)),
        step("delete", "vault:index/mount:Mount", "nomad-kv", protected=True),
    ]
    assert risky_steps(steps) == [
        f"update {AUTH} nomad-auth: moves the auth mount (authPath)",
        f"replace {POLICY} nomad-policy: renames the policy (policyName)",
        "delete vault:index/mount:Mount nomad-kv (a protected resource)",
    ]


def test_pulumis_own_protection_errors_are_listed() -> None:
    recorded = (
        'error: unable to replace resource "urn:pulumi:staging::nomad-vault-setup::'
        f'{COMPONENT}{NAMESPACE}::nomad-namespace"\n'
        "as it is currently marked for protection. To unprotect the resource, ...\n"
        'error: unable to replace resource "urn:pulumi:staging::nomad-vault-setup::'
        f'{COMPONENT}{AUTH}::nomad-auth" as part of replacing "urn:pulumi:staging::x" '
        "as it is currently marked for protection.\n"
    )
    assert protected_refusals(recorded) == [
        f"replace {NAMESPACE} nomad-namespace (protected)",
        f"replace {AUTH} nomad-auth (protected)",
    ]
    assert protected_refusals("error: 400 error checking jwks URL") == []


def test_the_source_must_have_succeeded_from_this_commit() -> None:
    assert source_problems(update(), HEAD, "dev") == []
    assert "has no update yet" in source_problems(None, HEAD, "dev")[0]
    (failed,) = source_problems(update(result="failed"), HEAD, "dev")
    assert "did not succeed (failed)" in failed
    (refresh_only,) = source_problems(update(kind="refresh"), HEAD, "dev")
    assert "the last refresh of dev" in refresh_only
    (other,) = source_problems(update(**{"git.head": "0123456789ab" + "0" * 28}), HEAD, "dev")
    assert "last updated from commit 0123456789ab, not from f8cc32e45199" in other
    (dirty,) = source_problems(update(**{"git.dirty": "true"}), HEAD, "dev")
    assert "uncommitted changes" in dirty


def test_pending_changes_ignore_unchanged_resources() -> None:
    assert pending_changes({"same": 5}) == {}
    assert pending_changes({"same": 3, "update": 2, "create": 0}) == {"update": 2}
