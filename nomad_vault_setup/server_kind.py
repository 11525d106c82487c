"""Which server answers at the Vault address, and what a Nomad job ID can read on it.

The workload policy renders each job's ID into its paths
(`<kv>/data/<namespace>/<job ID>/*`). Nomad allows `*`, `+` and `/` in job IDs, and servers
differ in what they do with them once rendered:

- HashiCorp Vault before the 2026 fix treats a rendered `*` or `+` as a glob: a job whose ID
  is `*` or `+` reads every secret of its Nomad namespace, and `web*` those of every job whose
  ID starts with `web` (measured on Vault 1.14.10). The fix denies rendered `*`/`+` from
  Vault 1.19.17, 1.20.11, 1.21.6 and 2.0.1 on (Enterprise included).
- Every HashiCorp Vault allows a rendered `/`: a job `web/db` reads job `web`'s secret `db`
  (measured on 1.14.10), unless the server sets `deny_slash_in_templated_paths`, a server
  setting no API shows, so a Vault always keeps this risk until the stack accepts it.
- OpenBao refuses all three from 2.6.0 on (openbao/openbao#3401): the job logs in but its
  token is refused on every request (measured on 2.7.2). Earlier OpenBao, a Vault 1.14 fork,
  reads as Vault 1.14.10 does (measured on 2.5.5 built from its source tag).

The kind comes from the unauthenticated `sys/health` answer: HashiCorp Vault has sent an
`enterprise` field since 1.16 and numbers its releases 0.x and 1.x before that; OpenBao (2.0.0
and later) sends no `enterprise` field.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .vault_http import NO_TLS_SETTINGS, Tls, VaultUnreachable, get

CONFIG_KEY = "nomad-vault-setup:acceptJobIdRisks"

# Answer 200 with the health body whatever the node's state (standby, performance standby,
# DR secondary, sealed, uninitialised); non-200 bodies are read all the same.
HEALTH_QUERY = {
    "standbyok": "true",
    "perfstandbyok": "true",
    "standbycode": "200",
    "performancestandbycode": "200",
    "drsecondarycode": "200",
    "sealedcode": "200",
    "uninitcode": "200",
}

# First HashiCorp Vault release of each line that denies a rendered `*`/`+` (Vault's
# "Wildcards and globs not permitted in templated policy paths" important change, partial
# `policy-template-wildcards.mdx` in hashicorp/web-unified-docs, added by its PR #2612 for the
# fix announced in PR #2300). Lines after the last one listed (2.1 and later) have it too.
VAULT_GLOB_FIXED = {(1, 19): 17, (1, 20): 11, (1, 21): 6, (2, 0): 1}
# First OpenBao release that refuses rendered `*`, `+` and `/` (openbao/openbao#3401,
# GHSA-59w7-v8rr-pr4p, in the 2.6.0 changelog; not in any 2.5.x).
OPENBAO_FIXED = (2, 6, 0)

MEASURED_ON = "measured on Vault 1.14.10"
GLOB_READS = (
    "a job whose ID is `*` or `+` reads the secrets of every job in its Nomad namespace, "
    "and a job `web*` those of every job whose ID starts with `web`"
)
SLASH_READS = "a job whose ID is `web/db` reads job `web`'s secret `db`"
MEASURED_ON_OLD_OPENBAO = (
    "measured on OpenBao 2.5.5 built from its v2.5.5 tag; no OpenBao release before 2.6.0 "
    "has the check"
)
DENY_SLASH = "deny_slash_in_templated_paths"

Kind = Literal["openbao", "vault", "unknown"]
NAMES = {"openbao": "OpenBao", "vault": "HashiCorp Vault"}


@dataclass(frozen=True)
class VaultServer:
    """What answers at the Vault address: its kind and the version it reports."""

    kind: Kind
    version: str
    # Which cluster answered ("" when it did not say): what the stack's outputs are tied to.
    cluster_id: str = ""

    def __str__(self) -> str:
        version = self.version or "(no version reported)"
        if self.kind == "unknown":
            return f"an unrecognised server, version {version}"
        return f"{NAMES[self.kind]} {version}"


class ServerProbeError(Exception):
    """The address gave no Vault health answer (unreachable, TLS failure, not JSON, ...)."""


def _health_url(address: str) -> str:
    parts = urllib.parse.urlsplit(address.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ServerProbeError(
            f"{address!r} is not an http:// or https:// address of a Vault server"
        )
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/v1/sys/health?{urllib.parse.urlencode(HEALTH_QUERY)}"


def probe_server(address: str, tls: Tls = NO_TLS_SETTINGS, timeout: float = 10) -> VaultServer:
    """The kind and version of the server at `address`, from its unauthenticated
    `GET /v1/sys/health` (no token is sent). Raises ServerProbeError naming the address, also
    when the node is uninitialised or sealed (it would refuse everything after)."""
    url = _health_url(address)
    asked = f"GET {url.split('?', 1)[0]}"
    try:
        status, body = get(url, {"Accept": "application/json"}, tls, timeout)
    except VaultUnreachable as error:
        raise ServerProbeError(f"cannot reach the Vault server at {address}: {error}") from error
    try:
        health = json.loads(body)
    except ValueError as error:
        excerpt = body[:120].decode(errors="replace").strip() or "an empty body"
        raise ServerProbeError(
            f"{address} answered {asked} with HTTP {status} and {excerpt!r}, "
            "not a Vault health answer (JSON)"
        ) from error
    if not isinstance(health, dict) or "initialized" not in health:
        raise ServerProbeError(
            f"{address} answered {asked} with HTTP {status} and JSON that is not "
            f"a Vault health answer: {json.dumps(health)[:200]}"
        )
    server = server_from_health(health)
    if health.get("initialized") is not True:
        raise ServerProbeError(
            f"the Vault server at {address} ({server}) is not initialised: initialise and"
            " unseal it first"
        )
    if health.get("sealed") is not False:
        raise ServerProbeError(
            f"the Vault server at {address} ({server}) is sealed, so it serves nothing: unseal"
            " it (`vault operator unseal` / `bao operator unseal`, with its unseal keys), or"
            " point the provider at an unsealed node of the cluster"
        )
    return server


_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def parse_version(version: str) -> tuple[int, int, int, int] | None:
    """(major, minor, patch, 1) for a release, (..., 0) for a pre-release (`-rc1`), which
    sorts before its release; build metadata (`+ent`, `+ent.hsm`) is ignored. None if the
    text is no such version."""
    match = _VERSION.match(version.strip())
    if not match:
        return None
    major, minor, patch = (int(part) for part in match.group(1, 2, 3))
    return major, minor, patch, 0 if match.group(4) else 1


def server_from_health(health: Mapping[str, Any]) -> VaultServer:
    """Tell HashiCorp Vault from OpenBao by the shape of a `sys/health` answer."""
    version = health.get("version")
    version = version.strip() if isinstance(version, str) else ""
    cluster_id = health.get("cluster_id")
    cluster_id = cluster_id if isinstance(cluster_id, str) else ""
    parsed = parse_version(version)
    if "enterprise" in health:  # every HashiCorp Vault since 1.16; never OpenBao
        return VaultServer("vault", version, cluster_id)
    if parsed and parsed[0] < 2:  # HashiCorp Vault before 1.16; OpenBao starts at 2.0.0
        return VaultServer("vault", version, cluster_id)
    if parsed:
        return VaultServer("openbao", version, cluster_id)
    return VaultServer("unknown", version, cluster_id)


def _vault_denies_globs(version: tuple[int, int, int, int]) -> bool:
    line = version[:2]
    if line in VAULT_GLOB_FIXED:
        return version >= (*line, VAULT_GLOB_FIXED[line], 1)
    return line > max(VAULT_GLOB_FIXED)


def _vault_fix() -> str:
    lines = [f"{major}.{minor}.{patch}+" for (major, minor), patch in VAULT_GLOB_FIXED.items()]
    return f"Vault {', '.join(lines[:-1])} or {lines[-1]} (2.1 and later included)"


def job_id_risks(server: VaultServer) -> dict[str, str]:
    """Risk name -> what a Nomad job ID can read on `server`, as measured; {} when none."""
    version = parse_version(server.version)
    if server.kind == "openbao" and version:
        if version >= (*OPENBAO_FIXED, 1):
            return {}
        return {
            "glob": f"{GLOB_READS} ({MEASURED_ON_OLD_OPENBAO})",
            "slash": f"{SLASH_READS} ({MEASURED_ON_OLD_OPENBAO})",
        }
    if server.kind == "vault" and version:
        slash = (
            f"{SLASH_READS} ({MEASURED_ON}; every Vault allows it unless the server sets "
            f"`{DENY_SLASH}`, which this program cannot see)"
        )
        if _vault_denies_globs(version):
            return {"slash": slash}
        return {"glob": f"{GLOB_READS} ({MEASURED_ON})", "slash": slash}
    unknown = f"unknown server or version, so assumed as {MEASURED_ON}"
    return {"glob": f"{GLOB_READS} ({unknown})", "slash": f"{SLASH_READS} ({unknown})"}


def _fix(server: VaultServer, risk: str) -> str:
    if server.kind == "unknown" or not parse_version(server.version):
        return "point the stack at a known server (OpenBao 2.6.0 or later has neither risk)"
    if server.kind == "openbao":
        return "upgrade to OpenBao 2.6.0 or later, which refuses such job IDs"
    if risk == "glob":
        return f"upgrade to {_vault_fix()}, which deny a rendered `*` or `+`"
    return (
        f"set `{DENY_SLASH} = true` in the Vault server's configuration (or "
        "VAULT_DENY_SLASH_IN_TEMPLATED_PATHS); this program cannot see that setting, so "
        "`slash` stays listed for HashiCorp Vault until the stack accepts it"
    )


def job_id_risk_problem(
    server: VaultServer, accepted: Collection[str], accept_in: str | None = None
) -> str | None:
    """None when the stack accepts every job-ID risk of `server`; else why it must not be
    trusted silently, to be read after the config key (`<CONFIG_KEY>: <this>`). `accept_in`
    names the setting that accepts risks when it is not stack config (a component's input)."""
    risks = job_id_risks(server)
    open_risks = [name for name in risks if name not in accepted]
    if not open_risks:
        return None
    lines = [
        f"on {server}, a Nomad job's ID can widen what the workload policy lets it read, and "
        f"this stack does not accept {_names(open_risks)}:"
    ]
    for name in open_risks:
        lines.append(f"  - {name}: {risks[name]}. To fix it: {_fix(server, name)}.")
    how = (
        f"add {_names(open_risks)} to {accept_in}"
        if accept_in
        else " && ".join(
            f"pulumi config set --path '{CONFIG_KEY}[{index}]' {name}"
            for index, name in enumerate(open_risks, start=len(accepted))
        )
    )
    lines.append(
        "To accept the risk instead (only when no one can submit a Nomad job with such an ID): "
        + how
    )
    return "\n".join(lines)


def _names(risks: list[str]) -> str:
    quoted = [f"`{risk}`" for risk in risks]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
