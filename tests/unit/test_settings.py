"""Validation of the stack configuration: defaults, normalisation, every rule, one error."""

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from components.provider_guard import token_binding_problem
from components.settings import (
    ConfigError,
    Settings,
    StackSettings,
    config_keys,
    load_settings,
    parse_settings,
)
from tests.unit.conftest import PROJECT_DIR

ADDRESS = {"nomadVaultAddress": "http://127.0.0.1:8200"}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def single(raw: dict) -> Settings:
    """The settings of a stack without `clusters`."""
    stack = parse_settings(raw)
    assert not stack.multi_cluster
    (cluster,) = stack.clusters
    return cluster.settings


def error_lines(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    return str(caught.value).splitlines()[1:]


def test_defaults_are_those_of_nomad_setup_vault() -> None:
    settings = single(ADDRESS)
    assert settings.jwks_url == "http://localhost:4646/.well-known/jwks.json"
    assert (settings.auth_path, settings.role_name, settings.policy_name) == (
        "jwt-nomad",
        "nomad-workloads",
        "nomad-workloads",
    )
    assert settings.audiences == ("vault.io",)
    assert (settings.token_period, settings.identity_ttl) == (1800, 3600)
    assert (settings.kv_mount, settings.namespace, settings.jwks_ca_pem) == ("secret", "", "")


def test_pulumi_yaml_declares_every_key_with_the_same_default() -> None:
    declared = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["config"]
    defaults = {key.split(":", 1)[1]: spec["default"] for key, spec in declared.items()}
    assert sorted(defaults) == config_keys()
    defaults.pop("nomadVaultAddress")  # "" = the provider's address, resolved at load time
    assert single(defaults | ADDRESS) == single(ADDRESS)


def test_values_are_normalised() -> None:
    settings = single(
        ADDRESS
        | {
            "authPath": "/nomad/jwt/",
            "kvMount": "/kv/",
            "namespace": "/nomad/",
            "tokenPeriod": "1h30m",
            "identityTtl": "900",
            "audiences": '["a", "b"]',
        }
    )
    assert (settings.auth_path, settings.kv_mount, settings.namespace) == (
        "nomad/jwt",
        "kv",
        "nomad",
    )
    assert (settings.token_period, settings.identity_ttl) == (5400, 900)
    assert settings.audiences == ("a", "b")


def test_a_single_audience_string_is_a_list_of_one() -> None:
    assert single(ADDRESS | {"audiences": "nomad.example"}).audiences == ("nomad.example",)


def test_jwks_ca_file_is_read_into_the_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    assert single(ADDRESS | {"jwksCaFile": str(ca)}).jwks_ca_pem == PEM


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("jwksUrl", "not a url", "http:// or https://"),
        ("jwksUrl", "ftp://nomad:4646/jwks", "http:// or https://"),
        ("jwksUrl", "https://", "with a host"),
        ("nomadVaultAddress", "vault:8200", "http:// or https://"),
        ("tokenPeriod", "0s", "positive duration"),
        ("tokenPeriod", "soon", "positive duration"),
        ("identityTtl", "-1h", "positive duration"),
        ("identityTtl", "0", "positive duration"),
        ("kvMount", "", "non-empty mount path"),
        ("kvMount", "///", "non-empty mount path"),
        ("authPath", "jwt nomad", "mount path"),
        ("authPath", "token", "built-in token auth"),
        ("kvMount", "sys", "system mount"),
        ("kvMount", "cubbyhole/x", "system mount"),
        ("namespace", "Sys", "one namespace name"),
        ("roleName", "a/b", "without '/'"),
        ("roleName", "Nomad", "lowercase"),
        ("policyName", "x/y", "without '/'"),
        ("policyName", "default", "built-in policy"),
        ("policyName", "root", "built-in policy"),
        ("namespace", "a/b", "one namespace name"),
        ("namespace", "sys", "one namespace name"),
        ("audiences", "[]", "non-empty list"),
        ("audiences", '["vault.io", " "]', "non-empty audience"),
        ("jwksCaFile", "/does/not/exist.pem", "readable PEM file"),
    ],
)
def test_each_bad_value_is_named_by_its_config_key(key: str, value: str, says: str) -> None:
    (line,) = error_lines(ADDRESS | {key: value})
    assert line.startswith(f"  - nomad-vault-setup:{key} = {value!r}: ")
    assert says in line


def test_a_file_without_a_certificate_is_refused(tmp_path: Path) -> None:
    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    (line,) = error_lines(ADDRESS | {"jwksCaFile": str(not_pem)})
    assert "CERTIFICATE" in line


def test_every_bad_key_is_reported_in_one_error() -> None:
    lines = error_lines(
        {
            "jwksUrl": "ftp://x",
            "tokenPeriod": "0",
            "kvMount": "",
            "roleName": "a/b",
            "audiences": "[]",
            "jwksCaFile": "/nope.pem",
            "tokenPerod": "1h",
        }
    )
    named = {line.split(":", 2)[1].split(" ")[0] for line in lines}
    assert named == {
        "jwksUrl",
        "tokenPeriod",
        "kvMount",
        "roleName",
        "audiences",
        "jwksCaFile",
        "tokenPerod",
        "nomadVaultAddress",
    }


def test_unknown_keys_are_refused_with_the_known_ones_listed() -> None:
    (line,) = error_lines(ADDRESS | {"tokenPerod": "1h"})
    assert "tokenPerod: unknown setting" in line and "tokenPeriod" in line


def test_without_any_vault_address_the_error_says_how_to_set_one() -> None:
    (line,) = error_lines({})
    assert "nomadVaultAddress" in line and "VAULT_ADDR" in line and "vault:address" in line


def test_settings_are_frozen() -> None:
    settings = single(ADDRESS)
    with pytest.raises(ValueError):
        settings.role_name = "other"  # type: ignore[misc]


@pytest.fixture
def stack_config(monkeypatch: pytest.MonkeyPatch):
    """Set the engine's config map as the language host would, and no provider environment."""
    for variable in ("VAULT_ADDR", "VAULT_NAMESPACE", "PULUMI_CONFIG"):
        monkeypatch.delenv(variable, raising=False)

    def set_config(values: dict[str, str]) -> None:
        pulumi.runtime.set_all_config(values)

    yield set_config
    pulumi.runtime.set_all_config({})


def test_load_defaults_the_nomad_address_to_the_provider_address(stack_config) -> None:
    stack_config(
        {
            "vault:address": "https://vault.internal:8200",
            "vault:token": "stack-token",
            "nomad-vault-setup:nomadVaultAddress": "",
        }
    )
    assert load_settings().clusters[0].settings.nomad_vault_address == "https://vault.internal:8200"


def test_load_falls_back_to_vault_addr_and_vault_namespace(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("VAULT_NAMESPACE", "team")
    stack_config({"nomad-vault-setup:namespace": "nomad"})
    settings = load_settings().clusters[0].settings
    assert settings.nomad_vault_address == "http://127.0.0.1:8200"
    assert settings.client_namespace == "team/nomad"


def test_an_explicit_nomad_address_wins(stack_config) -> None:
    stack_config(
        {
            "vault:address": "http://127.0.0.1:8200",
            "vault:token": "stack-token",
            "nomad-vault-setup:nomadVaultAddress": "https://vault.service.consul:8200",
        }
    )
    assert (
        load_settings().clusters[0].settings.nomad_vault_address
        == "https://vault.service.consul:8200"
    )


def test_load_reports_keys_of_other_projects_not_at_all(stack_config) -> None:
    stack_config({"vault:address": "http://127.0.0.1:8200", "vault:token": "t", "aws:region": "x"})
    assert isinstance(load_settings(), StackSettings)


def role(**overrides) -> dict:
    return {
        "name": "db",
        "boundClaims": {"nomad_namespace": "prod"},
        "policies": ["db"],
    } | overrides


@pytest.mark.parametrize(
    ("entry", "key", "says"),
    [
        (
            role(boundClaims={"nomad_job_id": "db"}),
            "roles[0].boundClaims",
            "must bind nomad_namespace",
        ),
        (role(boundClaims={"nomad_namespace": "*"}), "roles[0].boundClaims", "not '*'"),
        (role(boundClaims={"nomad_namespace": "*-"}), "roles[0].boundClaims", "not '*'"),
        (role(boundClaims={"nomad_namespace": "*d*"}), "roles[0].boundClaims", "not '*'"),
        (role(boundClaims={"nomad_namespace": ["prod", "a*b"]}), "roles[0].boundClaims", "prefix"),
        (
            role(boundClaims={"nomad_namespace": "prod", "team": "x"}),
            "roles[0].boundClaims",
            "unknown claim team",
        ),
        (
            role(boundClaims={"nomad_namespace": "prod", "nomad_job_id": "a,b"}),
            "roles[0].boundClaims",
            "without ','",
        ),
        (role(name="DB"), "roles[0].name", "lowercase"),
        (role(policies=[]), "roles[0]", "needs `policies`"),
        (role(policies=["default"]), "roles[0].policies[0]", "built-in policy"),
        (role(tokenPeriod="0"), "roles[0].tokenPeriod", "positive duration"),
        (role(colour="red"), "roles[0].colour", "unknown setting"),
        (role(name="nomad-workloads"), "roles", "must differ from roleName"),
    ],
)
def test_each_bad_role_is_named(entry: dict, key: str, says: str) -> None:
    (line,) = error_lines(ADDRESS | {"roles": json.dumps([entry])})
    assert line.startswith(f"  - nomad-vault-setup:{key}"), line
    assert says in line


def test_a_valid_role_is_parsed() -> None:
    entry = role(
        boundClaims={"nomad_namespace": ["prod", "staging-*"]}, policy="path ...", tokenPeriod="5m"
    )
    (parsed,) = single(ADDRESS | {"roles": json.dumps([entry])}).roles
    assert parsed.bound_claims == {"nomad_namespace": ("prod", "staging-*")}
    assert (parsed.policies, parsed.policy, parsed.token_period) == (("db",), "path ...", 300)


def test_identity_claim_is_unique_id_or_job_id() -> None:
    assert single(ADDRESS).identity_claim == "unique-id"
    assert single(ADDRESS | {"identityClaim": "job-id"}).identity_claim == "job-id"
    (line,) = error_lines(ADDRESS | {"identityClaim": "sub"})
    assert "identityClaim" in line and "'unique-id' or 'job-id'" in line


def clusters(*entries: dict) -> dict:
    return ADDRESS | {"clusters": json.dumps(list(entries))}


def test_clusters_inherit_the_top_level_and_derive_their_paths() -> None:
    stack = parse_settings(
        clusters({"name": "east"}, {"name": "west", "kvMount": "kv-west"}) | {"kvMount": "kv"}
    )
    assert stack.multi_cluster
    east, west = (cluster.settings for cluster in stack.clusters)
    assert (east.auth_path, east.policy_name, east.kv_mount) == (
        "jwt-nomad-east",
        "nomad-workloads-east",
        "kv",
    )
    assert (west.auth_path, west.policy_name, west.kv_mount) == (
        "jwt-nomad-west",
        "nomad-workloads-west",
        "kv-west",
    )


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        (({"name": "a"}, {"name": "a"}), "clusters a, a use the same name"),
        (
            ({"name": "a", "authPath": "jwt"}, {"name": "b", "authPath": "/jwt/"}),
            "share an auth path",
        ),
        (
            ({"name": "a", "policyName": "p"}, {"name": "b", "policyName": "p"}),
            "write the same policy",
        ),
        (
            ({"name": "a", "manageKvMount": True}, {"name": "b", "manageKvMount": True}),
            "both manage one KV mount",
        ),
    ],
)
def test_two_clusters_never_write_the_same_object(entries: tuple, says: str) -> None:
    lines = error_lines(clusters(*entries))
    assert all(line.startswith("  - nomad-vault-setup:clusters: ") for line in lines), lines
    assert any(says in line for line in lines), lines


def test_clusters_in_different_namespaces_may_share_paths() -> None:
    stack = parse_settings(
        clusters(
            {"name": "a", "authPath": "jwt", "namespace": "x"}, {"name": "b", "authPath": "jwt"}
        )
    )
    assert [c.name for c in stack.clusters] == ["a", "b"]


@pytest.mark.parametrize(
    ("entry", "key", "says"),
    [
        ({"name": "East"}, "clusters[0].name", "lowercase"),
        ({}, "clusters[0].name", "lowercase"),
        ({"name": "a", "jwksURL": "http://x"}, "clusters[0].jwksURL", "unknown setting"),
        ({"name": "a", "tokenPeriod": "never"}, "clusters[0].tokenPeriod", "positive duration"),
    ],
)
def test_each_bad_cluster_entry_is_named(entry: dict, key: str, says: str) -> None:
    (line,) = error_lines(clusters(entry))
    assert line.startswith(f"  - nomad-vault-setup:{key}"), line
    assert says in line


def test_clusters_must_be_a_list_of_objects() -> None:
    (line,) = error_lines(ADDRESS | {"clusters": '["east"]'})
    assert "clusters: must be a list of objects" in line


def test_role_cluster_and_top_level_problems_come_in_one_error() -> None:
    lines = error_lines(
        clusters({"name": "a", "roles": [role(boundClaims={})]}, {"name": "a"}) | {"kvMount": ""}
    )
    assert len(lines) == 3, lines
    assert "nomad-vault-setup:kvMount = ''" in lines[0], "an inherited bad value is reported once"
    assert "clusters[0].roles[0].boundClaims" in lines[1]
    assert "clusters a, a use the same name" in lines[2]


def test_a_stack_naming_its_server_must_carry_its_own_token(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("VAULT_TOKEN", "dev-token")
    stack_config({"vault:address": "https://vault.prod.example:8200"})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "vault:address: this stack talks to https://vault.prod.example:8200" in str(caught.value)
    assert "pulumi config set --secret vault:token" in str(caught.value)


def test_a_stack_token_must_go_with_the_stacks_address(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    stack_config({"vault:token": "prod-token"})
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "vault:token: this stack has its own token but no vault:address" in str(caught.value)


@pytest.mark.parametrize(
    ("stack_address", "stack_token", "safe"),
    [
        (None, False, True),  # dev: the shell's VAULT_ADDR / VAULT_TOKEN pair
        ("https://v:8200", True, True),  # the stack's own pair, in every command
        ("https://v:8200", False, False),  # even when VAULT_ADDR is that server today:
        (None, True, False),  # refresh/destroy would not check it tomorrow
    ],
)
def test_only_a_stack_with_both_or_neither_is_safe(stack_address, stack_token, safe) -> None:
    assert (token_binding_problem(stack_address, stack_token) is None) == safe


# --- delivering the agent config: nomadConfigDir, nomadAgents, nomadAgentsPrivateKey ---

PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1ib2R5\n-----END OPENSSH PRIVATE KEY-----\n"
)
WITH_KEY = ADDRESS | {"nomadAgentsPrivateKey": PRIVATE_KEY}
AS_SECRET = {"nomadAgentsPrivateKey"}


def agents(*entries: dict) -> str:
    return json.dumps(list(entries))


def test_an_agent_needs_only_host_and_role() -> None:
    stack = parse_settings(
        WITH_KEY | {"nomadAgents": agents({"host": "Nomad-1.Internal", "role": "server"})},
        secret_keys=AS_SECRET,
    )
    (agent,) = stack.clusters[0].settings.nomad_agents
    assert (agent.host, agent.port, agent.user, agent.role) == (
        "nomad-1.internal",
        22,
        "root",
        "server",
    )
    assert agent.config_path == "/etc/nomad.d/vault.hcl"
    assert agent.reload_command == "systemctl restart nomad"
    assert agent.host_key == ""
    assert stack.agents_private_key.get_secret_value() == PRIVATE_KEY


def test_delivery_paths_are_normalised() -> None:
    entry = {
        "host": "n",
        "role": "client",
        "configPath": "/etc//nomad.d/./vault.hcl",
        "port": "2222",
    }
    raw = WITH_KEY | {"nomadConfigDir": "/srv/nomad/", "nomadAgents": agents(entry)}
    settings = parse_settings(raw, secret_keys=AS_SECRET).clusters[0].settings
    assert settings.nomad_config_dir == "/srv/nomad"
    (agent,) = settings.nomad_agents
    assert (agent.config_path, agent.port) == ("/etc/nomad.d/vault.hcl", 2222)


def test_delivery_is_off_by_default() -> None:
    stack = parse_settings(ADDRESS)
    assert stack.clusters[0].settings.nomad_config_dir == ""
    assert stack.clusters[0].settings.nomad_agents == ()
    assert stack.agents_private_key is None


@pytest.mark.parametrize(
    ("entry", "key", "says"),
    [
        ({"host": "root@nomad-1"}, "nomadAgents[0].host", "no user@ or :port"),
        ({"host": "nomad-1:22"}, "nomadAgents[0].host", "host name or an IP address"),
        ({"host": ""}, "nomadAgents[0].host", "host name or an IP address"),
        ({"port": 0}, "nomadAgents[0].port", "between 1 and 65535"),
        ({"port": "ssh"}, "nomadAgents[0].port", "integer"),
        ({"user": "root; rm -rf /"}, "nomadAgents[0].user", "must be a user name"),
        ({"role": "worker"}, "nomadAgents[0].role", "'server' or 'client'"),
        ({"configPath": "etc/nomad.d/vault.hcl"}, "nomadAgents[0].configPath", "absolute path"),
        ({"configPath": "/etc/nomad.d/"}, "nomadAgents[0].configPath", "not a directory"),
        ({"reloadCommand": " "}, "nomadAgents[0].reloadCommand", "non-empty shell command"),
        ({"hostKey": "AAAAC3Nza"}, "nomadAgents[0].hostKey", "public key as one line"),
        (
            {"colour": "red"},
            "nomadAgents[0].colour",
            "known settings are configPath, host, hostKey, port, reloadCommand, role, user",
        ),
    ],
)
def test_each_bad_agent_value_is_named(entry: dict, key: str, says: str) -> None:
    agent = {"host": "nomad-1", "role": "server"} | entry
    with pytest.raises(ConfigError) as caught:
        parse_settings(WITH_KEY | {"nomadAgents": agents(agent)}, secret_keys=AS_SECRET)
    (line,) = str(caught.value).splitlines()[1:]
    assert line.startswith(f"  - nomad-vault-setup:{key}"), line
    assert says in line


def test_an_agent_without_host_or_role_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(WITH_KEY | {"nomadAgents": agents({})}, secret_keys=AS_SECRET)
    text = str(caught.value)
    assert "nomadAgents[0].host: Field required" in text
    assert "nomadAgents[0].role: Field required" in text


def test_a_relative_config_dir_is_refused() -> None:
    (line,) = error_lines(ADDRESS | {"nomadConfigDir": "nomad.d"})
    assert line.startswith("  - nomad-vault-setup:nomadConfigDir = 'nomad.d': ")
    assert line.endswith("must be an absolute path (starting with '/')")


def test_two_entries_writing_one_file_are_refused() -> None:
    same = {"host": "10.0.0.1", "role": "server", "configPath": "/etc/nomad.d/vault.hcl"}
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            WITH_KEY | {"nomadAgents": agents(same, same | {"role": "client"})},
            secret_keys=AS_SECRET,
        )
    assert "two entries write the same file" in str(caught.value)
    assert "10.0.0.1:22:/etc/nomad.d/vault.hcl" in str(caught.value)


def test_agents_need_the_private_key() -> None:
    (line,) = error_lines(ADDRESS | {"nomadAgents": agents({"host": "n", "role": "client"})})
    assert "nomad-vault-setup:nomadAgentsPrivateKey: not set, but nomadAgents lists agents" in line
    assert "pulumi config set --secret nomadAgentsPrivateKey" in line


def test_a_plain_private_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(WITH_KEY, secret_keys=())
    assert "nomadAgentsPrivateKey: must be a secret" in str(caught.value)
    assert "c2VjcmV0LWtleS1ib2R5" not in str(caught.value)


def test_a_value_that_is_no_private_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(ADDRESS | {"nomadAgentsPrivateKey": "hunter2"}, secret_keys=AS_SECRET)
    assert "must be an unencrypted SSH private key" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_private_key_is_never_in_a_repr() -> None:
    stack = parse_settings(WITH_KEY, secret_keys=AS_SECRET)
    assert "c2VjcmV0LWtleS1ib2R5" not in repr(stack) + str(stack.agents_private_key)


def test_the_private_key_is_stack_level_only() -> None:
    entry = {"name": "east", "nomadAgentsPrivateKey": PRIVATE_KEY}
    with pytest.raises(ConfigError) as caught:
        parse_settings(ADDRESS | {"clusters": json.dumps([entry])})
    assert "clusters[0].nomadAgentsPrivateKey: unknown setting" in str(caught.value)
    assert "c2VjcmV0LWtleS1ib2R5" not in str(caught.value)


def test_clusters_get_their_own_config_dir_under_the_top_level_one() -> None:
    entries = [{"name": "east"}, {"name": "west", "nomadConfigDir": "/opt/west"}]
    stack = parse_settings(
        ADDRESS | {"nomadConfigDir": "/etc/nv/", "clusters": json.dumps(entries)}
    )
    dirs = {c.name: c.settings.nomad_config_dir for c in stack.clusters}
    assert dirs == {"east": "/etc/nv/east", "west": "/opt/west"}


@pytest.mark.parametrize(
    ("top", "entries", "says"),
    [
        (
            {},
            [{"name": "a", "nomadConfigDir": "/n"}, {"name": "b", "nomadConfigDir": "/n/"}],
            "clusters a, b write their agent config files to one nomadConfigDir: '/n'",
        ),
        (
            {"nomadAgents": agents({"host": "n1", "role": "server"})},
            [{"name": "a"}, {"name": "b"}],
            "clusters a, b write one file on an agent (host:port:configPath): "
            "'n1:22:/etc/nomad.d/vault.hcl'",
        ),
    ],
)
def test_two_clusters_never_write_one_agent_file(top: dict, entries: list, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(WITH_KEY | top | {"clusters": json.dumps(entries)}, secret_keys=AS_SECRET)
    assert says in str(caught.value)


def test_load_accepts_the_key_the_engine_holds_as_a_secret(stack_config) -> None:
    config = {
        "vault:address": "http://127.0.0.1:8200",
        "vault:token": "t",
        "nomad-vault-setup:nomadAgentsPrivateKey": PRIVATE_KEY,
        "nomad-vault-setup:nomadAgents": agents({"host": "n1", "role": "client"}),
    }
    stack_config(config)
    with pytest.raises(ConfigError, match="nomadAgentsPrivateKey: must be a secret"):
        load_settings()
    pulumi.runtime.set_all_config(config, ["nomad-vault-setup:nomadAgentsPrivateKey"])
    try:
        assert load_settings().agents_private_key.get_secret_value() == PRIVATE_KEY
    finally:
        pulumi.runtime.set_all_config({}, [])


def test_a_key_has_one_spelling() -> None:
    (line,) = error_lines(ADDRESS | {"token_period": "1h"})
    assert "token_period: unknown setting" in line and "tokenPeriod" in line
