"""NomadVaultSetup built by another program: its inputs checked as the stack program's settings.

A YAML, TypeScript or Go program reaches the component through its package (provider/), a
Python program imports it; either way the component is on its own in someone else's stack. It
keeps every promise of the stack program: the inputs are validated into the same settings (one
error naming every bad input as the program spells it), and the same live-server checks run
against the program's default Vault provider before anything is registered. What differs:
- there is no record of an earlier update (the stack's outputs are the program's own), so what
  is the component's own is told by the ownership marks alone (ownership.py), whose owner is
  the stack and the component's name: two components of one stack never share an object;
- the namespace, if any, is the component's child;
- the default provider is the one checked: a component given an explicit vault provider is
  refused, as the checks could not reach the server it writes to;
- the stack program's token binding rules (provider_guard.py) are its own: a program that uses
  the component configures its provider as it sees fit.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from .config import ConfigError, parse_settings
from .config.derive import RISKS_KEY
from .config.engine import provider_context
from .config.report import component_naming, named_as, naming, setting
from .inputs import INPUTS, ROLE_INPUTS, camel_case
from .mount_repair import complete_configs
from .preflight import check_live_server
from .vault_setup import NOTHING_IMPORTED, ClusterPlan


@dataclass(frozen=True)
class Standalone:
    """The plan of a component on its own, and the namespace it creates (if any)."""

    plan: ClusterPlan
    creates_namespace: bool


def standalone_plan(
    name: str, args: Mapping[str, Any], opts: pulumi.ResourceOptions | None
) -> Standalone:
    """Validate the inputs and check the live server, before anything is registered; raise
    ConfigError or PreflightError naming every problem."""
    if not isinstance(args, Mapping):
        raise ConfigError(
            f"NomadVaultSetup {name!r}: args must be a dict of inputs (NomadVaultSetupArgs),"
            f" not {type(args).__name__}"
        )
    with named_as(component_naming(name, snake_case=not SCHEMA_NAMES)):
        problems = [problem for problem in [_explicit_provider_problem(name, opts)] if problem]
        raw = _raw_settings(args, problems)
        provider = provider_context(problems, component=name)
        stack = parse_settings(raw, problems, (), provider)
        live = check_live_server(stack, provider, previous={})
        completed = complete_configs(live.unconfigured, provider)
    cluster = stack.clusters[0]
    plan = ClusterPlan(
        settings=cluster.settings,
        owner=provider.owner,
        nomad_vault_address=stack.nomad_vault_address(cluster),
        client_namespace=stack.client_namespace(cluster),
        imports=completed.get(cluster.name, NOTHING_IMPORTED),
    )
    return Standalone(plan, creates_namespace=bool(cluster.settings.namespace))


# Set by the component package (package.py): the inputs come from a program in another
# language, which names them as the schema does (camelCase), not as Python does.
SCHEMA_NAMES = False


def _raw_settings(args: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The inputs as the stack config's raw keys (camelCase); an unknown input or an output
    (not a plain value) adds a problem."""
    raw: dict[str, Any] = {}
    for key, value in args.items():
        camel = camel_case(key) if isinstance(key, str) else str(key)
        if value is None:
            continue
        if camel not in INPUTS:
            known = ", ".join(naming().spell(input_name) for input_name in INPUTS)
            problems.append(f"{setting(camel)}: unknown input; known inputs are {known}")
        elif _has_output(value):
            problems.append(
                f"{setting(camel)}: must be a plain value, known when the program runs (not"
                " another resource's output or a secret): the settings are checked before"
                " anything is created"
            )
        else:
            raw[camel] = _roles(value) if camel == "roles" else value
    if RISKS_KEY in raw and not isinstance(raw[RISKS_KEY], list | tuple):
        problems.append(f"{setting(RISKS_KEY)}: must be a list of glob, slash")
        raw.pop(RISKS_KEY)
    return raw


def _roles(value: Any) -> Any:
    """Role entries with their keys in camelCase (claim names inside stay as written)."""
    if not isinstance(value, list | tuple):
        return value
    return [
        {
            (camel_case(key) if camel_case(key) in ROLE_INPUTS else key): item
            for key, item in entry.items()
        }
        if isinstance(entry, Mapping)
        else entry
        for entry in value
    ]


def _has_output(value: Any) -> bool:
    if isinstance(value, pulumi.Output):
        return True
    if isinstance(value, Mapping):
        return any(_has_output(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_has_output(item) for item in value)
    return False


def _explicit_provider_problem(name: str, opts: pulumi.ResourceOptions | None) -> str | None:
    """An explicit vault provider: the checks read the default provider's settings."""
    if opts is None:
        return None
    given = [opts.provider] if opts.provider else []
    providers = opts.providers or []
    given += list(providers.values() if isinstance(providers, Mapping) else providers)
    if not any(getattr(provider, "package", None) == "vault" for provider in given):
        return None
    return (
        f"NomadVaultSetup {name!r}: an explicit vault provider is not"
        " supported: the component checks the server with the program's default provider"
        " (vault:address, vault:token, or VAULT_ADDR, VAULT_TOKEN); configure that one instead"
    )
