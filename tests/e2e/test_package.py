"""NomadVaultSetup in other teams' programs, through the real engine on a real OpenBao.

examples/yaml is copied and given the package with `pulumi package add <copy of the
repository's package files>/provider`, as a user would from a clone; examples/python imports
the library pip built from the repository. Each goes up, lets a Nomad job read its own
secret and no other's, changes nothing on a second `up`, and leaves nothing behind on
`destroy`. The tests of a module run in file order.
"""

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import yaml
from pulumi import automation as auto

from devtools import consumer, openbao, workspace
from devtools.issuer import Issuer, IssuerServer
from devtools.proc import stop
from devtools.workload import denied, login, login_error, read_secret, write_secret
from nomad_vault_setup.package import schema
from nomad_vault_setup.resource_types import CLUSTER_COMPONENT
from tests.e2e.harness import changes
from tests.hcl import parse_hcl

AUTH, ROLE, POLICY = "jwt-nomad", "nomad-workloads", "nomad-workloads"
SECRETS = {
    "default/web": {"password": "web"},
    "default/api": {"password": "api"},
    "ci/deploy": {"password": "ci-deploy"},
    "shared/ci/registry": {"password": "registry"},
}


class Consumer:
    """A server, an issuer, and one example program's stack on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = openbao.start(root / "openbao", token="package-e2e-token")
        self.issuer = Issuer()
        self.issuer_server = IssuerServer(self.issuer).start()
        self.vault = hvac.Client(url=self.server.address, token=self.server.token)
        self.before = self.snapshot()
        self.stack: auto.Stack

    def snapshot(self) -> dict[str, Any]:
        """What this server has that a program could have created."""
        return {
            "auth": sorted(self.vault.sys.list_auth_methods()["data"]),
            "mounts": sorted(self.vault.sys.list_mounted_secrets_engines()["data"]),
            "policies": sorted(self.vault.sys.list_acl_policies()["data"]["keys"]),
        }

    def login(self, job: str, namespace: str = "default", role: str = ROLE) -> hvac.Client:
        identity = self.issuer.mint(job, namespace=namespace)
        return login(self.server.address, identity, AUTH, role)

    def close(self) -> None:
        self.issuer_server.stop()
        stop(self.server.pid)


def running(root: Path, program: Callable[[Path, Any], auto.Stack]) -> Iterator[Consumer]:
    """A consumer whose stack runs `program` (consumer.yaml_program or python_program)."""
    used = Consumer(root)
    try:
        used.stack = program(used.root, used.server)
        consumer.configure(used.stack, jwksUrl=used.issuer_server.jwks_url)
        yield used
    finally:
        used.close()


@pytest.fixture(scope="module")
def yaml_consumer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consumer]:
    yield from running(tmp_path_factory.mktemp("yaml-consumer"), consumer.yaml_program)


def program_file(used: Consumer) -> Path:
    return Path(used.stack.workspace.work_dir) / "Pulumi.yaml"


def test_the_package_is_added_from_the_repository_path(yaml_consumer: Consumer) -> None:
    project = yaml.safe_load(program_file(yaml_consumer).read_text())
    package = yaml_consumer.root / "package" / "provider"
    assert project["packages"] == {"nomad-vault-setup": str(package)}
    # A copy of the repository's files: the package as a clone or a git URL gives it.
    assert (package / "PulumiPlugin.yaml").read_text() == (
        consumer.PACKAGE_DIR / "PulumiPlugin.yaml"
    ).read_text()


def digest(package: dict[str, Any]) -> dict[str, Any]:
    """What a program sees of a schema: each resource's and type's properties with their type,
    plainness and description, and which are required."""

    def properties(spec: dict[str, Any]) -> dict[str, Any]:
        return {
            name: (prop.get("type") or prop.get("$ref"), prop.get("plain"), prop["description"])
            for name, prop in (spec or {}).items()
        }

    return {
        "name": package["name"],
        "version": package["version"],
        "resources": {
            token: (
                spec.get("description"),
                properties(spec.get("inputProperties")),
                sorted(spec.get("requiredInputs") or []),
                properties(spec.get("properties")),
                sorted(spec.get("required") or []),
            )
            for token, spec in package["resources"].items()
        },
        "types": {
            token: (properties(spec["properties"]), sorted(spec.get("required") or []))
            for token, spec in package["types"].items()
        },
    }


def test_the_advertised_schema_is_the_components(yaml_consumer: Consumer) -> None:
    package = yaml_consumer.root / "package" / "provider"
    printed = consumer.cli(yaml_consumer.stack, "package", "get-schema", str(package))
    advertised = json.loads(printed)
    assert digest(advertised) == digest(schema())
    assert advertised["name"] == "nomad-vault-setup"
    resource = advertised["resources"][CLUSTER_COMPONENT]
    assert resource["isComponent"] is True
    inputs = resource["inputProperties"]
    assert inputs["authPath"] == {
        "type": "string",
        "plain": True,
        "description": "Path of the JWT auth mount (slashes trimmed). Default: jwt-nomad.",
    }
    assert inputs["manageKvMount"]["type"] == "boolean"
    assert inputs["audiences"]["type"] == "array"
    assert inputs["roles"]["items"]["$ref"] == "#/types/nomad-vault-setup:index:ExtraRoleArgs"
    assert "requiredInputs" not in resource  # every input has a default
    role = advertised["types"]["nomad-vault-setup:index:ExtraRoleArgs"]
    assert sorted(role["required"]) == ["boundClaims", "name"]
    assert sorted(resource["required"]) == sorted(resource["properties"])
    assert resource["properties"]["authAccessor"]["description"] == (
        "the JWT auth mount's accessor (the workload policy is templated on it)"
    )


def test_up_creates_the_objects_and_hands_over_the_nomad_config(yaml_consumer: Consumer) -> None:
    result = yaml_consumer.stack.up(color="never")
    # The component, mount, workload policy and role, the extra role and its policy.
    assert changes(result.summary.resource_changes) == {"create": 7}
    outputs = workspace.outputs(yaml_consumer.stack)
    vault = yaml_consumer.vault
    mounts = vault.sys.list_auth_methods()["data"]
    assert outputs["authAccessor"] == mounts[f"{AUTH}/"]["accessor"]
    assert "nomad-vault-yaml-example/consumer/nomad" in mounts[f"{AUTH}/"]["description"]
    assert vault.read(f"auth/{AUTH}/config")["data"]["jwks_url"] == (
        yaml_consumer.issuer_server.jwks_url
    )
    role = vault.read(f"auth/{AUTH}/role/{ROLE}")["data"]
    assert (role["token_period"], role["bound_audiences"]) == (1800, ["vault.io"])
    assert sorted(vault.sys.list_acl_policies()["data"]["keys"]) == sorted(
        [*yaml_consumer.before["policies"], POLICY, f"{POLICY}-ci-deployer"]
    )
    (client,) = parse_hcl(outputs["nomadClientConfig"])["vault"]
    assert client == {
        "enabled": True,
        "address": yaml_consumer.server.address,
        "jwt_auth_backend_path": AUTH,
    }
    (server,) = parse_hcl(outputs["nomadServerConfig"])["vault"]
    assert server["default_identity"][0]["aud"] == ["vault.io"]


def test_a_job_reads_only_its_own_secrets(yaml_consumer: Consumer) -> None:
    for path, data in SECRETS.items():
        write_secret(yaml_consumer.vault, "secret", path, data)
    web = yaml_consumer.login("web")
    assert read_secret(web, "secret", "default/web") == SECRETS["default/web"]
    assert denied(read_secret, web, "secret", "default/api"), "another job's secret"
    assert denied(read_secret, web, "secret", "shared/ci/registry"), "the ci role's secrets"
    assert denied(write_secret, web, "secret", "default/web", {"password": "x"}), "a write"
    # The extra role: only jobs of Nomad namespace ci, and then the shared CI secrets too.
    deploy = yaml_consumer.login("deploy", namespace="ci", role="ci-deployer")
    assert read_secret(deploy, "secret", "shared/ci/registry") == SECRETS["shared/ci/registry"]
    assert read_secret(deploy, "secret", "ci/deploy") == SECRETS["ci/deploy"]
    identity = yaml_consumer.issuer.mint("web", namespace="default")
    refusal = login_error(yaml_consumer.server.address, identity, AUTH, "ci-deployer")
    assert refusal is not None and "claim" in refusal


def test_a_second_up_changes_nothing(yaml_consumer: Consumer) -> None:
    result = yaml_consumer.stack.up(color="never")
    assert result.summary.resource_changes == {"same": 7}
    preview = yaml_consumer.stack.preview(color="never", refresh=True, expect_no_changes=True)
    assert preview.change_summary == {"same": 7}


def set_properties(used: Consumer, **properties: Any) -> str:
    """Replace the component's properties in the program; the text before, to restore."""
    path = program_file(used)
    before = path.read_text()
    project = yaml.safe_load(before)
    project["resources"]["nomad"]["properties"] = properties
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return before


def refusal(used: Consumer, command: str, **properties: Any) -> str:
    """What the CLI says when `command` (up or preview) refuses the component with these
    properties; the program is restored after."""
    before = set_properties(used, **properties)
    try:
        with pytest.raises(auto.CommandError) as failed:
            getattr(used.stack, command)(color="never")
    finally:
        program_file(used).write_text(before)
    return str(failed.value)


def test_bad_inputs_from_yaml_are_refused_naming_each(yaml_consumer: Consumer) -> None:
    snapshot = yaml_consumer.snapshot()
    message = refusal(
        yaml_consumer,
        "up",
        jwksUrl=yaml_consumer.issuer_server.jwks_url,
        authPath="jwt nomad",
        tokenPeriod="soon",
        identityClaim="email",
        roles=[{"name": "wide", "boundClaims": {"nomad_job_id": ["*"]}, "policies": ["ops"]}],
    )
    for name in ("authPath", "tokenPeriod", "identityClaim", "roles[0].boundClaims"):
        assert f"NomadVaultSetup 'nomad' input {name}" in message, name
    assert "invalid NomadVaultSetup 'nomad' inputs, nothing was changed" in message
    assert "Traceback" not in message and 'File "' not in message
    assert yaml_consumer.snapshot() == snapshot


def test_an_unknown_or_mistyped_input_is_refused_by_name(yaml_consumer: Consumer) -> None:
    jwks = yaml_consumer.issuer_server.jwks_url
    for properties, expected in (
        ({"jwksUrl": jwks, "authPth": "jwt-other"}, "authPth"),
        ({"jwksUrl": jwks, "manageKvMount": "maybe"}, "manageKvMount"),
    ):
        assert expected in refusal(yaml_consumer, "preview", **properties)


def test_objects_the_program_did_not_make_are_refused_before_any_write(
    yaml_consumer: Consumer,
) -> None:
    yaml_consumer.vault.sys.create_or_update_acl_policy("team-policy", 'path "team/*" {}')
    snapshot = yaml_consumer.snapshot()
    message = refusal(
        yaml_consumer,
        "up",
        jwksUrl=yaml_consumer.issuer_server.jwks_url,
        policyName="team-policy",
        manageKvMount=True,  # kvMount `secret`: the server's own KV mount
    )
    assert "refusing to apply this stack, nothing was changed" in message
    assert "NomadVaultSetup 'nomad' input policyName: policy 'team-policy' already exists" in (
        message
    )
    assert "NomadVaultSetup 'nomad' input manageKvMount: the KV mount 'secret' already exists" in (
        message
    )
    assert "Traceback" not in message
    assert yaml_consumer.snapshot() == snapshot
    assert yaml_consumer.vault.sys.read_acl_policy("team-policy")["data"]["policy"] == (
        'path "team/*" {}'
    )
    yaml_consumer.vault.sys.delete_acl_policy("team-policy")


def test_destroy_leaves_nothing(yaml_consumer: Consumer) -> None:
    result = yaml_consumer.stack.destroy(color="never")
    assert changes(result.summary.resource_changes) == {"delete": 7}
    assert yaml_consumer.snapshot() == yaml_consumer.before


@pytest.fixture(scope="module")
def python_consumer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Consumer]:
    yield from running(tmp_path_factory.mktemp("python-consumer"), consumer.python_program)


def test_a_python_program_uses_the_pip_installed_library(python_consumer: Consumer) -> None:
    installed = python_consumer.root / "site-packages" / "nomad_vault_setup"
    assert (installed / "vault_setup.py").is_file()
    assert not (Path(python_consumer.stack.workspace.work_dir) / "nomad_vault_setup").exists()
    result = python_consumer.stack.up(color="never")
    # The program's own KV mount, and the component with its mount, policy and role.
    assert changes(result.summary.resource_changes) == {"create": 6}
    write_secret(python_consumer.vault, "apps", "default/web", {"password": "web"})
    write_secret(python_consumer.vault, "apps", "default/api", {"password": "api"})
    web = python_consumer.login("web")
    assert read_secret(web, "apps", "default/web") == {"password": "web"}
    assert denied(read_secret, web, "apps", "default/api")
    assert web.auth.token.lookup_self()["data"]["period"] == 3600
    assert python_consumer.stack.up(color="never").summary.resource_changes == {"same": 6}


def test_a_python_program_destroys_cleanly(python_consumer: Consumer) -> None:
    result = python_consumer.stack.destroy(color="never")
    assert changes(result.summary.resource_changes) == {"delete": 6}
    assert python_consumer.snapshot() == python_consumer.before
