"""Completing the stack's own auth mount that an interrupted `up` left without JWT config.

Enabling the JWT mount and writing its config are one resource to the provider: when the
config write fails (Nomad's JWKS unreachable, the active node lost mid-run) the mount stays
enabled without config. The provider then reads it as deleted, so after a refresh the engine
would create it again and fail on the path in use. The program writes the config from the
settings instead, and the engine takes the mount back by import, its accessor kept.
"""

import time
from collections.abc import Mapping
from typing import Any

import pulumi

from .config import Cluster, ProviderContext
from .preflight import PreflightError
from .signing_keys import SigningKeys
from .vault_http import Session, VaultUnreachable, inside
from .vault_setup import JWT_SUPPORTED_ALGS, Imports


def until_readable(session: Session, path: str, timeout: float = 10) -> None:
    """Wait until `path` reads back where the provider will read it: a standby serving reads
    applies a write made through the active node a moment later."""
    deadline = time.monotonic() + timeout
    while session.ask(path) is None:
        if time.monotonic() > deadline:
            raise ValueError(f"{path} written, but not readable after {timeout:.0f} s")
        time.sleep(0.1)


def complete_configs(
    clusters: tuple[Cluster, ...],
    provider: ProviderContext,
    keys: Mapping[str, SigningKeys] | None = None,
) -> dict[str, Imports]:
    """Write the JWT config of each of the stack's own mounts an interrupted `up` left without
    one (the JWKS did not answer, or the server went away mid-run), so the engine can take the
    mounts back by import; the import ids per cluster. Called once every other check passed.

    Such a mount accepts no login, and the provider reads it as deleted: after a refresh the
    engine would create it again and fail on the path in use. Completed with the settings'
    values, the engine imports it and carries on, whatever its state holds (the accessor
    stays). A preview only says what the `up` will do. Raises PreflightError when a config
    cannot be written.
    """
    imports: dict[str, Imports] = {}
    problems: list[str] = []
    for cluster in clusters:
        settings = cluster.settings
        auth_path = settings.auth_path
        where = f" in namespace {settings.namespace!r}" if settings.namespace else ""
        found = (
            f"{cluster.setting('authPath')}: auth mount {auth_path!r}{where} has no JWT"
            " config: an earlier `up` stopped before writing it (JWKS unreachable, or the"
            " server lost mid-run)"
        )
        if pulumi.runtime.is_dry_run():
            pulumi.log.warn(f"{found}; `pulumi up` writes it from the settings and keeps the mount")
            continue
        if not provider.token:
            problems.append(
                f"{found}; to write it, give the program the token: vault:token or VAULT_TOKEN"
            )
            continue
        static = (keys or {}).get(cluster.name)
        trust: dict[str, Any] = (
            {"jwt_validation_pubkeys": list(static.trusted)}
            if static
            else {
                "jwks_url": settings.jwks_url,
                **({"jwks_ca_pem": settings.jwks_ca_pem} if settings.jwks_ca_pem else {}),
            }
        )
        config = {
            **trust,
            "jwt_supported_algs": JWT_SUPPORTED_ALGS,
            "default_role": settings.role_name,
        }
        session, path = inside(provider.session, settings.namespace), f"auth/{auth_path}/config"
        try:
            session.ask(path, config)
            until_readable(session, path)
        except (VaultUnreachable, ValueError) as error:
            problems.append(f"{found}, and writing it now failed: {error}")
            continue
        pulumi.log.info(f"{found}; written from the settings, and the mount taken back")
        imports[cluster.name] = Imports(auth=auth_path)
    if problems:
        written = ", ".join(repr(c.settings.auth_path) for c in clusters if c.name in imports)
        done = f" (the JWT config of {written} was written)" if written else ", nothing was changed"
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise PreflightError(f"refusing to apply this stack{done}:\n{lines}")
    return imports
