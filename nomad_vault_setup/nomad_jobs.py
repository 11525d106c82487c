"""The Nomad jobs that exist, read from Nomad's HTTP API for the access audit.

The public API's shapes (`github.com/hashicorp/nomad/api`): `GET /v1/regions` lists the
federated regions, `GET /v1/jobs?namespace=*&region=R` every job of region R across the
namespaces the token may see (`JobListStub`: `ID`, `ParentID`, `Namespace`, ...), with the
ACL token in `X-Nomad-Token`. A periodic or dispatched child (`ParentID` set) logs in with its
parent's `nomad_job_id`, so it counts as its parent (listed or not: a child can outlive a
purged parent).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .access import Job
from .vault_http import NO_TLS_SETTINGS, Tls, VaultUnreachable, get

MAX_ANSWER = 256 * 1024 * 1024  # 10 000 job stubs are ~10 MB


class NomadUnreadable(Exception):
    """Nomad's API did not give the job list (unreachable, refused, not its shape)."""


def _ask(address: str, path: str, query: Mapping[str, str], token: str, tls: Tls) -> Any:
    url = f"{address.rstrip('/')}{path}?{urllib.parse.urlencode(query)}"
    headers = {"Accept": "application/json", **({"X-Nomad-Token": token} if token else {})}
    try:
        status, body = get(url, headers, tls, timeout=30, limit=MAX_ANSWER)
    except VaultUnreachable as error:
        raise NomadUnreadable(f"cannot reach Nomad at {address}: {error}") from None
    if status != 200:
        excerpt = body[:200].decode(errors="replace").strip()
        raise NomadUnreadable(
            f"Nomad at {address} answered GET {path} with HTTP {status}: {excerpt}"
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise NomadUnreadable(f"Nomad at {address} answered GET {path} with no JSON") from None


def read_jobs(address: str, token: str = "", tls: Tls = NO_TLS_SETTINGS) -> list[Job]:
    """Every job of every region the API lists (in every namespace it shows), children as
    their parent, once each."""
    if urllib.parse.urlsplit(address).scheme not in ("http", "https"):
        raise NomadUnreadable(f"NOMAD_ADDR {address!r} is not an http:// or https:// address")
    regions = _ask(address, "/v1/regions", {}, token, tls)
    if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
        raise NomadUnreadable(f"Nomad at {address}: /v1/regions is not a list of names")
    jobs = []
    for region in regions:
        stubs = _ask(address, "/v1/jobs", {"namespace": "*", "region": region}, token, tls)
        if not isinstance(stubs, list):
            raise NomadUnreadable(f"Nomad at {address}: /v1/jobs in {region} is not a list")
        for stub in stubs:
            if not isinstance(stub, dict) or not isinstance(stub.get("ID"), str):
                raise NomadUnreadable(f"Nomad at {address}: a job in {region} has no ID")
            parent = stub.get("ParentID")
            job_id = parent if isinstance(parent, str) and parent else stub["ID"]
            jobs.append(Job(str(stub.get("Namespace") or "default"), job_id, region))
    return sorted(set(jobs))
