"""The few questions asked straight of Vault's HTTP API, beside the provider, and how.

Everything else goes through the provider. These cannot, or must come before it: the
server's kind and state (`sys/health`, asked without a token, before the provider is trusted
with one), whether the server accepts the stack's token at all (`auth/token/lookup-self`),
what the token may do on the stack's paths (`sys/capabilities-self`: a question, it changes
nothing), and, in the first step of an adoption, a namespace's own custom metadata (the
provider's `TERRAFORM_VAULT_NAMESPACE_IMPORT` then sends its reads into that namespace). One
write: the JWT config of the stack's own auth mount when an interrupted `up` left it without
one (the provider would take the mount for deleted; see preflight.py). All use the provider's
TLS settings, never follow a redirect, and send the token only to the stack's own address.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from typing import Any

from .config.fields import is_loopback


@dataclass(frozen=True)
class Tls:
    """The provider's TLS settings (vault:caCertFile, vault:caCertDir, vault:skipTlsVerify)."""

    ca_cert_file: str | None = None
    ca_cert_dir: str | None = None
    skip_verify: bool = False
    ca_pem: str = ""  # CA certificates as PEM text (a JWKS's jwksCaFile): trusted alone


NO_TLS_SETTINGS = Tls()


class VaultUnreachable(Exception):
    """No HTTP answer at all: refused, timed out, TLS failure, bad address."""


class Refused(ValueError):
    """Vault answered, but not with what was asked: its status and reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to report, not to follow (it could point anywhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _tls_context(tls: Tls) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=tls.ca_cert_file, capath=tls.ca_cert_dir, cadata=tls.ca_pem or None
    )
    if tls.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def get(
    url: str,
    headers: dict[str, str],
    tls: Tls,
    timeout: float = 10,
    body: dict[str, Any] | None = None,
    limit: int | None = None,
) -> tuple[int, bytes]:
    """One GET (a POST when there is a `body`): the status and body of whatever answered (an
    error status included). With a `limit`, the answer must come whole within `timeout`
    seconds and `limit` bytes (an answer from outside, such as a JWKS, may trickle or flood)."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if _loopback(url):
        # Go's client (the provider's) never proxies a loopback address; urllib would send
        # the token to a proxy from the environment, in the clear for http://.
        handlers.append(urllib.request.ProxyHandler({}))
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(tls)))
    opener = urllib.request.build_opener(*handlers)
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        headers = {**headers, "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            if limit is None:
                return response.status, response.read()
            return response.status, _read_bounded(response, limit, time.monotonic() + timeout)
    except urllib.error.HTTPError as error:  # sealed, standby, 404...: the body still tells
        return error.code, error.read()
    except ValueError:  # its text would quote the header values: the token among them
        raise VaultUnreachable(
            "the request could not be sent (a header value is invalid)"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise VaultUnreachable(str(getattr(error, "reason", error))) from error


def _read_bounded(response: Any, limit: int, deadline: float) -> bytes:
    """The body, read as it arrives, given up past `limit` bytes or the `deadline`."""
    body = bytearray()
    while chunk := response.read1(65536):
        body += chunk
        if len(body) > limit:
            raise VaultUnreachable(f"the answer is larger than {limit} bytes")
        if time.monotonic() > deadline:
            raise VaultUnreachable("the answer did not arrive in time")
    return bytes(body)


def _loopback(url: str) -> bool:
    return is_loopback(urllib.parse.urlsplit(url).hostname or "")


@dataclass(frozen=True)
class Session:
    """The stack's server, token and provider namespace: who asks, where."""

    address: str
    token: str = field(repr=False)
    namespace: str = ""  # the provider's, "" for root
    tls: Tls = NO_TLS_SETTINGS

    def ask(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Vault's JSON answer for `path` (None for a read that finds nothing; a write must
        find its path). Raises VaultUnreachable, or Refused with Vault's status and reason."""
        url = f"{self.address.rstrip('/')}/v1/{urllib.parse.quote(path)}"
        headers = {"X-Vault-Token": self.token, "Accept": "application/json"}
        if self.namespace:
            headers["X-Vault-Namespace"] = self.namespace
        status, answer_bytes = get(url, headers, self.tls, body=body)
        if status == 404 and body is None:
            return None
        if status == 204:
            return {}
        try:
            answer = json.loads(answer_bytes)
        except ValueError:
            answer = {}
        if status != 200 or not isinstance(answer, dict):
            errors = answer.get("errors") if isinstance(answer, dict) else None
            reason = "; ".join(map(str, errors or [])) or "no reason given"
            raise Refused(status, f"HTTP {status}: {reason}")
        return answer


def inside(session: Session, namespace: str) -> Session:
    """The same session, in `namespace` under the provider's own."""
    joined = "/".join(part for part in (session.namespace, namespace) if part)
    return replace(session, namespace=joined)


def namespace_metadata(session: Session, path: str) -> dict[str, str] | None:
    """The custom metadata of namespace `path` (under the provider's), None when there is no
    such namespace."""
    answer = session.ask(f"sys/namespaces/{path}")
    if answer is None:
        return None
    metadata = (answer.get("data") or {}).get("custom_metadata")
    return dict(metadata) if isinstance(metadata, dict) else {}


def token_namespace(session: Session) -> str:
    """The namespace the token lives in ("" for root), asked where the provider asks it:
    without the provider's namespace. Raises Refused (403: the token is refused)."""
    answer = replace(session, namespace="").ask("auth/token/lookup-self")
    if answer is None:
        raise Refused(404, "HTTP 404: no token store answered")
    path = (answer.get("data") or {}).get("namespace_path") or ""
    return str(path).strip("/")


def capabilities(session: Session, paths: list[str]) -> dict[str, list[str]]:
    """What the token may do on each path (`sys/capabilities-self`: a question, no change)."""
    answer = session.ask("sys/capabilities-self", {"paths": paths}) or {}
    data = answer.get("data") if isinstance(answer.get("data"), dict) else answer
    return {path: list(data.get(path) or []) for path in paths}
