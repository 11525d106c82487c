"""One end-to-end scenario: a fresh OpenBao, a dev Nomad issuer, and the program deployed to it
through the real Pulumi CLI (via `pulumi.automation`), with a throw-away `file://` backend.

The project is copied into the scenario's folder so that its stack files never touch the work
tree; the copy's `venv` links to the interpreter running the tests, which holds the pinned
requirements, so the engine starts the program without installing anything.
"""

from pathlib import Path
from typing import Any

import hvac
import yaml
from pulumi import automation as auto

from devtools import openbao
from devtools.issuer import Issuer, IssuerServer
from devtools.proc import stop
from devtools.project_copy import PROJECT_DIR, copy_project
from devtools.promote import pending_changes as changes

__all__ = ["PROJECT_DIR", "Scenario", "changes", "start_openbao"]

STACK = "e2e"
PASSPHRASE = "e2e-only"
CONFIG_PREFIX = "nomad-vault-setup:"


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
    def __init__(self, root: Path, token: str = "e2e-root-token", audited: bool = False) -> None:
        self.root = root
        self.server, self.audit_log = start_openbao(root / "openbao", token, audited)
        self.issuer = Issuer()
        self.issuer_server = IssuerServer(self.issuer).start()
        self.other_issuers: list[IssuerServer] = []
        self.work_dir = copy_project(root / "project")
        backend = root / "state"
        backend.mkdir()
        self.env = {
            "PULUMI_BACKEND_URL": backend.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }
        self.stack = auto.create_or_select_stack(
            stack_name=STACK,
            work_dir=str(self.work_dir),
            opts=auto.LocalWorkspaceOptions(env_vars=self.env),
        )
        self.stack_file = self.work_dir / f"Pulumi.{STACK}.yaml"
        # Like every stack but dev, this one carries its own server and (secret) token.
        self.stack.set_config("vault:address", auto.ConfigValue(self.server.address))
        self.deploy_with_token(self.server.token)
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
        by editing `Pulumi.<stack>.yaml`; `jwksUrl` defaults to this scenario's issuer.
        Our secret values (see `set_secret`) and the provider's settings (`vault:`) are kept,
        as a user editing it would keep them."""
        document = yaml.safe_load(self.stack_file.read_text()) if self.stack_file.exists() else {}
        document = document or {}
        kept = {
            key: value
            for key, value in (document.get("config") or {}).items()
            if not key.startswith(CONFIG_PREFIX) or (isinstance(value, dict) and "secure" in value)
        }
        config = kept | {CONFIG_PREFIX + "jwksUrl": self.jwks_url}
        config |= {CONFIG_PREFIX + key: value for key, value in settings.items()}
        self.stack_file.write_text(yaml.safe_dump(document | {"config": config}))

    def set_secret(self, key: str, value: str) -> None:
        """`pulumi config set --secret nomad-vault-setup:<key>`: encrypted in the stack file."""
        self.stack.set_config(CONFIG_PREFIX + key, auto.ConfigValue(value, secret=True))

    def up(self, **options: Any) -> auto.UpResult:
        return self.stack.up(color="never", **options)

    def preview(self, **options: Any) -> auto.PreviewResult:
        return self.stack.preview(color="never", **options)

    def destroy(self) -> auto.DestroyResult:
        return self.stack.destroy(color="never")

    def outputs(self) -> dict[str, Any]:
        return {name: output.value for name, output in self.stack.outputs().items()}

    def close(self) -> None:
        for server in (self.issuer_server, *self.other_issuers):
            server.stop()
        stop(self.server.pid)
