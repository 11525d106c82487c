"""`make audit`: for the Nomad jobs that exist, which secrets each can read under a stack.

    make audit STACK=prod JOBS=jobs.json
    make audit STACK=prod                     # jobs from NOMAD_ADDR / NOMAD_TOKEN
    make audit STACK=prod ARGS="--who-can-read secret/data/prod/db"
    make audit STACK=prod ARGS="--format json"       # or mermaid

Needs no Vault token: the stack's settings (its stack file, read through the Pulumi CLI) and
outputs (for the auth accessor), the jobs, and the server's kind and version, which its
unauthenticated `sys/health` tells (or `--server openbao:2.7.2` / `vault:1.14.10`). Exit
status: 0, or 1 when a high-severity finding is reported (a job reads another job's
secrets), or 2 when the audit cannot run (bad jobs list, unreadable stack, Nomad or Vault).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pulumi import automation as auto

from devtools import workspace
from nomad_vault_setup.access import Job
from nomad_vault_setup.audit import Audit, audit_stack, jobs_from_json, request_path
from nomad_vault_setup.audit_report import render, who_can_read_json, who_can_read_text
from nomad_vault_setup.config import ConfigError
from nomad_vault_setup.config.context import ProviderContext
from nomad_vault_setup.config.derive import StackSettings, parse_settings
from nomad_vault_setup.config.fields import go_bool
from nomad_vault_setup.config.report import PROJECT
from nomad_vault_setup.nomad_jobs import NomadUnreadable, read_jobs
from nomad_vault_setup.server_kind import (
    ServerProbeError,
    VaultServer,
    parse_version,
    probe_server,
)
from nomad_vault_setup.vault_http import Tls

FORMATS = ("text", "json", "mermaid")
HIGH_FINDINGS = 1
CANNOT_AUDIT = 2
UNUSED_ADDRESS = "https://vault.invalid"


class AuditUnavailable(Exception):
    """The audit cannot run: what is missing or unreadable, said plainly."""


def vault_setting(
    config: Mapping[str, auto.ConfigValue], env: Mapping[str, str], key: str, variable: str
) -> str:
    """A provider setting as the provider reads it: the stack's `vault:<key>`, else the shell."""
    value = config.get(f"vault:{key}")
    return str(value.value) if value and value.value else env.get(variable, "")


def stack_settings(
    config: Mapping[str, auto.ConfigValue], env: Mapping[str, str] = os.environ
) -> StackSettings:
    """The stack's settings from its config as `pulumi config --json` gives it (the Vault
    address only stands in for `nomadVaultAddress`'s default, which the audit does not use)."""
    prefix = f"{PROJECT}:"
    raw = {
        key.removeprefix(prefix): value.value
        for key, value in config.items()
        if key.startswith(prefix) and value.value != ""
    }
    secret = {key.removeprefix(prefix) for key, value in config.items() if value.secret}
    try:
        address = vault_setting(config, env, "address", "VAULT_ADDR") or UNUSED_ADDRESS
        provider = ProviderContext("", PROJECT, "", address=address)
        return parse_settings(raw, secret_keys=secret, provider=provider)
    except ConfigError as error:
        raise AuditUnavailable(str(error)) from None


def server_of(
    spec: str | None, config: Mapping[str, auto.ConfigValue], env: Mapping[str, str]
) -> VaultServer:
    """`--server kind:version`, else what the stack's Vault address answers at `sys/health`."""
    if spec:
        kind, _, version = spec.partition(":")
        if kind not in ("vault", "openbao") or not parse_version(version):
            raise AuditUnavailable(
                f"--server {spec!r}: must be vault:<version> or openbao:<version>, e.g. "
                "vault:1.14.10 or openbao:2.7.2"
            )
        return VaultServer(kind, version)  # type: ignore[arg-type]

    def setting(key: str, variable: str) -> str:
        return vault_setting(config, env, key, variable)

    address = setting("address", "VAULT_ADDR")
    if not address:
        raise AuditUnavailable(
            "no Vault address (vault:address or VAULT_ADDR) to ask which server this is: set "
            "one, or name the server with --server vault:<version> / openbao:<version>"
        )
    tls = Tls(  # as the provider reads them (config/engine.py's provider_context)
        ca_cert_file=setting("caCertFile", "VAULT_CACERT") or None,
        ca_cert_dir=setting("caCertDir", "VAULT_CAPATH") or None,
        skip_verify=go_bool(setting("skipTlsVerify", "VAULT_SKIP_VERIFY")),
    )
    try:
        return probe_server(address, tls)
    except ServerProbeError as error:
        raise AuditUnavailable(f"{error} (or name the server with --server)") from None


def jobs_of(jobs_file: Path | None, env: Mapping[str, str]) -> list[Job]:
    """The jobs from a JSON file, else from the Nomad API at NOMAD_ADDR."""
    if jobs_file is not None:
        try:
            return jobs_from_json(json.loads(jobs_file.read_text()))
        except OSError as error:
            raise AuditUnavailable(f"cannot read the jobs file {jobs_file}: {error}") from None
        except RecursionError:
            raise AuditUnavailable(f"{jobs_file}: nested too deeply to be a jobs list") from None
        except ValueError as error:
            raise AuditUnavailable(f"{jobs_file}: {error}") from None
    address = env.get("NOMAD_ADDR", "")
    if not address:
        raise AuditUnavailable(
            "no jobs: give a JSON list of {namespace, id, region?} (JOBS=jobs.json) or set "
            "NOMAD_ADDR (and NOMAD_TOKEN) to read them from Nomad"
        )
    tls = Tls(ca_cert_file=env.get("NOMAD_CACERT") or None)
    try:
        return read_jobs(address, env.get("NOMAD_TOKEN", ""), tls)
    except NomadUnreadable as error:
        raise AuditUnavailable(str(error)) from None


def secrets_of(secrets_file: Path | None) -> list[str]:
    if secrets_file is None:
        return []
    try:
        listed = json.loads(secrets_file.read_text())
    except (OSError, ValueError, RecursionError) as error:
        raise AuditUnavailable(f"cannot read the secrets file {secrets_file}: {error}") from None
    if not isinstance(listed, list) or not all(isinstance(s, str) for s in listed):
        raise AuditUnavailable(f"{secrets_file}: must hold a JSON list of KV data paths")
    try:
        return [request_path(secret) for secret in listed]
    except ValueError as error:
        raise AuditUnavailable(f"{secrets_file}: {error}") from None


def audit_of_stack(
    stack: auto.Stack,
    jobs_file: Path | None,
    env: Mapping[str, str],
    server_spec: str | None = None,
    secrets_file: Path | None = None,
) -> Audit:
    """The audit of `stack` (settings from its config, accessor from its outputs)."""
    jobs = jobs_of(jobs_file, env)
    try:
        config = stack.get_all_config()
        outputs = workspace.outputs(stack)
    except auto.CommandError as error:
        raise AuditUnavailable(f"cannot read stack {stack.name}: {error}") from None
    settings = stack_settings(config, env)
    server = server_of(server_spec, config, env)
    return audit_stack(settings, jobs, server, outputs, secrets_of(secrets_file))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make audit", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev", help="the stack to audit (default: dev)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument(
        "--jobs", type=Path, help="JSON list of {namespace, id, region?}; default: NOMAD_ADDR"
    )
    parser.add_argument(
        "--secrets", type=Path, help="JSON list of KV data paths to find readers for"
    )
    parser.add_argument(
        "--server", help="vault:<version> or openbao:<version>; default: ask the stack's Vault"
    )
    parser.add_argument("--who-can-read", metavar="PATH", help="only answer who can read PATH")
    parser.add_argument("--format", choices=FORMATS, default="text")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ) -> int:
    from devtools.promote import dev_stack_environment  # the dev stack's env, as promote uses it

    args = parse_args(argv)
    if args.who_can_read is not None:
        try:
            request_path(args.who_can_read)
        except ValueError as error:
            print(f"--who-can-read: {error}", file=sys.stderr)
            return CANNOT_AUDIT
    project = args.project_dir.resolve()
    stack_env = {**env, **workspace.pulumi_env(base=env)}
    dev = dev_stack_environment(project) if args.stack == "dev" else None
    if dev:
        stack_env |= dev[0]
    try:
        stack = workspace.open_stack(args.stack, project, stack_env)
        audit = audit_of_stack(stack, args.jobs, stack_env, args.server, args.secrets)
    except (AuditUnavailable, workspace.PulumiMissing, workspace.StackMissing) as error:
        print(f"audit of stack {args.stack} not run: {error}", file=sys.stderr)
        return CANNOT_AUDIT
    if args.who_can_read is not None:
        answer = who_can_read_json if args.format == "json" else who_can_read_text
        print(answer(audit, args.who_can_read))
        return 0
    print(render(audit, args.format))
    return HIGH_FINDINGS if audit.high else 0


if __name__ == "__main__":
    sys.exit(main())
