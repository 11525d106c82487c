"""The unit tier runs the real program under Pulumi mocks (devtools/mock_program.py)."""

from collections.abc import Iterator

import pulumi
import pytest

from devtools.mock_program import (
    MOCK_ACCESSOR,
    ON_OPENBAO,
    OPENBAO,
    PROJECT_DIR,
    ProgramRun,
    ProgramRunner,
    resolve,
)

__all__ = ["MOCK_ACCESSOR", "ON_OPENBAO", "OPENBAO", "PROJECT_DIR", "ProgramRun", "resolve"]


@pytest.fixture
def run_program(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProgramRunner]:
    """The program runner, with no provider settings leaking in from the environment."""
    leaking = ("VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_SKIP_VERIFY", "PULUMI_CONFIG")
    for variable in (*leaking, "TERRAFORM_VAULT_NAMESPACE_IMPORT"):
        monkeypatch.delenv(variable, raising=False)
    yield ProgramRunner(monkeypatch.setattr)
    pulumi.runtime.set_all_config({}, [])
