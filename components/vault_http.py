"""The few reads made straight to Vault's HTTP API, beside the provider, and how.

Everything else goes through the provider. Two answers cannot: the server's kind and cluster
(`sys/health`, asked without a token, before the provider is trusted with one) and, in the
first step of an adoption, a namespace's own custom metadata (the provider's
`TERRAFORM_VAULT_NAMESPACE_IMPORT` then sends its reads into that namespace). Both use the
provider's TLS settings, never follow a redirect, and send a token only to the stack's address.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Tls:
    """The provider's TLS settings (vault:caCertFile, vault:caCertDir, vault:skipTlsVerify)."""

    ca_cert_file: str | None = None
    ca_cert_dir: str | None = None
    skip_verify: bool = False


NO_TLS_SETTINGS = Tls()


class VaultUnreachable(Exception):
    """No HTTP answer at all: refused, timed out, TLS failure, bad address."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer to report, not to follow (it could point anywhere)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _tls_context(tls: Tls) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_cert_file, capath=tls.ca_cert_dir)
    if tls.skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def get(url: str, headers: dict[str, str], tls: Tls, timeout: float = 10) -> tuple[int, bytes]:
    """One GET: the status and body of whatever answered (an error status included)."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    if url.startswith("https:"):
        handlers.append(urllib.request.HTTPSHandler(context=_tls_context(tls)))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers=headers)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:  # sealed, standby, 404...: the body still tells
        return error.code, error.read()
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
        raise VaultUnreachable(str(getattr(error, "reason", error))) from error


def namespace_metadata(
    address: str, token: str, path: str, parent: str, tls: Tls
) -> dict[str, str] | None:
    """The custom metadata of namespace `path` under the provider's namespace `parent` ("" for
    root), None when there is no such namespace. Raises VaultUnreachable, or ValueError with
    Vault's reason when the read is refused."""
    url = f"{address.rstrip('/')}/v1/sys/namespaces/{urllib.parse.quote(path)}"
    headers = {"X-Vault-Token": token, "Accept": "application/json"}
    if parent:
        headers["X-Vault-Namespace"] = parent
    status, body = get(url, headers, tls)
    if status == 404:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        answer = {}
    if status != 200 or not isinstance(answer, dict):
        errors = answer.get("errors") if isinstance(answer, dict) else None
        raise ValueError(f"HTTP {status}: {'; '.join(map(str, errors or [])) or 'no reason'}")
    metadata = (answer.get("data") or {}).get("custom_metadata")
    return dict(metadata) if isinstance(metadata, dict) else {}
