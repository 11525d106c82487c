"""Stack configuration -> one frozen, validated `Settings`, before any resource exists.

This is the only module that reads `pulumi.Config`. Every key under `nomad-vault-setup:` is
validated at once (pydantic collects every bad field instead of stopping at the first), and a
failure raises one `ConfigError` that names each bad key by its config name and says what is
allowed, so a user fixes a stack in one round and a bad stack never touches Vault.
"""

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import pulumi
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .durations import parse_duration

PROJECT = "nomad-vault-setup"
DEFAULT_JWKS_URL = "http://localhost:4646/.well-known/jwks.json"

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PATH_SEGMENT = r"[A-Za-z0-9_.-]+"
_MOUNT_PATH = re.compile(rf"{_PATH_SEGMENT}(/{_PATH_SEGMENT})*")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_RESERVED_NAMESPACES = {"root", "sys", "audit", "auth", "cubbyhole", "identity"}
_BUILTIN_POLICIES = {"root", "default"}


class ConfigError(pulumi.RunError, ValueError):
    """The stack configuration is invalid; the message lists every bad key.

    A `RunError`, so the engine prints just the message (no Python traceback) and stops.
    """


def _positive_seconds(value: Any) -> int:
    """Vault duration ("30m", "1h30m", "1800") -> seconds, which must be positive."""
    try:
        seconds = parse_duration(str(value))
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ValueError("must be a positive duration in s, m, h (e.g. 90s, 30m, 1h30m)")
    return seconds


def _http_url(value: str) -> str:
    """Vault and Nomad reach these over HTTP: anything else can only fail later, less clearly."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def _mount_path(value: str) -> str:
    """Slashes at the ends are trimmed, as `nomad setup vault` does; empty is refused."""
    path = value.strip("/")
    if not _MOUNT_PATH.fullmatch(path):
        raise ValueError("must be a non-empty mount path of letters, digits, '_', '-', '.' and '/'")
    return path


def _vault_name(value: str) -> str:
    """Lowercase only: Vault/OpenBao lowercase role and policy names; mixed case diffs forever."""
    if not _NAME.fullmatch(value):
        raise ValueError("must be lowercase letters, digits, '_', '-' or '.', without '/'")
    return value


def _policy_name(value: str) -> str:
    """The built-in policies cannot be managed: `root` is refused by Vault, `default` is shared."""
    if value in _BUILTIN_POLICIES:
        raise ValueError(f"must not be a built-in policy ({', '.join(sorted(_BUILTIN_POLICIES))})")
    return _vault_name(value)


def _namespace(value: str) -> str:
    """One namespace level under the provider's; nest by setting VAULT_NAMESPACE to the parent."""
    name = value.strip("/")
    if name and (not _NAMESPACE.fullmatch(name) or name in _RESERVED_NAMESPACES):
        raise ValueError(
            "must be one namespace name (letters, digits, '_', '-', '.'; no '/'), not one of "
            + ", ".join(sorted(_RESERVED_NAMESPACES))
        )
    return name


def _pem_from_file(value: Any) -> str:
    """The setting names a file; the settings carry its PEM text, read once, here."""
    if not value:
        return ""
    try:
        text = Path(str(value)).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"must be a readable PEM file ({error.__class__.__name__})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("must be a PEM file holding at least one CERTIFICATE block")
    return text


def _string_list(value: Any) -> Any:
    """Config arrays arrive as JSON text from the engine; one bare string means a list of one."""
    if isinstance(value, str):
        return json.loads(value) if value.lstrip().startswith("[") else [value]
    return value


def _audiences(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or not all(value.strip() for value in values):
        raise ValueError("must be a non-empty list of non-empty audience strings")
    return values


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Duration = Annotated[int, BeforeValidator(_positive_seconds)]
MountPath = Annotated[str, AfterValidator(_mount_path)]
VaultName = Annotated[str, AfterValidator(_vault_name)]


class Settings(BaseModel):
    """Validated stack settings. Field names are snake_case; config keys are camelCase."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
    )

    jwks_url: HttpUrl = DEFAULT_JWKS_URL
    jwks_ca_pem: Annotated[str, BeforeValidator(_pem_from_file)] = Field("", alias="jwksCaFile")
    namespace: Annotated[str, AfterValidator(_namespace)] = ""
    auth_path: MountPath = "jwt-nomad"
    role_name: VaultName = "nomad-workloads"
    policy_name: Annotated[str, AfterValidator(_policy_name)] = "nomad-workloads"
    audiences: Annotated[
        tuple[str, ...], BeforeValidator(_string_list), AfterValidator(_audiences)
    ] = ("vault.io",)
    token_period: Duration = 1800
    identity_ttl: Duration = 3600
    kv_mount: MountPath = "secret"
    nomad_vault_address: HttpUrl = Field(
        description="Defaults to the provider's address (vault:address or VAULT_ADDR)."
    )
    # The provider's own namespace (not a key of ours): Nomad clients need the full path.
    provider_namespace: str = Field("", alias="vault:namespace")

    @property
    def client_namespace(self) -> str:
        """The full Vault namespace path Nomad clients log in to ("" for the root)."""
        return "/".join(
            part for part in (self.provider_namespace.strip("/"), self.namespace) if part
        )


def config_keys() -> list[str]:
    """The config keys a stack may set under `nomad-vault-setup:`."""
    return sorted(
        field.alias for name, field in Settings.model_fields.items() if ":" not in field.alias
    )


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{PROJECT}:{key}: unknown setting; known settings are {', '.join(config_keys())}"
    if error["type"] == "missing" and key == "nomadVaultAddress":
        return (
            f"{PROJECT}:{key}: not set, and the provider has no address to default to; "
            "set vault:address, VAULT_ADDR or nomadVaultAddress to an http(s) URL"
        )
    message = error["msg"].removeprefix("Value error, ")
    shown = key if ":" in key else f"{PROJECT}:{key}"
    return f"{shown} = {error['input']!r}: {message}"


def parse_settings(raw: dict[str, Any]) -> Settings:
    """Validate raw config (camelCase keys, engine-style values) into `Settings`.

    Raises ConfigError naming every bad key at once.
    """
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(f"  - {_describe(detail)}" for detail in error.errors())
        raise ConfigError(
            f"invalid stack configuration, nothing was changed; fix these settings:\n{problems}"
        ) from None


def _project_config() -> dict[str, Any]:
    """Every key the engine passed under our namespace, so a misspelt key is reported too."""
    prefix = f"{PROJECT}:"
    passed = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    return {
        key.removeprefix(prefix): value for key, value in passed.items() if key.startswith(prefix)
    }


def load_settings() -> Settings:
    """Read this stack's config and the provider's address/namespace, then validate."""
    raw = _project_config()
    provider = pulumi.Config("vault")
    address = provider.get("address") or os.environ.get("VAULT_ADDR")
    if not raw.get("nomadVaultAddress"):
        raw.pop("nomadVaultAddress", None)  # Pulumi.yaml's "" default means "the provider's"
        if address:
            raw["nomadVaultAddress"] = address
    raw["vault:namespace"] = provider.get("namespace") or os.environ.get("VAULT_NAMESPACE", "")
    return parse_settings(raw)
