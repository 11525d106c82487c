"""NomadVaultSetup for other programs: its package schema, its pip package, and the component
built from a Python program's inputs (under mocks: the shape; tests/e2e/test_package.py runs
the examples through the real engine)."""

import re
import tomllib
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from devtools.mock_program import ProgramRunner
from devtools.project_copy import PROJECT_DIR
from nomad_vault_setup import ConfigError, __version__, standalone
from nomad_vault_setup.config import cluster_keys
from nomad_vault_setup.config.derive import RISKS_KEY
from nomad_vault_setup.config.schema import ClusterSettings
from nomad_vault_setup.inputs import INPUTS, ROLE_INPUTS, ExtraRoleArgs, NomadVaultSetupArgs
from nomad_vault_setup.outputs import OUTPUTS, STACK_WIDE
from nomad_vault_setup.ownership import marker_line
from nomad_vault_setup.package import PACKAGE, schema
from nomad_vault_setup.preflight import PreflightError
from nomad_vault_setup.resource_types import AUTH_BACKEND, CLUSTER_COMPONENT, NAMESPACE, POLICY
from nomad_vault_setup.server_kind import VaultServer

# Stack keys a component's inputs leave out, and why (inputs.py says it too).
LEFT_OUT = {
    "adopt": "its namespace step needs the stack program's record",
    "keySource": "retiring a key needs the stack program's record of the last up",
    "nomadConfigDir": "delivery",
    "nomadAgents": "delivery",
    "replaceExistingFiles": "delivery",
}
OWNER = "organization/nomad-vault-setup/unit/team-a"


def camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


# --- the schema the package advertises ---------------------------------------------------


def test_the_schema_names_one_component_at_this_release() -> None:
    package = schema()
    assert (package["name"], package["version"]) == (PACKAGE, __version__)
    assert list(package["resources"]) == [CLUSTER_COMPONENT]
    assert list(package["types"]) == [f"{PACKAGE}:index:ExtraRoleArgs"]


def test_every_input_is_a_plain_optional_setting_of_the_stack() -> None:
    resource = schema()["resources"][CLUSTER_COMPONENT]
    inputs = resource["inputProperties"]
    assert set(inputs) == set(INPUTS) == {camel(key) for key in NomadVaultSetupArgs.__annotations__}
    assert set(INPUTS) == set(cluster_keys()) - set(LEFT_OUT) | {RISKS_KEY}
    assert not resource.get("requiredInputs")
    assert all(spec["plain"] for spec in inputs.values()), "settings are checked before use"
    types = {name: spec.get("type") or spec["$ref"] for name, spec in inputs.items()}
    assert types["manageKvMount"] == types["protect"] == "boolean"
    assert types["audiences"] == types["roles"] == types["acceptJobIdRisks"] == "array"
    assert types["tokenPeriod"] == types["jwksUrl"] == "string"


def test_a_role_needs_its_name_and_bound_claims() -> None:
    role = schema()["types"][f"{PACKAGE}:index:ExtraRoleArgs"]
    assert set(role["properties"]) == set(ROLE_INPUTS)
    assert {camel(key) for key in ExtraRoleArgs.__required_keys__} == set(role["required"])
    assert set(role["required"]) == {"name", "boundClaims"}
    assert role["properties"]["boundClaims"]["additionalProperties"]["type"] == "array"


def test_the_outputs_are_the_stack_outputs_with_their_descriptions() -> None:
    resource = schema()["resources"][CLUSTER_COMPONENT]
    described = {name: spec["description"] for name, spec in resource["properties"].items()}
    assert described == {
        camel(name): text for name, text in OUTPUTS.items() if name not in STACK_WIDE
    }
    assert sorted(resource["required"]) == sorted(described)


def descriptions() -> dict[str, str]:
    package = schema()
    inputs = package["resources"][CLUSTER_COMPONENT]["inputProperties"]
    role = package["types"][f"{PACKAGE}:index:ExtraRoleArgs"]["properties"]
    return {
        **{name: spec["description"] for name, spec in inputs.items()},
        **{f"roles[].{name}": spec["description"] for name, spec in role.items()},
    }


def test_every_description_is_one_paragraph_and_says_the_setting_it_is() -> None:
    project = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    for name, text in descriptions().items():
        assert text and "\n" not in text and "  " not in text, name
        stack_key = f"nomad-vault-setup:{name}"
        if stack_key in project and name != RISKS_KEY:
            # The stack's own description, first sentence on.
            said = project[stack_key]["description"].split(" (true in")[0].rstrip(".")
            assert text.startswith(said.split(";")[0]), name


def test_a_stated_default_is_the_default() -> None:
    defaults = ClusterSettings()
    stated = {
        name: match.group(1)
        for name, text in descriptions().items()
        if (match := re.search(r"Default: (.+)\.$", text))
    }
    assert set(stated) == {
        "jwksUrl",
        "authPath",
        "roleName",
        "policyName",
        "audiences",
        "tokenPeriod",
        "identityTtl",
        "kvMount",
        "identityClaim",
    }
    for name, text in stated.items():
        default = getattr(defaults, INPUTS[name])
        if isinstance(default, tuple):
            assert text == f"[{', '.join(default)}]", name
        elif isinstance(default, int):  # durations, in seconds
            assert ClusterSettings.model_validate({name: text}).model_dump()[INPUTS[name]] == (
                default
            ), name
        else:
            assert text == default, name


# --- the pip package ------------------------------------------------------------------------


def test_the_pip_package_pins_the_runtime_requirements() -> None:
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    pinned = [
        line.strip()
        for line in (PROJECT_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    # pulumi-command serves the stack program's agent delivery only.
    assert project["dependencies"] == [
        pin for pin in pinned if not pin.startswith("pulumi-command")
    ]
    assert project["name"] == PACKAGE


def test_the_pip_package_holds_every_module_and_one_version() -> None:
    tool = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {
        ".".join(init.parent.relative_to(PROJECT_DIR).parts)
        for init in (PROJECT_DIR / "nomad_vault_setup").rglob("__init__.py")
    }
    assert set(tool["packages"]) == packages
    assert tool["dynamic"]["version"] == {"attr": "nomad_vault_setup.version.__version__"}
    readme = (PROJECT_DIR / "README.md").read_text()
    assert f"@v{__version__}" in readme, "the README shows how to pin this release"


# --- built from a Python program's inputs -----------------------------------------------


def program(tmp_path: Path, body: str) -> Path:
    """A Pulumi Python program using the component: imports, then `body`."""
    path = tmp_path / "__main__.py"
    path.write_text(
        "import pulumi\nimport pulumi_vault as vault\n"
        "from nomad_vault_setup import NomadVaultSetup\n" + body
    )
    return path


def component(
    run_program: ProgramRunner, tmp_path: Path, args: dict[str, Any], **options: Any
) -> Any:
    body = f"nomad = NomadVaultSetup('team-a', {args!r})\n"
    body += "pulumi.export('outputs', {k: getattr(nomad, k) for k in " + repr(
        [name for name in OUTPUTS if name not in STACK_WIDE]
    )
    body += "})\n"
    return run_program(program=program(tmp_path, body), **options)


def test_a_python_program_builds_the_component_from_its_inputs(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    run = component(
        run_program,
        tmp_path,
        {"jwks_url": "https://nomad.example.test/.well-known/jwks.json", "auth_path": "jwt-a"},
    )
    assert [r.name for r in run.of_type(CLUSTER_COMPONENT)] == ["team-a"]
    auth = run.one(AUTH_BACKEND)
    assert auth.inputs["path"] == "jwt-a"
    # Its own owner: the stack and the component, so two components never share an object.
    assert auth.inputs["description"].endswith(f"stack {OWNER})")
    (policy,) = run.of_type(POLICY)
    assert policy.inputs["policy"].startswith(f"# Written by nomad-vault-setup (stack {OWNER}):")
    assert run.options["team-a-auth"].parent.endswith("::team-a")
    outputs = run.exports["outputs"]
    assert outputs["auth_path"] == "jwt-a" and outputs["namespace"] == ""
    assert 'jwt_auth_backend_path = "jwt-a"' in outputs["nomad_client_config"]


def test_the_component_makes_its_namespace_as_its_child(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    run = component(run_program, tmp_path, {"namespace": "nomad"})
    namespace = run.one(NAMESPACE)
    assert namespace.name == "team-a-namespace"
    assert namespace.inputs["customMetadata"] == {"created-by": "nomad-vault-setup", "stack": OWNER}
    assert run.options["team-a-namespace"].parent.endswith("::team-a")
    assert run.one(AUTH_BACKEND).inputs["namespace"] == "nomad"
    assert run.exports["outputs"]["namespace"] == "nomad"


def refusal(run_program: ProgramRunner, tmp_path: Path, body: str, **options: Any) -> str:
    with pytest.raises((ConfigError, PreflightError)) as refused:
        run_program(program=program(tmp_path, body), **options)
    registered = [r.typ for r in run_program.registered]
    assert registered == [], f"registered before refusing: {registered}"
    return str(refused.value)


def test_bad_inputs_are_refused_at_once_by_their_python_names(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    args = {
        "auth_path": "jwt nomad",
        "token_period": "soon",
        "manage_kv_mount": "yes",
        "roles": [{"name": "wide", "bound_claims": {"nomad_job_id": ["*"]}, "policies": ["ops"]}],
        "bogus_key": 1,
    }
    message = refusal(run_program, tmp_path, f"NomadVaultSetup('team-a', {args!r})\n")
    assert message.startswith("invalid NomadVaultSetup 'team-a' inputs, nothing was changed")
    for name in ("auth_path", "token_period", "manage_kv_mount", "roles[0].bound_claims"):
        assert f"NomadVaultSetup 'team-a' input {name}" in message, name
    assert "input bogus_key: unknown input; known inputs are jwks_url, jwks_ca_file" in message
    assert "authPath" not in message and "nomad-vault-setup:" not in message


def test_inputs_from_the_package_are_named_as_the_schema_names_them(
    run_program: ProgramRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(standalone, "SCHEMA_NAMES", True)
    args = {"auth_path": "jwt nomad", "roles": [{"name": "x", "bound_claims": {}}]}
    message = refusal(run_program, tmp_path, f"NomadVaultSetup('team-a', {args!r})\n")
    assert "input authPath = 'jwt nomad'" in message
    assert "input roles[0].boundClaims" in message


def test_an_output_as_input_is_refused(run_program: ProgramRunner, tmp_path: Path) -> None:
    body = "NomadVaultSetup('team-a', {'kv_mount': pulumi.Output.from_input('apps')})\n"
    message = refusal(run_program, tmp_path, body)
    assert "input kv_mount: must be a plain value, known when the program runs" in message


def test_args_that_are_not_a_dict_are_refused(run_program: ProgramRunner, tmp_path: Path) -> None:
    message = refusal(run_program, tmp_path, "NomadVaultSetup('team-a', ['jwt-nomad'])\n")
    assert "args must be a dict of inputs (NomadVaultSetupArgs), not list" in message


def test_an_explicit_vault_provider_is_refused(run_program: ProgramRunner, tmp_path: Path) -> None:
    body = (
        "other = vault.Provider('other', address='https://other.example.test:8200')\n"
        "NomadVaultSetup('team-a', {}, pulumi.ResourceOptions(provider=other))\n"
    )
    with pytest.raises(ConfigError) as refused:
        run_program(program=program(tmp_path, body))
    assert "NomadVaultSetup 'team-a': an explicit vault provider is not supported" in str(
        refused.value
    )
    assert CLUSTER_COMPONENT not in [r.typ for r in run_program.registered]


def test_a_job_id_risk_is_accepted_by_an_input(run_program: ProgramRunner, tmp_path: Path) -> None:
    vault_1_14 = VaultServer("vault", "1.14.10", "cluster-unit")
    message = refusal(run_program, tmp_path, "NomadVaultSetup('team-a', {})\n", server=vault_1_14)
    assert "NomadVaultSetup 'team-a' input accept_job_id_risks: on HashiCorp Vault" in message
    assert "add `glob` or `slash` to NomadVaultSetup 'team-a' input accept_job_id_risks" in message
    assert "pulumi config set" not in message
    body = "NomadVaultSetup('team-a', {'accept_job_id_risks': ['glob', 'slash']})\n"
    run = run_program(program=program(tmp_path, body), server=vault_1_14)
    assert run.of_type(CLUSTER_COMPONENT)


def test_another_components_policy_is_refused(run_program: ProgramRunner, tmp_path: Path) -> None:
    """Two components of one stack writing one policy: the second may not take it over."""
    theirs = marker_line("organization/nomad-vault-setup/unit/team-b")
    message = refusal(
        run_program,
        tmp_path,
        "NomadVaultSetup('team-a', {})\n",
        existing_policies={"nomad-workloads": f'{theirs}\npath "x" {{}}'},
    )
    assert "NomadVaultSetup 'team-a' input policy_name" in message
    # Its own marker is its own: the next run goes on.
    ours = f'{marker_line(OWNER)}\npath "x" {{}}'
    run = run_program(
        program=program(tmp_path, "NomadVaultSetup('team-a', {})\n"),
        existing_policies={"nomad-workloads": ours},
    )
    assert run.of_type(POLICY)


def test_the_stack_program_is_unchanged_by_the_package(run_program: ProgramRunner) -> None:
    """The stack program's objects keep the stack as their owner (no component name)."""
    run = run_program({"jwksUrl": "https://nomad.example.test/.well-known/jwks.json"})
    assert (
        run.one(AUTH_BACKEND)
        .inputs["description"]
        .endswith("stack organization/nomad-vault-setup/unit)")
    )
    assert [r.name for r in run.of_type(CLUSTER_COMPONENT)] == ["nomad"]
    assert pulumi.runtime.is_dry_run() is False


def test_a_name_that_is_not_plain_is_refused(run_program: ProgramRunner, tmp_path: Path) -> None:
    """The name is in every policy's first line: a newline there would be ACL text."""
    body = 'NomadVaultSetup(\'x\\npath "sys/*" { capabilities = ["sudo"] }\\n#\', {})\n'
    message = refusal(run_program, tmp_path, body)
    assert "NomadVaultSetup name 'x\\npath" in message
    assert "must be 1 to 100 letters, digits" in message


def test_two_components_writing_one_object_are_refused(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    body = (
        "NomadVaultSetup('a', {'auth_path': 'jwt-a', 'policy_name': 'shared'})\n"
        "NomadVaultSetup('b', {'auth_path': 'jwt-a', 'policy_name': 'shared',"
        " 'namespace': 'x'})\n"
        "NomadVaultSetup('c', {'auth_path': 'jwt-c', 'namespace': 'x'})\n"
    )
    with pytest.raises(ConfigError) as refused:
        run_program(program=program(tmp_path, body))
    message = str(refused.value)
    # b's mount and policy are inside namespace x: not a's. c's namespace is b's.
    assert "NomadVaultSetup 'c' input namespace: the namespace 'x' is NomadVaultSetup 'b''s" in (
        message
    )
    assert "NomadVaultSetup 'b' input" not in message
    names = sorted(r.name for r in run_program.registered if r.typ == CLUSTER_COMPONENT)
    assert names == ["a", "b"]


def test_the_same_names_in_two_components_outside_each_other_are_refused(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    body = (
        "NomadVaultSetup('a', {'auth_path': 'jwt-a', 'policy_name': 'shared'})\n"
        "NomadVaultSetup('b', {'auth_path': 'jwt-a', 'policy_name': 'shared'})\n"
    )
    with pytest.raises(ConfigError) as refused:
        run_program(program=program(tmp_path, body))
    message = str(refused.value)
    assert (
        "NomadVaultSetup 'b' input auth_path: the auth mount 'jwt-a' is NomadVaultSetup 'a''s"
        in (message)
    )
    assert "NomadVaultSetup 'b' input policy_name: the policy 'shared' is" in message


def test_a_provider_inherited_from_a_parent_is_refused(
    run_program: ProgramRunner, tmp_path: Path
) -> None:
    body = (
        "other = vault.Provider('other', address='https://other.example.test:8200')\n"
        "parent = pulumi.ComponentResource('team:index:Vault', 'team',"
        " None, pulumi.ResourceOptions(providers=[other]))\n"
        "NomadVaultSetup('team-a', {}, pulumi.ResourceOptions(parent=parent))\n"
    )
    with pytest.raises(ConfigError) as refused:
        run_program(program=program(tmp_path, body))
    assert "an explicit vault provider is not supported" in str(refused.value)


def test_python_inputs_are_spelt_in_snake_case(run_program: ProgramRunner, tmp_path: Path) -> None:
    args = {"authPath": "jwt-x", "roles": [{"name": "r", "boundClaims": {}, "policies": ["p"]}]}
    message = refusal(run_program, tmp_path, f"NomadVaultSetup('team-a', {args!r})\n")
    assert "input authPath: unknown input; known inputs are jwks_url" in message
    assert (
        "input roles[0].boundClaims: unknown input; known inputs are name, bound_claims" in message
    )
