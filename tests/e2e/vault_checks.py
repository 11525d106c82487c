"""What a Nomad workload can do with its identity: log in, read, list, be denied."""

from typing import Any

import hvac
import pytest
from hvac.exceptions import Forbidden, InvalidRequest

from tests.e2e.harness import Scenario


def login(
    scenario: Scenario, jwt: str, auth_path: str, role: str, namespace: str | None = None
) -> hvac.Client:
    """A client holding the token a Nomad task would get for `jwt`."""
    client = scenario.client(namespace=namespace)
    client.token = None
    client.auth.jwt.jwt_login(role=role, jwt=jwt, path=auth_path)
    return client


def login_refused(
    scenario: Scenario, jwt: str, auth_path: str, role: str, namespace: str | None = None
) -> str:
    """The error text of a login that must fail with HTTP 400."""
    with pytest.raises(InvalidRequest) as refused:
        login(scenario, jwt, auth_path, role, namespace)
    return str(refused.value)


def write_secret(client: hvac.Client, kv_mount: str, path: str, data: dict[str, Any]) -> None:
    client.write_data(f"{kv_mount}/data/{path}", data={"data": data})


def read_secret(client: hvac.Client, kv_mount: str, path: str) -> dict[str, Any]:
    response = client.read(f"{kv_mount}/data/{path}")
    assert response is not None, f"{kv_mount}/data/{path} not found"
    return response["data"]["data"]


def denied(action: Any, *args: Any, **kwargs: Any) -> bool:
    """True when Vault answers 403 to the call."""
    return _fails_with(Forbidden, action, *args, **kwargs)


def refused(action: Any, *args: Any, **kwargs: Any) -> bool:
    """True when Vault answers 403 or 400 (OpenBao's answer to a token whose identity
    template renders a `/`, `*` or `+`: every request of that token is refused)."""
    return _fails_with((Forbidden, InvalidRequest), action, *args, **kwargs)


def _fails_with(errors: Any, action: Any, *args: Any, **kwargs: Any) -> bool:
    try:
        action(*args, **kwargs)
    except errors:
        return True
    return False
