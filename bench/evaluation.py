"""How long the program takes to evaluate under Pulumi mocks, for 1, 10 and 50 clusters.

This is the program's own cost (settings, components, renderers), without the engine or
Vault: it should grow linearly with the number of clusters. A script, not a test:
`make bench` prints it; nothing fails on time.
"""

import json
import runpy
import statistics
import sys
import time
from pathlib import Path

import pulumi

PROJECT_DIR = Path(__file__).resolve().parents[1]
SIZES = (1, 10, 50)
RUNS = 5


class EchoMocks(pulumi.runtime.Mocks):
    """Inputs back as state, plus the accessor the policy is rendered from; counts resources."""

    def __init__(self) -> None:
        self.count = 0

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.count += 1
        return f"{args.name}-id", dict(args.inputs) | {"accessor": "auth_jwt_bench"}

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


def clusters_config(size: int) -> dict[str, str]:
    """A stack of `size` clusters, each with one extra role and its inline policy."""
    role = {"name": "ops", "boundClaims": {"nomad_namespace": "ops"}, "policy": 'path "x" {}'}
    entries = [{"name": f"c{index}", "roles": [role]} for index in range(size)]
    return {
        "nomad-vault-setup:clusters": json.dumps(entries),
        "nomad-vault-setup:nomadVaultAddress": "http://127.0.0.1:8200",
    }


def evaluate_once(size: int) -> tuple[float, int]:
    """Seconds to run `__main__.py` to completion under mocks, and resources registered."""
    mocks = EchoMocks()
    pulumi.runtime.set_mocks(mocks, project="nomad-vault-setup", stack="bench", preview=False)
    pulumi.runtime.set_all_config(clusters_config(size))

    @pulumi.runtime.test
    def run() -> None:
        runpy.run_path(str(PROJECT_DIR / "__main__.py"), run_name="__main__")

    started = time.perf_counter()
    run()
    return time.perf_counter() - started, mocks.count


def main() -> int:
    sys.path.insert(0, str(PROJECT_DIR))
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
