"""Validation of the stack configuration: defaults, normalisation, every rule, one error."""

import json
from pathlib import Path

import pulumi
import pytest
import yaml

from nomad_vault_setup.config import (
    ClusterSettings,
    ConfigError,
    config_keys,
    load_stack,
    parse_settings,
)
from nomad_vault_setup.provider_guard import token_binding_problem
from tests.keys import CERTIFICATE_PEM, SSH_PRIVATE_KEY, SSH_PUBLIC_KEY
from tests.unit.conftest import PROJECT_DIR

ADDRESS = {"nomadVaultAddress": "http://127.0.0.1:8200"}
PEM = CERTIFICATE_PEM


def single(raw: dict) -> ClusterSettings:
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
        ("audiences", '["vault.io", ""]', "non-empty audience"),
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


@pytest.fixture
def stack_config(monkeypatch: pytest.MonkeyPatch):
    """Set the engine's config map as the language host would, and no provider environment."""
    for variable in ("VAULT_ADDR", "VAULT_NAMESPACE", "PULUMI_CONFIG"):
        monkeypatch.delenv(variable, raising=False)

    def set_config(
        values: dict[str, str], secret_keys: tuple[str, ...] = ("vault:token",), stack="prod"
    ) -> None:
        pulumi.runtime.set_all_config(values, list(secret_keys))
        monkeypatch.setattr(pulumi, "get_stack", lambda: stack)

    yield set_config
    pulumi.runtime.set_all_config({}, [])


def test_load_defaults_the_nomad_address_to_the_provider_address(stack_config) -> None:
    stack_config(
        {
            "vault:address": "https://vault.internal:8200",
            "vault:token": "stack-token",
            "nomad-vault-setup:nomadVaultAddress": "",
        }
    )
    stack = load_stack()
    assert stack.clusters[0].settings.nomad_vault_address == "", "the provider's, not a user key"
    assert stack.nomad_vault_address(stack.clusters[0]) == "https://vault.internal:8200"


def test_load_falls_back_to_vault_addr_and_vault_namespace(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("VAULT_NAMESPACE", "team")
    stack_config({"nomad-vault-setup:namespace": "nomad"}, stack="dev")
    stack = load_stack()
    (cluster,) = stack.clusters
    assert stack.nomad_vault_address(cluster) == "http://127.0.0.1:8200"
    assert stack.client_namespace(cluster) == "team/nomad"


def test_an_explicit_nomad_address_wins(stack_config) -> None:
    stack_config(
        {
            "vault:address": "http://127.0.0.1:8200",
            "vault:token": "stack-token",
            "nomad-vault-setup:nomadVaultAddress": "https://vault.service.consul:8200",
        }
    )
    assert (
        load_stack().clusters[0].settings.nomad_vault_address == "https://vault.service.consul:8200"
    )


def test_load_reports_keys_of_other_projects_not_at_all(stack_config) -> None:
    """Our own unknown keys are errors; another project's keys are none of our business."""
    base = {"vault:address": "http://127.0.0.1:8200", "vault:token": "t"}
    stack_config(base | {"aws:region": "x", "nomad-vault-setup:colour": "red"})
    with pytest.raises(ConfigError) as caught:
        load_stack()
    (line,) = str(caught.value).splitlines()[1:]
    assert line.startswith("  - nomad-vault-setup:colour: unknown setting")
    stack_config(base | {"aws:region": "x"})
    assert load_stack().clusters[0].settings == single(ADDRESS).model_copy(
        update={"nomad_vault_address": ""}
    )


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
    policy = 'path "db/creds/x" { capabilities = ["read"] }'
    entry = role(
        boundClaims={"nomad_namespace": ["prod", "staging-*"]}, policy=policy, tokenPeriod="5m"
    )
    (parsed,) = single(ADDRESS | {"roles": json.dumps([entry])}).roles
    assert parsed.bound_claims == {"nomad_namespace": ("prod", "staging-*")}
    assert (parsed.policies, parsed.policy, parsed.token_period) == (("db",), policy, 300)


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
        load_stack()
    assert "vault:address: this stack talks to https://vault.prod.example:8200" in str(caught.value)
    assert "pulumi config set --secret vault:token" in str(caught.value)


def test_a_stack_token_must_go_with_the_stacks_address(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    stack_config({"vault:token": "prod-token"})
    with pytest.raises(ConfigError) as caught:
        load_stack()
    assert "vault:token: this stack has its own token but no vault:address" in str(caught.value)


@pytest.mark.parametrize(
    ("stack", "address", "token", "secret", "says"),
    [
        ("dev", None, None, False, None),  # dev: the shell's VAULT_ADDR / VAULT_TOKEN pair
        ("prod", "https://v:8200", "t", True, None),  # the stack's own pair, in every command
        # even when VAULT_ADDR is that server today: refresh/destroy would not check it tomorrow
        ("prod", "https://v:8200", None, False, "has no vault:token of its own"),
        ("prod", None, "t", True, "no vault:address"),
        ("prod", "https://v:8200", "", True, "set but empty"),
        ("prod", "https://v:8200", "  ", True, "set but empty"),
        ("prod", "https://v:8200", "t", False, "plain text"),
        ("staging", None, None, False, "neither vault:address nor vault:token"),
        ("e2e", None, None, False, "only the dev stack may"),
    ],
)
def test_a_stack_token_goes_only_where_the_stack_says(stack, address, token, secret, says) -> None:
    problem = token_binding_problem(stack, address, token, secret)
    assert problem is None if says is None else says in problem


def test_an_empty_stack_token_is_refused(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "the-shells-token")
    stack_config({"vault:address": "https://vault.prod.example:8200", "vault:token": ""})
    with pytest.raises(ConfigError, match="vault:token: set but empty"):
        load_stack()


def test_a_plain_text_stack_token_is_refused(stack_config) -> None:
    stack_config(
        {"vault:address": "https://vault.prod.example:8200", "vault:token": "t"}, secret_keys=()
    )
    with pytest.raises(ConfigError, match="vault:token: stored in plain text") as caught:
        load_stack()
    assert "pulumi config set --secret vault:token" in str(caught.value)


# --- delivering the agent config: nomadConfigDir, nomadAgents, nomadAgentsPrivateKey ---

PRIVATE_KEY = SSH_PRIVATE_KEY
KEY_BODY = PRIVATE_KEY.splitlines()[1]  # a line of the key that must never be shown
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
        "configPath": "/etc//nomad.d//vault.hcl",
        "port": 2222,
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
        ({"port": "ssh"}, "nomadAgents[0].port", "must be a whole number"),
        ({"user": "root; rm -rf /"}, "nomadAgents[0].user", "must be a user name"),
        ({"role": "worker"}, "nomadAgents[0].role", "'server' or 'client'"),
        ({"configPath": "etc/nomad.d/vault.hcl"}, "nomadAgents[0].configPath", "absolute path"),
        ({"configPath": "/etc/nomad.d/"}, "nomadAgents[0].configPath", "not a directory"),
        ({"reloadCommand": " "}, "nomadAgents[0].reloadCommand", "non-empty shell command"),
        ({"hostKey": "AAAAC3Nza"}, "nomadAgents[0].hostKey", "public key as one line"),
        # no coercions, no '.' segments, keys that decode
        ({"port": True}, "nomadAgents[0].port", "whole number"),
        ({"port": "22"}, "nomadAgents[0].port", "whole number"),
        ({"port": 22.5}, "nomadAgents[0].port", "whole number"),
        ({"host": 10}, "nomadAgents[0].host", "must be a string"),
        ({"configPath": "/etc/nomad.d/."}, "nomadAgents[0].configPath", "'..' segments"),
        ({"hostKey": "ssh-ed25519 not-base64!"}, "nomadAgents[0].hostKey", "public key"),
        ({"hostKey": "ssh-ed25519 AAAAC3Nza"}, "nomadAgents[0].hostKey", "public key"),
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
    assert "10.0.0.1:/etc/nomad.d/vault.hcl" in str(caught.value)


def test_agents_need_the_private_key() -> None:
    (line,) = error_lines(ADDRESS | {"nomadAgents": agents({"host": "n", "role": "client"})})
    assert "nomad-vault-setup:nomadAgentsPrivateKey: not set, but nomadAgents lists agents" in line
    assert "pulumi config set --secret nomadAgentsPrivateKey" in line


def test_a_plain_private_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(WITH_KEY, secret_keys=())
    assert "nomadAgentsPrivateKey: must be a secret" in str(caught.value)
    assert KEY_BODY not in str(caught.value)


def test_a_value_that_is_no_private_key_is_refused_and_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(ADDRESS | {"nomadAgentsPrivateKey": "hunter2"}, secret_keys=AS_SECRET)
    assert "must be an unencrypted SSH private key" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_private_key_is_never_in_a_repr() -> None:
    stack = parse_settings(WITH_KEY, secret_keys=AS_SECRET)
    assert KEY_BODY not in repr(stack) + str(stack.agents_private_key)


def test_the_private_key_is_stack_level_only() -> None:
    entry = {"name": "east", "nomadAgentsPrivateKey": PRIVATE_KEY}
    with pytest.raises(ConfigError) as caught:
        parse_settings(ADDRESS | {"clusters": json.dumps([entry])})
    assert "clusters[0].nomadAgentsPrivateKey: unknown setting" in str(caught.value)
    assert KEY_BODY not in str(caught.value)


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
            "clusters a, b write one agent config file (machine:path): "
            "'this machine:/n/vault-server.hcl'",
        ),
        (
            {"nomadAgents": agents({"host": "n1", "role": "server"})},
            [{"name": "a"}, {"name": "b"}],
            "clusters a, b write one agent config file (machine:path): 'n1:/etc/nomad.d/vault.hcl'",
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
        load_stack()
    stack_config(config, secret_keys=("vault:token", "nomad-vault-setup:nomadAgentsPrivateKey"))
    assert load_stack().agents_private_key.get_secret_value() == PRIVATE_KEY


def test_a_key_has_one_spelling() -> None:
    (line,) = error_lines(ADDRESS | {"token_period": "1h"})
    assert "token_period: unknown setting" in line and "tokenPeriod" in line


# --- hardening: every bad value refused by name, no coercion, no traceback ---


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        # 4: what lands in the Nomad agent config must reach Nomad exactly (HCL1)
        ("audiences", '["${x}"]', "${"),
        ("audiences", '["a\\nb"]', "control"),
        ("nomadVaultAddress", "https://vault:8200/${x}", "${"),
        # 7: padded audiences would differ between Nomad's signature and Vault's binding
        ("audiences", '[" vault.io"]', "white space"),
        ("audiences", '["vault.io "]', "white space"),
        ("audiences", '["a,b"]', "','"),
        # 8: '.' and '..' segments resolve to another path than the one named
        ("authPath", "x/../y", "'..' segments"),
        ("authPath", "./jwt", "'..' segments"),
        ("kvMount", "secret/..", "'..' segments"),
        # 9: durations Go cannot hold (Nomad and Vault hold durations in int64 nanoseconds)
        ("identityTtl", "9999999h", "at most 2562047h"),
        ("tokenPeriod", "99999999999999999999h", "at most 2562047h"),
        ("tokenPeriod", "9223372037", "at most 2562047h"),
        # 10: no coercions
        ("protect", "yes", "true or false"),
        ("manageKvMount", "1", "true or false"),
        ("tokenPeriod", "\u0661\u0662h", "positive duration"),  # Arabic-Indic digits
        ("identityTtl", "\uff11h", "positive duration"),  # a fullwidth digit
        # 13: a password in the address would land in outputs and agent files
        ("nomadVaultAddress", "https://user:pw@vault:8200", "user or password"),
        ("nomadVaultAddress", "https://vault:8200/?token=x", "query"),
        ("jwksUrl", "https://user:pw@nomad:4646/.well-known/jwks.json", "user or password"),
        ("nomadVaultAddress", "https://vault:99999", "valid port"),
        ("nomadConfigDir", "/etc/nomad.d/..", "'..' segments"),
    ],
)
def test_each_hostile_value_is_refused_by_its_key(key: str, value: str, says: str) -> None:
    (line,) = error_lines(ADDRESS | {key: value})
    assert line.startswith(f"  - nomad-vault-setup:{key}"), line
    assert says in line, line


def test_the_longest_go_duration_is_accepted() -> None:
    assert single(ADDRESS | {"identityTtl": "2562047h"}).identity_ttl == 2562047 * 3600


def test_booleans_are_true_or_false_only() -> None:
    assert single(ADDRESS | {"protect": "true", "manageKvMount": "false"}).protect is True
    entry = {"name": "a", "protect": True}
    (cluster,) = parse_settings(ADDRESS | {"clusters": json.dumps([entry])}).clusters
    assert cluster.settings.protect is True


def test_a_real_host_key_is_accepted() -> None:
    agent = {"host": "nomad-1", "role": "server", "hostKey": SSH_PUBLIC_KEY + " root@nomad-1"}
    stack = parse_settings(WITH_KEY | {"nomadAgents": agents(agent)}, secret_keys=AS_SECRET)
    assert stack.clusters[0].settings.nomad_agents[0].host_key == SSH_PUBLIC_KEY


@pytest.mark.parametrize(
    ("clusters", "says"),
    [
        ("[{", "is not valid JSON"),
        ('[{"name": 5}]', "clusters[0].name = 5: must be a string"),
        ('"east"', "must be a list of objects"),
        ('[{"name": "a"}, 3]', "must be a list of objects"),
    ],
)
def test_a_bad_clusters_value_is_a_configuration_error(clusters: str, says: str) -> None:
    lines = error_lines(ADDRESS | {"clusters": clusters})
    assert any(says in line for line in lines), lines
    assert all("nomad-vault-setup:clusters" in line for line in lines), lines


@pytest.mark.parametrize("empty", [" [ ] ", "[]", ""])
def test_an_empty_clusters_list_means_one_cluster(empty: str) -> None:
    stack = parse_settings(ADDRESS | {"clusters": empty})
    assert not stack.multi_cluster and len(stack.clusters) == 1


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("audiences", "[vault.io", "is not valid JSON"),
        ("roles", "[{", "is not valid JSON"),
        ("roles", '{"name": "db"}', "must be a list"),
        ("audiences", '[1, "a"]', "must be a string"),
    ],
)
def test_bad_json_is_reported_in_the_stack_files_words(key: str, value: str, says: str) -> None:
    lines = error_lines(ADDRESS | {key: value})
    assert lines and all(f"nomad-vault-setup:{key}" in line for line in lines), lines
    assert any(says in line for line in lines), lines
    assert not any("tuple" in line or "Expecting" in line.split("(")[0] for line in lines)


def test_a_bad_provider_address_is_blamed_on_the_key_that_was_set(stack_config) -> None:
    stack_config({"vault:address": "vault.internal:8200", "vault:token": "t"})
    with pytest.raises(ConfigError) as caught:
        load_stack()
    (line,) = str(caught.value).splitlines()[1:]
    assert line.startswith("  - vault:address = 'vault.internal:8200': "), line


def test_a_bad_vault_addr_is_blamed_on_vault_addr(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://u:p@127.0.0.1:8200")
    stack_config({}, stack="dev")
    with pytest.raises(ConfigError, match=r"  - VAULT_ADDR = .*user or password"):
        load_stack()


@pytest.mark.parametrize(
    "namespace", ["team/${x}", "team/a b", "team\nx", "sys", "team//x/..", 'te"am']
)
def test_the_provider_namespace_is_validated(stack_config, monkeypatch, namespace) -> None:
    monkeypatch.setenv("VAULT_NAMESPACE", namespace)
    stack_config({}, stack="dev")
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    with pytest.raises(ConfigError, match=r"  - VAULT_NAMESPACE = "):
        load_stack()


def test_a_nested_provider_namespace_reaches_the_client_block(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    stack_config({"vault:namespace": "/org/team/"}, stack="dev")
    stack = load_stack()
    assert stack.client_namespace(stack.clusters[0]) == "org/team"


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n" + CERTIFICATE_PEM,
        CERTIFICATE_PEM + "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n",
        CERTIFICATE_PEM + "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ],
)
def test_a_jwks_ca_file_holding_anything_but_certificates_is_refused(tmp_path, text) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(text)
    (line,) = error_lines(ADDRESS | {"jwksCaFile": str(ca)})
    assert "CERTIFICATE" in line
    assert "MIIB" not in line and "abc" not in line, "the file's content is never shown"


@pytest.mark.parametrize(
    "key",
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n",
    ],
)
def test_a_private_key_that_does_not_parse_is_refused(key: str) -> None:
    with pytest.raises(ConfigError, match="must be an unencrypted SSH private key"):
        parse_settings(ADDRESS | {"nomadAgentsPrivateKey": key}, secret_keys=AS_SECRET)


@pytest.mark.parametrize(
    ("hosts", "config_dir"),
    [
        (("localhost", "127.0.0.1"), ""),
        (("127.0.0.1", "::1"), ""),
        (("localhost",), "/etc/nomad.d"),
    ],
)
def test_two_names_of_this_machine_never_write_one_file(hosts: tuple, config_dir: str) -> None:
    entries = [
        {"host": host, "role": role, "configPath": "/etc/nomad.d/vault-server.hcl", "port": port}
        for host, role, port in zip(hosts, ("server", "client"), (22, 2222), strict=False)
    ]
    raw = WITH_KEY | {"nomadAgents": agents(*entries), "nomadConfigDir": config_dir}
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw, secret_keys=AS_SECRET)
    assert "this machine:/etc/nomad.d/vault-server.hcl" in str(caught.value)


def test_accepted_job_id_risks_are_glob_or_slash() -> None:
    stack = parse_settings(ADDRESS | {"acceptJobIdRisks": '["slash", "glob", "slash"]'})
    assert stack.accepted_job_id_risks == ("slash", "glob")
    assert parse_settings(ADDRESS).accepted_job_id_risks == ()
    (line,) = error_lines(ADDRESS | {"acceptJobIdRisks": '["star"]'})
    assert "nomad-vault-setup:acceptJobIdRisks" in line and "glob, slash" in line


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("VAULT_NAMESPACE", "team", "vault:namespace"),
        ("VAULT_SKIP_VERIFY", "1", "vault:skipTlsVerify"),
    ],
)
def test_shell_settings_do_not_redirect_a_stack_other_than_dev(
    stack_config, monkeypatch, variable, value, setting
) -> None:
    monkeypatch.setenv(variable, value)
    config = {"vault:address": "https://vault.prod.example:8200", "vault:token": "t"}
    stack_config(config)
    with pytest.raises(ConfigError, match=f"  - {variable}: set in the shell.*{setting}"):
        load_stack()
    stack_config(config | {setting: value})
    assert load_stack().provider.stack == "prod"


def test_the_dev_stack_runs_on_its_shells_vault_settings(stack_config, monkeypatch) -> None:
    for variable, value in {"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_NAMESPACE": "t"}.items():
        monkeypatch.setenv(variable, value)
    stack_config({}, stack="dev")
    assert load_stack().provider.namespace == "t"


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ('path "x" { capabilities = [', "is not valid HCL"),
        ("foo = 1", 'anything but `path "<path>" { key = value ... }` blocks'),
        ('path "x" {\n  capabilities: ["read"]\n}\n', "anything but `path"),
        ('path "x" {\n  capabilities = ["read"]\n  comment = <<EOT\nhi\nEOT\n}\n', "heredoc"),
        ('path "x" {\n  capabilities = ["re\nad"]\n}\n', "line break inside a string"),
        ('\ufeff{"path": {}}', "byte order mark"),
        ('{"path": {"x": {"capabilities": ["read"]}}}', "HCL, not JSON"),
        ('path "x" {}\x00', "control characters"),
        ('path "x" {\n  capabilities = ["reed"]\n}\n', "unknown capabilities reed (allowed:"),
        ('path "x/+*" {\n  capabilities = ["read"]\n}\n', "refuses `+*`"),
        ('path "x" {\n  policy = "readonly"\n}\n', "blocks and nothing else"),
        ('path "x" {\n  capabilities = "read"\n}\n', "blocks and nothing else"),
    ],
)
def test_an_inline_policy_vault_would_refuse_is_refused_first(policy: str, says: str) -> None:
    lines = error_lines(ADDRESS | {"roles": json.dumps([role(policy=policy)])})
    assert any("roles[0].policy" in line and says in line for line in lines), lines


def test_provider_keys_are_not_cluster_settings() -> None:
    entry = {"name": "a", "vault:namespace": "evil"}
    (line,) = error_lines(ADDRESS | {"clusters": json.dumps([entry])})
    assert "clusters[0].vault:namespace: unknown setting" in line


def test_padded_durations_and_empty_namespace_segments_are_refused(stack_config, monkeypatch):
    assert "positive duration" in error_lines(ADDRESS | {"tokenPeriod": " 30m "})[0]
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    stack_config({"vault:namespace": "org//x"}, stack="dev")
    with pytest.raises(ConfigError, match=r"vault:namespace = 'org//x': .*empty segments"):
        load_stack()
