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
- the component's name is in the marks, so it must be a plain name (it lands in policy text);
- two components of one program may not write one object (the stack program's clusters may
  not either): the later one is refused, naming the earlier;
- the default provider is the one checked: a component given an explicit vault provider (its
  own, or inherited from a parent) is refused, as the checks could not reach its server;
- the stack program's token binding rules (provider_guard.py) are its own: a program that uses
  the component configures its provider as it sees fit.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from .config import ClusterSettings, ConfigError, ProviderContext, parse_settings
from .config.derive import RISKS_KEY
from .config.engine import provider_context
from .config.report import component_naming, named_as, naming, raise_if_any, setting
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
        problems = [
            problem
            for problem in (_name_problem(name), _explicit_provider_problem(name, opts))
            if problem
        ]
        raw = _raw_settings(args, problems)
        provider = provider_context(problems, component=name if not problems else "")
        stack = parse_settings(raw, problems, (), provider)
        claims = _claims(stack.clusters[0].settings, provider)
        raise_if_any(_claimed_problems(name, claims))
        live = check_live_server(stack, provider, previous={})
        completed = complete_configs(live.unconfigured, provider)
        _CLAIMED.update(dict.fromkeys(claims, name))
    cluster = stack.clusters[0]
    plan = ClusterPlan(
        settings=cluster.settings,
        owner=provider.owner,
        nomad_vault_address=stack.nomad_vault_address(cluster),
        client_namespace=stack.client_namespace(cluster),
        imports=completed.get(cluster.name, NOTHING_IMPORTED),
    )
    return Standalone(plan, creates_namespace=bool(cluster.settings.namespace))


# A component's name: it is part of the ownership marks (a comment line of every policy).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

# What the components of this program have claimed: (server, provider namespace, kind,
# namespace, value) -> the component's name. One program run is one process (the program, or
# the package's provider for one engine command).
_CLAIMED: dict[tuple[str, ...], str] = {}

# Set by the component package (package.py): the inputs come from a program in another
# language, which names them as the schema does (camelCase), not as Python does.
SCHEMA_NAMES = False


def _name_problem(name: str) -> str | None:
    if isinstance(name, str) and _NAME.fullmatch(name):
        return None
    return (
        f"NomadVaultSetup name {name!r}: must be 1 to 100 letters, digits, '.', '_' or '-',"
        " starting with a letter or digit (it marks the Vault objects the component owns)"
    )


def _claims(settings: ClusterSettings, provider: ProviderContext) -> dict[tuple[str, ...], str]:
    """The Vault objects the component writes, keyed as `_CLAIMED` is; the input of each."""
    where = (provider.address, provider.namespace)
    inside = settings.namespace
    claims = {
        (*where, "auth mount", inside, settings.auth_path): "authPath",
        **{(*where, "policy", inside, policy): "policyName" for policy in settings.policy_names()},
    }
    if settings.manage_kv_mount:
        claims[(*where, "KV mount", inside, settings.kv_mount)] = "kvMount"
    if inside:
        claims[(*where, "namespace", "", inside)] = "namespace"
    return claims


def _claimed_problems(name: str, claims: dict[tuple[str, ...], str]) -> list[str]:
    """Objects another component of this program writes already."""
    problems = []
    for key, key_input in claims.items():
        other = _CLAIMED.get(key)
        if other is not None and other != name:
            kind, namespace, value = key[2:]
            where = f" in namespace {namespace!r}" if namespace else ""
            problems.append(
                f"{setting(key_input)}: the {kind} {value!r}{where} is NomadVaultSetup"
                f" {other!r}'s in this program; two components writing one object would"
                " overwrite (and destroy) each other's: give this one another"
            )
    return problems


def _raw_settings(args: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """The inputs as the stack config's raw keys (camelCase); an unknown input or an output
    (not a plain value) adds a problem."""
    raw: dict[str, Any] = {}
    for key, value in args.items():
        camel = camel_case(key) if isinstance(key, str) else str(key)
        if value is None:
            continue
        if camel not in INPUTS or INPUTS[camel] != key:
            known = ", ".join(naming().spell(input_name) for input_name in INPUTS)
            shown = f"{naming().prefix}{key}"  # as written: it is no input's name
            problems.append(f"{shown}: unknown input; known inputs are {known}")
        elif _has_output(value):
            problems.append(
                f"{setting(camel)}: must be a plain value, known when the program runs (not"
                " another resource's output or a secret): the settings are checked before"
                " anything is created"
            )
        else:
            raw[camel] = _roles(value, problems) if camel == "roles" else value
    if RISKS_KEY in raw and not isinstance(raw[RISKS_KEY], list | tuple):
        problems.append(f"{setting(RISKS_KEY)}: must be a list of glob, slash")
        raw.pop(RISKS_KEY)
    return raw


def _roles(value: Any, problems: list[str]) -> Any:
    """Role entries with their keys in camelCase (claim names inside stay as written); a key
    that is not one of a role's inputs, as Python spells them, adds a problem."""
    if not isinstance(value, list | tuple):
        return value
    entries = []
    for index, entry in enumerate(value):
        if not isinstance(entry, Mapping):
            entries.append(entry)
            continue
        known = {key: camel for camel, key in ROLE_INPUTS.items()}
        for key in [key for key in entry if key not in known]:
            shown = f"{naming().prefix}roles[{index}].{key}"
            names = ", ".join(naming().spell(name) for name in ROLE_INPUTS)
            problems.append(f"{shown}: unknown input; known inputs are {names}")
        entries.append({known[key]: item for key, item in entry.items() if key in known})
    return entries


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
    # A parent holds its own providers and those it inherited (pulumi.Resource's rule).
    inherited = list((getattr(opts.parent, "_providers", None) or {}).values())
    if not any(getattr(provider, "package", None) == "vault" for provider in given + inherited):
        return None
    return (
        f"NomadVaultSetup {name!r}: an explicit vault provider is not"
        " supported: the component checks the server with the program's default provider"
        " (vault:address, vault:token, or VAULT_ADDR, VAULT_TOKEN); configure that one instead"
    )
