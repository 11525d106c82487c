"""The workload calls of `devtools.workload`, on a scenario's server: what the e2e tests of a
Nomad job's identity share (log in, read, list, be denied)."""

import hvac

from devtools import workload
from devtools.workload import denied, read_secret, refused, write_secret
from tests.e2e.harness import Scenario

__all__ = ["denied", "login", "login_refused", "read_secret", "refused", "write_secret"]


def login(
    scenario: Scenario, jwt: str, auth_path: str, role: str, namespace: str | None = None
) -> hvac.Client:
    """A client holding the token a Nomad task would get for `jwt`."""
    return workload.login(scenario.server.address, jwt, auth_path, role, namespace)


def login_refused(
    scenario: Scenario, jwt: str, auth_path: str, role: str, namespace: str | None = None
) -> str:
    """Vault's reason for refusing a login that must be refused (HTTP 400)."""
    reason = workload.login_error(scenario.server.address, jwt, auth_path, role, namespace)
    assert reason is not None, f"the login as role {role} at {auth_path} was accepted"
    return reason
