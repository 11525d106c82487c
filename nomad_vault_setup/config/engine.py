"""The only code that reads the engine: stack config, secrets, the provider's settings.

It gathers our keys (every key under `nomad-vault-setup:`, so a misspelt one is reported), which
of them the engine holds as secrets, and the provider facts as a typed `ProviderContext`
(validated here, reported under their own names: `vault:address` or `VAULT_ADDR`, ...), checks
that the Vault token goes only where the stack says (provider_guard.py), and hands everything
to derive.py, which raises the one ConfigError naming every bad key.
"""

import os
from collections.abc import Callable, Collection
from typing import Any

import pulumi

from ..provider_guard import SHELL_OVERRIDES, shell_override_problems, token_binding_problem
from .context import ProviderContext
from .derive import StackSettings, parse_settings
from .fields import go_bool, nomad_vault_address, provider_namespace
from .report import PROJECT, worded

# Our keys whose Pulumi.yaml default means "not set": an empty address is the provider's.
_EMPTY_MEANS_UNSET = ("nomadVaultAddress",)


def _project_config() -> dict[str, Any]:
    """Every key the engine passed under our namespace, so a misspelt key is reported too."""
    prefix = f"{PROJECT}:"
    passed = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    return {
        key.removeprefix(prefix): value for key, value in passed.items() if key.startswith(prefix)
    }


def _is_secret(key: str) -> bool:
    """Whether the engine holds the full config `key` as a secret (`config set --secret`)."""
    from_env = set(pulumi.runtime.get_config_secret_keys_env())
    return pulumi.runtime.is_config_secret(key) or key in from_env


def _secret_keys(keys: Collection[str]) -> set[str]:
    """Which of our keys the engine holds as secrets."""
    return {key for key in keys if _is_secret(f"{PROJECT}:{key}")}


def _provider_setting(config: pulumi.Config, key: str, variable: str) -> tuple[str, str]:
    """A provider setting from the stack (`vault:<key>`), else the shell; and its name."""
    value = config.get(key)
    if value is not None:
        return value, f"vault:{key}"
    return os.environ.get(variable, ""), variable


def _checked(value: str, name: str, check: Callable[[str], str], problems: list[str]) -> str:
    """`value` once `check` accepts it; else "" and a problem naming the provider setting."""
    try:
        return check(value) if value else ""
    except ValueError as error:
        problems.append(worded(name, value, str(error)))
        return ""


def provider_context(problems: list[str], component: str = "") -> ProviderContext:
    """The engine's and the provider's facts; a bad one adds a problem under its own name.
    `component` names the NomadVaultSetup another program builds (see ProviderContext)."""
    config = pulumi.Config("vault")
    address, address_setting = _provider_setting(config, "address", "VAULT_ADDR")
    namespace, namespace_setting = _provider_setting(config, "namespace", "VAULT_NAMESPACE")
    skip_verify, _ = _provider_setting(config, "skipTlsVerify", "VAULT_SKIP_VERIFY")
    skip_child, _ = _provider_setting(config, "skipChildToken", "TERRAFORM_VAULT_SKIP_CHILD_TOKEN")
    token, token_setting = _provider_setting(config, "token", "VAULT_TOKEN")
    if token != token.strip() or any(char < " " or char == "\x7f" for char in token):
        # Never quoted: it is the token.
        problems.append(
            f"{token_setting}: holds whitespace or control characters (a newline from a file?);"
            " set it again without them"
        )
    return ProviderContext(
        organization=pulumi.get_organization(),
        project=pulumi.get_project(),
        stack=pulumi.get_stack(),
        address=_checked(address, address_setting, nomad_vault_address, problems),
        address_setting=address_setting,
        namespace=_checked(namespace, namespace_setting, provider_namespace, problems),
        ca_cert_file=_provider_setting(config, "caCertFile", "VAULT_CACERT")[0] or None,
        ca_cert_dir=_provider_setting(config, "caCertDir", "VAULT_CAPATH")[0] or None,
        skip_tls_verify=go_bool(skip_verify),
        namespace_import=os.environ.get("TERRAFORM_VAULT_NAMESPACE_IMPORT", ""),
        token=token,
        token_setting=token_setting,
        child_token=not go_bool(skip_child),
        component=component,
    )


def _token_problems(stack: str) -> list[str]:
    """The stack's Vault token goes only to the stack's server (provider_guard.py)."""
    binding = token_binding_problem(
        stack,
        pulumi.Config("vault").get("address"),
        pulumi.runtime.get_config("vault:token"),
        _is_secret("vault:token"),
    )
    own = {key for key in SHELL_OVERRIDES.values() if pulumi.runtime.get_config(key) is not None}
    return [*([binding] if binding else []), *shell_override_problems(stack, own, os.environ)]


def load_stack() -> StackSettings:
    """Read this stack's config and the provider's settings, then validate everything."""
    raw = _project_config()
    for key in _EMPTY_MEANS_UNSET:
        if raw.get(key) == "":
            raw.pop(key)
    problems = _token_problems(pulumi.get_stack())
    provider = provider_context(problems)
    return parse_settings(raw, problems, _secret_keys(raw), provider)
