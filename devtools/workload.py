"""A Nomad workload against Vault: mint its identity, log in, read its secret, be denied another
job's.

`make try` walks through these steps one by one (`Trial`); the e2e tests make the same calls.
The identity comes from the stand-in Nomad issuer (``devtools.issuer``), so Vault verifies it
exactly as it would verify a token Nomad signed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import hvac
import jwt
from hvac.exceptions import Forbidden, InvalidRequest, VaultError

from devtools.issuer import Issuer

READ_BACK_TIMEOUT = 10.0


def login(
    address: str, identity: str, auth_path: str, role: str, namespace: str | None = None
) -> hvac.Client:
    """A client holding the token a Nomad task gets for `identity` (a signed JWT)."""
    client = hvac.Client(url=address, namespace=namespace)
    client.auth.jwt.jwt_login(role=role, jwt=identity, path=auth_path)
    return client


def login_error(
    address: str, identity: str, auth_path: str, role: str, namespace: str | None = None
) -> str | None:
    """Vault's reason for refusing the login (HTTP 400), or None when it let the job in."""
    try:
        login(address, identity, auth_path, role, namespace)
    except InvalidRequest as refusal:
        return str(refusal)
    return None


def write_secret(client: hvac.Client, kv_mount: str, path: str, data: dict[str, Any]) -> None:
    """Write, then wait until the node the client talks to reads it back: a Raft standby
    serves reads itself and applies a write forwarded to the active node a moment later."""
    client.write_data(f"{kv_mount}/data/{path}", data={"data": data})
    deadline = time.monotonic() + READ_BACK_TIMEOUT
    while client.read(f"{kv_mount}/data/{path}") is None:
        if time.monotonic() > deadline:
            raise LookupError(f"{kv_mount}/data/{path} written but not readable back")
        time.sleep(0.05)


def read_secret(client: hvac.Client, kv_mount: str, path: str) -> dict[str, Any]:
    """The secret's data; LookupError when there is none at `path`."""
    response = client.read(f"{kv_mount}/data/{path}")
    if response is None:
        raise LookupError(f"{kv_mount}/data/{path} not found")
    return response["data"]["data"]


def denied(action: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """True when Vault answers the call with 403."""
    return _fails_with(Forbidden, action, *args, **kwargs)


def refused(action: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """True when Vault answers 403 or 400 (OpenBao's answer to a token whose identity template
    renders a `/`, `*` or `+`: every request of that token is refused)."""
    return _fails_with((Forbidden, InvalidRequest), action, *args, **kwargs)


def _fails_with(errors: Any, action: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    try:
        action(*args, **kwargs)
    except errors:
        return True
    return False


def ensure_kv_mount(client: hvac.Client, kv_mount: str) -> bool:
    """A KV v2 mount at `kv_mount`, enabled if missing (a dev server mounts `secret/` only, in
    its root namespace); True when it was enabled now."""
    mounts = client.sys.list_mounted_secrets_engines()
    if f"{kv_mount}/" in mounts.get("data", mounts):
        return False
    client.sys.enable_secrets_engine("kv", path=kv_mount, options={"version": "2"})
    return True


class ExpectationFailed(Exception):
    """One of the trial's checks did not hold."""


class Trial:
    """A Nomad job's life against a deployed stack, told step by step: log in with its
    identity, read its own secret, be denied a neighbour's.

    `outputs` are the stack's (one cluster): auth_path, role_name, policy_name, kv_mount and
    namespace. `root_token` writes the secrets, as an operator would.
    """

    def __init__(
        self,
        address: str,
        root_token: str,
        issuer: Issuer,
        outputs: Mapping[str, Any],
        job: str,
        namespace: str,
        say: Callable[[str], None] = print,
    ) -> None:
        self.address, self.issuer, self.say = address, issuer, say
        self.auth_path = str(outputs["auth_path"])
        self.role = str(outputs["role_name"])
        self.policy = str(outputs["policy_name"])
        self.kv = str(outputs["kv_mount"])
        self.vault_namespace = str(outputs.get("namespace") or "") or None
        self.job, self.namespace = job, namespace
        self.root = hvac.Client(url=address, token=root_token, namespace=self.vault_namespace)
        self.workload: hvac.Client | None = None
        self.identity = ""

    def run(self) -> bool:
        """All steps in order; True only if every expectation held."""
        steps = (
            self.mint,
            self.login,
            self.inspect_token,
            self.write_secrets,
            self.read_own_secret,
            self.read_other_secret,
        )
        self.say(f"\n## try: job {self.job!r} in Nomad namespace {self.namespace!r}")
        try:
            for number, step in enumerate(steps, start=1):
                self.say(f"\n[{number}/{len(steps)}] {(step.__doc__ or '').splitlines()[0]}")
                step()
        except ExpectationFailed as failed:
            self.say(f"\nFAILED: {failed}")
            return False
        except VaultError as error:
            self.say(f"\nFAILED: Vault said {type(error).__name__}: {error}")
            return False
        self.say(f"\nPASSED: job {self.job!r} reads its own secret and nothing else.")
        return True

    def expect(self, condition: bool, what: str) -> None:
        """Report a check's outcome; stop the trial at the first one that fails."""
        if not condition:
            self.say(f"     FAIL  {what}")
            raise ExpectationFailed(what)
        self.say(f"     ok    {what}")

    def mint(self) -> None:
        """Mint the job's workload identity with the issuer's keys (what Nomad signs)."""
        self.identity = self.issuer.mint(self.job, namespace=self.namespace)
        claims = jwt.decode(self.identity, options={"verify_signature": False})
        self.say(f"     JWT (RS256, kid {self.issuer.rsa_kid}): {self.identity[:40]}...")
        for name in ("sub", "aud", "nomad_namespace", "nomad_job_id", "nomad_task"):
            self.say(f"     {name:<16} {claims[name]}")

    def login(self) -> None:
        """Log in at auth/<auth_path>/login with the identity, as Nomad does for the task."""
        self.say(f"     POST auth/{self.auth_path}/login  role={self.role}")
        self.workload = login(
            self.address, self.identity, self.auth_path, self.role, self.vault_namespace
        )
        metadata = self._token()["meta"] or {}
        self.say(f"     metadata: {json.dumps(metadata, sort_keys=True)}")
        self.expect(bool(self.workload.token), "login returned a Vault token")
        self.expect(
            metadata.get("nomad_job_id") == self.job, f"token metadata nomad_job_id={self.job}"
        )
        self.expect(
            metadata.get("nomad_namespace") == self.namespace,
            f"token metadata nomad_namespace={self.namespace}",
        )

    def inspect_token(self) -> None:
        """Look the job's token up: its policies and its renewal period."""
        data = self._token()
        policies = data.get("policies") or []
        period = int(data.get("period") or 0)
        self.say(f"     policies: {', '.join(policies)}")
        self.say(f"     period: {period}s ({period // 60}m), ttl {data.get('ttl')}s")
        self.expect(self.policy in policies, f"carries policy {self.policy!r}")
        self.expect(period > 0, "is a periodic token (Nomad renews it while the task runs)")
        self.expect(bool(data.get("renewable")), "is renewable")

    def write_secrets(self) -> None:
        """As root, write the job's secret and a neighbour's (the operator's part)."""
        if ensure_kv_mount(self.root, self.kv):
            self.say(f"     enabled KV v2 at {self.kv}/")
        for path in (self.own_path, self.other_path):
            write_secret(self.root, self.kv, path, secret_for(path))
            self.say(f"     wrote {self.kv}/data/{path}")

    def read_own_secret(self) -> None:
        """With the job's token, read its own secret."""
        self.say(f"     GET {self.kv}/data/{self.own_path}")
        data = read_secret(self._client(), self.kv, self.own_path)
        self.say(f"     -> {json.dumps(data)}")
        self.expect(data == secret_for(self.own_path), "the job reads its own secret")

    def read_other_secret(self) -> None:
        """With the job's token, try another job's secret: the policy must deny it."""
        self.say(f"     GET {self.kv}/data/{self.other_path}")
        is_denied = denied(read_secret, self._client(), self.kv, self.other_path)
        if is_denied:
            self.say("     -> 403 permission denied")
        self.expect(is_denied, "another job's secret is denied (403)")

    @property
    def own_path(self) -> str:
        return f"{self.namespace}/{self.job}"

    @property
    def other_path(self) -> str:
        return f"{self.namespace}/{self.job}-other"

    def _client(self) -> hvac.Client:
        if self.workload is None:
            raise ExpectationFailed("the job has not logged in")
        return self.workload

    def _token(self) -> dict[str, Any]:
        return self._client().auth.token.lookup_self()["data"]


def secret_for(path: str) -> dict[str, str]:
    """The secret the trial writes at `path`: it names its owner, so a wrong read shows."""
    return {"owner": path, "greeting": f"hello {path}"}
