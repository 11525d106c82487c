"""The e2e tier: the real Pulumi CLI, a real OpenBao dev server and the dev Nomad issuer.

It never passes by skipping: without the `pulumi` CLI every test here fails with how to get it.
"""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import workspace
from tests.e2e.harness import Scenario


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def pulumi_cli() -> str:
    try:
        return workspace.require_cli()
    except workspace.PulumiMissing as missing:
        pytest.fail(f"the e2e tier runs the real engine: {missing}", pytrace=False)


@pytest.fixture(scope="module")
def new_scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Scenario]]:
    """Start fresh scenarios (server + issuer + stack) for a module; all stopped at its end."""
    started: list[Scenario] = []

    def start(**options: Any) -> Scenario:
        scenario = Scenario(Path(tmp_path_factory.mktemp("scenario")), **options)
        started.append(scenario)
        return scenario

    yield start
    for scenario in started:
        scenario.close()
