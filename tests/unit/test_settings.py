"""Validation of the stack configuration: defaults, normalisation, every rule, one error."""

from pathlib import Path

import pulumi
import pytest
import yaml

from components.settings import ConfigError, Settings, config_keys, load_settings, parse_settings
from tests.unit.conftest import PROJECT_DIR

ADDRESS = {"nomadVaultAddress": "http://127.0.0.1:8200"}
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def error_lines(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    return str(caught.value).splitlines()[1:]


def test_defaults_are_those_of_nomad_setup_vault() -> None:
    settings = parse_settings(ADDRESS)
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
    assert parse_settings(defaults | ADDRESS) == parse_settings(ADDRESS)


def test_values_are_normalised() -> None:
    settings = parse_settings(
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
    assert parse_settings(ADDRESS | {"audiences": "nomad.example"}).audiences == ("nomad.example",)


def test_jwks_ca_file_is_read_into_the_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(PEM)
    assert parse_settings(ADDRESS | {"jwksCaFile": str(ca)}).jwks_ca_pem == PEM


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
    settings = parse_settings(ADDRESS)
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
        {"vault:address": "https://vault.internal:8200", "nomad-vault-setup:nomadVaultAddress": ""}
    )
    assert load_settings().nomad_vault_address == "https://vault.internal:8200"


def test_load_falls_back_to_vault_addr_and_vault_namespace(stack_config, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    monkeypatch.setenv("VAULT_NAMESPACE", "team")
    stack_config({"nomad-vault-setup:namespace": "nomad"})
    settings = load_settings()
    assert settings.nomad_vault_address == "http://127.0.0.1:8200"
    assert settings.client_namespace == "team/nomad"


def test_an_explicit_nomad_address_wins(stack_config) -> None:
    stack_config(
        {
            "vault:address": "http://127.0.0.1:8200",
            "nomad-vault-setup:nomadVaultAddress": "https://vault.service.consul:8200",
        }
    )
    assert load_settings().nomad_vault_address == "https://vault.service.consul:8200"


def test_load_reports_keys_of_other_projects_not_at_all(stack_config) -> None:
    stack_config({"vault:address": "http://127.0.0.1:8200", "aws:region": "x"})
    assert isinstance(load_settings(), Settings)
