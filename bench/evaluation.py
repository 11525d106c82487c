"""How long the program takes to evaluate under Pulumi mocks, for 1, 10 and 50 clusters.

This is the program's own cost (settings, preflight, components, renderers), without the
engine or Vault: it should grow linearly with the number of clusters. It runs the program with
the unit tier's runner (devtools/mock_program.py). A script, not a test: `make bench` prints
it; nothing fails on time.
"""

import json
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from devtools.mock_program import ProgramRunner

SIZES = (1, 10, 50)
RUNS = 5


def clusters_config(size: int) -> dict[str, str]:
    """A stack of `size` clusters, each with one extra role and its inline policy."""
    policy = 'path "x" { capabilities = ["read"] }'
    role = {"name": "ops", "boundClaims": {"nomad_namespace": "ops"}, "policy": policy}
    entries = [{"name": f"c{index}", "roles": [role]} for index in range(size)]
    return {"clusters": json.dumps(entries)}


@contextmanager
def patches() -> Iterator[Any]:
    """A `setattr` for the runner that puts every replaced attribute back afterwards."""
    replaced: list[tuple[Any, str, Any]] = []

    def setattr_(target: Any, name: str, value: Any) -> None:
        replaced.append((target, name, getattr(target, name)))
        setattr(target, name, value)

    try:
        yield setattr_
    finally:
        for target, name, value in reversed(replaced):
            setattr(target, name, value)


def evaluate_once(size: int) -> tuple[float, int]:
    """Seconds to run `__main__.py` to completion under mocks, and resources registered."""
    with patches() as setattr_:
        runner = ProgramRunner(setattr_)
        started = time.perf_counter()
        run = runner(clusters_config(size))
        return time.perf_counter() - started, len(run.resources)


def main() -> int:
    print(f"program evaluation under mocks (median of {RUNS})")
    print(f"{'clusters':>8} {'resources':>10} {'median':>10} {'per cluster':>12}")
    for size in SIZES:
        samples = [evaluate_once(size) for _ in range(RUNS)]
        median = statistics.median(seconds for seconds, _ in samples)
        resources = samples[0][1]
        print(f"{size:>8} {resources:>10} {median * 1000:>8.1f}ms {median / size * 1000:>10.2f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
