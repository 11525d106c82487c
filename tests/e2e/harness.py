"""One end-to-end scenario: a fresh OpenBao, a dev Nomad issuer, and the program deployed to it
through the real Pulumi CLI (`devtools.workspace`, on the Automation API), with a throw-away
`file://` backend and no checkpoints.

The project is copied into the scenario's folder so that its stack files never touch the work
tree (see `workspace.throwaway_stack`).
"""

from pathlib import Path
from typing import Any

import hvac
from pulumi import automation as auto

from devtools import openbao, workspace
from devtools.issuer import Issuer, IssuerServer
from devtools.proc import stop
from devtools.project_copy import PROJECT_DIR
from devtools.promote import pending_changes as changes

__all__ = ["PROJECT_DIR", "Scenario", "changes", "start_openbao"]

STACK = "e2e"
PASSPHRASE = "e2e-only"


def start_openbao(
    directory: Path, token: str, audited: bool = False
) -> tuple[openbao.DevServer, Path | None]:
    """A dev server; `audited` adds a raw file audit log, to see which tokens it was sent."""
    extra = openbao.AUDIT_API_CONFIG if audited else ""
    server = openbao.start(directory, token=token, extra_config=extra)
    if not audited:
        return server, None
    audit_log = directory / "audit.log"
    openbao.enable_file_audit(server.address, token, audit_log, raw=True)
    return server, audit_log


class Scenario:
    """A server, an issuer and a stack; `close()` stops both servers by PID."""

    # Not "root": the engine masks the stack's secret token wherever it appears in its output,
    # and "root" is part of many paths here.
    def __init__(
        self,
        root: Path,
        token: str = "e2e-root-token",
        audited: bool = False,
        server: workspace.VaultServer | None = None,
    ) -> None:
        """A dev server of its own, or the running `server` given (the caller's to stop)."""
        self.root = root
        self.owns_server = server is None
        if server is None:
            self.server, self.audit_log = start_openbao(root / "openbao", token, audited)
        else:
            self.server, self.audit_log = server, None
        self.issuer = Issuer()
        self.issuer_server = IssuerServer(self.issuer).start()
        self.other_issuers: list[IssuerServer] = []
        # Like every stack but dev, this one carries its own server and (secret) token.
        self.stack = workspace.throwaway_stack(root, STACK, PASSPHRASE, self.server)
        self.work_dir = Path(self.stack.workspace.work_dir)
        # What the stack's commands add to the caller's environment.
        self.env: dict[str, str] = dict(self.stack.workspace.env_vars)
        self.stack_file = workspace.stack_file(self.stack)
        self.vault = self.client()

    def add_issuer(self) -> tuple[Issuer, str]:
        """A second Nomad cluster's issuer (own keys, own JWKS URL), stopped with the rest."""
        issuer = Issuer()
        self.other_issuers.append(IssuerServer(issuer).start())
        return issuer, self.other_issuers[-1].jwks_url

    def deploy_with_token(self, token: str) -> None:
        """From now on the engine's provider talks to Vault with `token` (the stack's secret
        vault:token) instead of root."""
        self.stack.set_config("vault:token", auto.ConfigValue(token, secret=True))

    @property
    def jwks_url(self) -> str:
        return self.issuer_server.jwks_url

    def client(self, token: str | None = None, namespace: str | None = None) -> hvac.Client:
        """A Vault client on this scenario's server (root token unless told otherwise)."""
        return hvac.Client(
            url=self.server.address, token=token or self.server.token, namespace=namespace
        )

    def configure(self, **settings: Any) -> None:
        """Replace the stack's `nomad-vault-setup:` config (camelCase keys), as a user would
        by editing `Pulumi.<stack>.yaml` (see `workspace.configure`); `jwksUrl` defaults to
        this scenario's issuer."""
        workspace.configure(self.stack, **{"jwksUrl": self.jwks_url, **settings})

    def set_secret(self, key: str, value: str) -> None:
        """`pulumi config set --secret nomad-vault-setup:<key>`: encrypted in the stack file."""
        self.stack.set_config(workspace.CONFIG_PREFIX + key, auto.ConfigValue(value, secret=True))

    def up(self, **options: Any) -> auto.UpResult:
        return self.stack.up(color="never", **options)

    def preview(self, **options: Any) -> auto.PreviewResult:
        return self.stack.preview(color="never", **options)

    def destroy(self) -> auto.DestroyResult:
        return self.stack.destroy(color="never")

    def outputs(self) -> dict[str, Any]:
        return workspace.outputs(self.stack)

    def close(self) -> None:
        for server in (self.issuer_server, *self.other_issuers):
            server.stop()
        if self.owns_server:
            stop(self.server.pid)
