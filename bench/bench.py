"""How long the program takes through the real Pulumi CLI, next to raw HTTP, and what it sends.

`make bench` starts a throwaway OpenBao dev server and a dev Nomad issuer, runs a throwaway
stack in a copy of the project with a temporary file:// backend (`devtools.workspace`), and
prints tables to paste into a note:

- wall-clock median/min/max over N runs of a first `up`, a no-op `up`, a `preview`, a `destroy`
  of the default configuration (each run destroys, so every first `up` starts from empty state
  and an empty Vault);
- the same objects created and deleted with raw HTTP calls, as `nomad setup vault` does (the
  bench checks that both leave the same objects);
- the Vault requests each command makes, counted from an OpenBao audit log. A no-op command
  must not write: if it does, a WARNING is printed and the exit status is 1;
- the same four commands for 1, 10 and 50 clusters, with the local backend's checkpoints on
  (its default) and off (`PULUMI_SKIP_CHECKPOINTS=true`, what every throwaway stack here uses);
- a first `up` and a no-op `up` against a three-node OpenBao Raft cluster (through a standby
  node, as behind a load balancer), beside the dev server's, and their ratio;
- a first `up` and a no-op `up` of examples/yaml, the component reached through its package,
  with the same objects, beside the stack program's, and their ratio.

Timings never fail the bench; they depend on the machine. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
import yaml
from pulumi import automation as auto

from bench import audit, raw
from bench.audit import Requests
from devtools import consumer, openbao, raft, workspace
from devtools.issuer import Issuer, IssuerServer
from devtools.proc import stop
from nomad_vault_setup.resource_types import PROJECT

STACK = "bench"
PASSPHRASE = "nomad-vault-setup-bench"
# The owner the program's policy marker names for the bench's stack (a file backend's
# organization is always `organization`).
OWNER = f"organization/{PROJECT}/{STACK}"

# `up` and `destroy` skip their built-in preview, so each number is one engine pass and
# `preview` is measured on its own; an interactive `pulumi up` costs about preview + up.
# (`--non-interactive` and `--stack` are added by `workspace.run`.)
COMMON = ("--color", "never", "--suppress-progress")
UP = ("up", "--yes", "--skip-preview", *COMMON)
PREVIEW = ("preview", *COMMON)
DESTROY = ("destroy", "--yes", "--skip-preview", *COMMON)
NO_CHANGES = ("--expect-no-changes",)

FIRST_UP = "pulumi up, first (4 objects)"
NOOP_UP = "pulumi up, no-op"
NOOP_PREVIEW = "pulumi preview, no-op"
REFRESH_UP = "pulumi up --refresh, no-op"
DESTROY_ALL = "pulumi destroy"
RAW_CREATE = "raw HTTP create (5 calls)"
RAW_DELETE = "raw HTTP delete (3 calls)"
RAFT_FIRST_UP = "pulumi up, first, 3-node Raft"
RAFT_NOOP_UP = "pulumi up, no-op, 3-node Raft"
YAML_FIRST_UP = "pulumi up, first, YAML program + package"
YAML_NOOP_UP = "pulumi up, no-op, YAML program + package"
NO_OP = (NOOP_UP, NOOP_PREVIEW, REFRESH_UP)
CYCLE = ((FIRST_UP, UP), (NOOP_UP, UP), (NOOP_PREVIEW, PREVIEW), (DESTROY_ALL, DESTROY))

# The cluster-count rows: how many clusters, and how many timed runs each gets by default
# (fewer for 50 clusters, whose four commands take ~40 s with checkpoints on and off, so that
# `make bench` stays under ~5 minutes).
CLUSTER_RUNS = {1: 3, 10: 3, 50: 2}


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the pasteable report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def time_pulumi(stack: auto.Stack, runs: int) -> dict[str, list[float]]:
    """N cycles of first up, no-op up, preview, destroy; destroy resets state for the next."""
    samples: dict[str, list[float]] = {label: [] for label, _ in CYCLE}
    for number in range(1, runs + 1):
        for label, args in CYCLE:
            seconds = workspace.run(stack, *args).seconds
            samples[label].append(seconds)
            log(f"run {number}/{runs}: {label}: {seconds:.2f} s")
    return samples


def time_raw(vault: raw.Vault, jwks_url: str, runs: int) -> dict[str, list[float]]:
    """N cycles of the raw create and delete, one warm-up first (connection, JWKS fetch)."""
    raw.create(vault, jwks_url, OWNER)
    raw.delete(vault)
    samples: dict[str, list[float]] = {RAW_CREATE: [], RAW_DELETE: []}
    for _ in range(runs):
        for label, action in (
            (RAW_CREATE, lambda: raw.create(vault, jwks_url, OWNER)),
            (RAW_DELETE, lambda: raw.delete(vault)),
        ):
            started = time.perf_counter()
            action()
            samples[label].append(time.perf_counter() - started)
    log(f"raw HTTP: create median {statistics.median(samples[RAW_CREATE]) * 1000:.1f} ms")
    return samples


@dataclass
class Counted:
    """The requests one command made and whether the engine itself reported changes."""

    requests: Requests
    engine: str = ""


@dataclass
class AuditReport:
    """Request counts per command, in the order they ran; and where the objects raw HTTP left
    differ from those the first `up` left (nowhere, as they should)."""

    by_label: dict[str, Counted] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)


def _engine_verdict(run: workspace.Run) -> str:
    """What `--expect-no-changes` said: a no-op must plan nothing."""
    if run.ok:
        return "none"
    if "no changes were expected" in run.output:
        return "CHANGES"
    tail = "\n".join(run.output.splitlines()[-30:])
    raise RuntimeError(f"pulumi failed:\n{tail}")


def count_requests(
    stack: auto.Stack, vault: raw.Vault, jwks_url: str, log_path: Path
) -> AuditReport:
    """Enable the audit device, then count what each command sends, one run each; compare
    the objects raw HTTP and the first `up` leave."""
    openbao.enable_file_audit(vault.address, vault.token, log_path, name="bench")
    report = AuditReport()
    left: dict[str, dict[str, Any]] = {}

    def counted(label: str, action: Callable[[], str | None]) -> None:
        mark = audit.line_count(log_path)
        engine = action() or ""
        report.by_label[label] = Counted(audit.requests_since(log_path, mark), engine)
        log(f"audit: {label}: {report.by_label[label].requests.total} requests")

    def pulumi(*args: str) -> Callable[[], str | None]:
        """A change-making command must succeed; a no-op one reports the engine's verdict."""
        if "--expect-no-changes" in args:
            return lambda: _engine_verdict(workspace.run(stack, *args, check=False))
        return lambda: workspace.run(stack, *args) and None

    counted(RAW_CREATE, lambda: raw.create(vault, jwks_url, OWNER))
    left["raw HTTP"] = raw.objects(vault)
    counted(RAW_DELETE, lambda: raw.delete(vault))
    counted(FIRST_UP, pulumi(*UP))
    left["pulumi up"] = raw.objects(vault)
    report.differences = raw.differences(left["raw HTTP"], left["pulumi up"])
    counted(NOOP_UP, pulumi(*UP, *NO_CHANGES))
    counted(NOOP_PREVIEW, pulumi(*PREVIEW, *NO_CHANGES))
    counted(REFRESH_UP, pulumi(*UP, "--refresh", *NO_CHANGES))
    counted(DESTROY_ALL, pulumi(*DESTROY))
    with vault.session() as session:  # auditing slows the server: not for the later timings
        vault.call(session, "DELETE", "sys/audit/bench")
    return report


def _duration(seconds: float) -> str:
    """Seconds for the CLI, milliseconds for raw HTTP: each readable at a glance."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def timing_table(samples: dict[str, list[float]]) -> list[str]:
    """One line per measurement: median, min, max."""
    width = max(len(label) for label in samples)
    lines = [f"{'wall clock':<{width}}  {'median':>9}  {'min':>9}  {'max':>9}"]
    for label, values in samples.items():
        cells = (statistics.median(values), min(values), max(values))
        lines.append(f"{label:<{width}}  " + "  ".join(f"{_duration(v):>9}" for v in cells))
    return lines


def ratio_line(samples: dict[str, list[float]]) -> str:
    """The headline: how many times slower the Pulumi path is than the bare API calls."""
    pulumi_up = statistics.median(samples[FIRST_UP])
    raw_create = statistics.median(samples[RAW_CREATE])
    return (
        f"ratio pulumi first up / raw create (medians): {pulumi_up / raw_create:.0f}x "
        f"({_duration(pulumi_up)} vs {_duration(raw_create)})"
    )


def time_raft(work: Path, jwks_url: str, runs: int) -> dict[str, list[float]]:
    """N cycles of first up, no-op up and destroy on a fresh three-node Raft cluster, its
    stack pointed at a standby (every write is forwarded to the active node)."""
    log("starting a three-node OpenBao Raft cluster")
    cluster = raft.start(work / "raft")
    try:
        standby = raft.standbys(cluster)[0]
        node = raw.Vault(standby.address, cluster.token)
        stack = workspace.throwaway_stack(work / "raft-stack", STACK, PASSPHRASE, node)
        workspace.configure(stack, jwksUrl=jwks_url)
        workspace.run(stack, *PREVIEW)  # warm-up, as for the dev server
        samples: dict[str, list[float]] = {RAFT_FIRST_UP: [], RAFT_NOOP_UP: []}
        for number in range(1, runs + 1):
            for label, args in ((RAFT_FIRST_UP, UP), (RAFT_NOOP_UP, UP)):
                samples[label].append(workspace.run(stack, *args).seconds)
                log(f"raft run {number}/{runs}: {label}: {samples[label][-1]:.2f} s")
            workspace.run(stack, *DESTROY)
        return samples
    finally:
        raft.stop_cluster(cluster)
        log("stopped the Raft nodes")


def time_yaml_consumer(
    work: Path, vault: workspace.VaultServer, jwks_url: str, runs: int
) -> dict[str, list[float]]:
    """N cycles of first up, no-op up and destroy of examples/yaml, the component reached
    through its package, with the same objects as the stack program (its extra role left out),
    on the same server."""
    stack = consumer.yaml_program(work / "yaml-consumer", vault)
    consumer.configure(stack, jwksUrl=jwks_url)
    program = Path(stack.workspace.work_dir) / "Pulumi.yaml"
    project = yaml.safe_load(program.read_text())
    project["resources"]["nomad"]["properties"].pop("roles")
    program.write_text(yaml.safe_dump(project, sort_keys=False))
    workspace.run(stack, *PREVIEW)  # warm-up, as for the stack program
    samples: dict[str, list[float]] = {YAML_FIRST_UP: [], YAML_NOOP_UP: []}
    for number in range(1, runs + 1):
        for label in samples:
            samples[label].append(workspace.run(stack, *UP).seconds)
            log(f"yaml run {number}/{runs}: {label}: {samples[label][-1]:.2f} s")
        workspace.run(stack, *DESTROY)
    return samples


def medians_ratio_lines(
    samples: dict[str, list[float]], pairs: Sequence[tuple[str, str]], beside: str
) -> list[str]:
    """Each pair's second median over its first, same run."""
    lines = []
    for base, other in pairs:
        on_base, on_other = statistics.median(samples[base]), statistics.median(samples[other])
        lines.append(
            f"ratio {other} / {beside} (medians): {on_other / on_base:.2f}x "
            f"({_duration(on_other)} vs {_duration(on_base)})"
        )
    return lines


def _calls(counter: dict[tuple[str, str], int]) -> list[str]:
    return [f"  {op:<7} {path:<45} {n:>3}" for (op, path), n in sorted(counter.items())]


def audit_table(report: AuditReport) -> list[str]:
    """Requests per command, then each Pulumi command broken down by operation and path.

    `session` counts the provider's own child-token writes apart from writes to the objects.
    """
    width = max(len(label) for label in report.by_label)
    lines = [
        f"{'vault requests (audit log)':<{width}}  {'total':>5}  {'reads':>5}  {'writes':>6}"
        f"  {'session':>7}  engine changes"
    ]
    for label, counted in report.by_label.items():
        found = counted.requests
        lines.append(
            f"{label:<{width}}  {found.total:>5}  {found.reads:>5}  "
            f"{sum(found.writes(session=False).values()):>6}  "
            f"{sum(found.writes(session=True).values()):>7}  {counted.engine or '-'}"
        )
    for label, counted in report.by_label.items():
        if label.startswith("pulumi"):
            lines += ["", f"{label}:"]
            lines += _calls(counted.requests.by_call) or ["  (no requests)"]
    return lines


def idempotency_lines(report: AuditReport) -> tuple[list[str], bool]:
    """Loud lines for any no-op command that wrote to Vault or planned a change."""
    lines: list[str] = []
    ok = True
    for label in NO_OP:
        counted = report.by_label[label]
        managed = counted.requests.writes(session=False)
        session = counted.requests.writes(session=True)
        if managed or counted.engine == "CHANGES":
            ok = False
            lines.append(
                f"WARNING: {label} is NOT a no-op: {sum(managed.values())} writes to managed "
                f"Vault objects, engine changes: {counted.engine}"
            )
            lines += _calls(managed)
        if session:
            lines.append(
                f"note: {label} also makes {sum(session.values())} session write(s): the "
                "provider's child token (auth/token/create) and the program's capability"
                " question (sys/capabilities-self), not managed objects"
            )
    if ok:
        lines.append("no-op commands: 0 writes to managed Vault objects, no planned changes")
    return lines, ok


def same_objects_lines(report: AuditReport) -> tuple[list[str], bool]:
    """Whether raw HTTP and the first `up` left the same objects, as the timings assume."""
    if not report.differences:
        return [
            "raw HTTP and pulumi up leave the same objects: mount, its config, role and policy "
            "(accessor aside), read back and compared"
        ], True
    return [
        "WARNING: raw HTTP and pulumi up leave different objects (raw != pulumi):",
        *(f"  {line}" for line in report.differences),
    ], False


# --- 1, 10 and 50 clusters, checkpoints on and off ----------------------------------------


@dataclass
class ClusterRow:
    """The cycle's timings for one cluster count with checkpoints on or off."""

    clusters: int
    resources: int
    checkpoints: bool
    samples: dict[str, list[float]]


def clusters_config(size: int) -> list[dict[str, str]]:
    """`size` clusters sharing the issuer: each its own mount, policy and role."""
    return [{"name": f"c{index}"} for index in range(size)]


def resource_count(stack: auto.Stack) -> int:
    """The resources in the stack's state, the stack itself and its providers aside."""
    resources = stack.export_stack().deployment.get("resources") or []
    return sum(
        1
        for resource in resources
        if resource["type"] != "pulumi:pulumi:Stack"
        and not resource["type"].startswith("pulumi:providers:")
    )


def time_clusters(stack: auto.Stack, jwks_url: str, size: int, runs: int) -> list[ClusterRow]:
    """`runs` cycles for `size` clusters, alternating checkpoints on and off run by run."""
    workspace.configure(stack, jwksUrl=jwks_url, clusters=clusters_config(size))
    env = dict(stack.workspace.env_vars) | {"PULUMI_SKIP_CHECKPOINTS": "false"}
    with_checkpoints = workspace.open_stack(stack.name, Path(stack.workspace.work_dir), env)
    rows = [
        ClusterRow(size, 0, checkpoints, {label: [] for label, _ in CYCLE})
        for checkpoints in (True, False)
    ]
    for number in range(1, runs + 1):
        for row, handle in zip(rows, (with_checkpoints, stack), strict=True):
            for label, args in CYCLE:
                seconds = workspace.run(handle, *args).seconds
                row.samples[label].append(seconds)
                if label == FIRST_UP and not row.resources:
                    row.resources = resource_count(stack)
            on = "on" if row.checkpoints else "off"
            cycle = ", ".join(f"{row.samples[label][-1]:.2f}" for label, _ in CYCLE)
            log(f"{size} clusters, checkpoints {on}, run {number}/{runs}: {cycle} s")
    return rows


def clusters_table(rows: list[ClusterRow]) -> list[str]:
    """Medians by cluster count, checkpoints on and off."""
    header = ("first up", "no-op up", "preview", "destroy")
    lines = [
        "through the Pulumi CLI by number of clusters (`clusters`, one issuer), median of runs;",
        "checkpoints on: the local backend's default; off: PULUMI_SKIP_CHECKPOINTS=true",
        f"{'clusters':>8}  {'resources':>9}  {'checkpoints':>11}  {'runs':>4}  "
        + "  ".join(f"{name:>9}" for name in header),
    ]
    for row in rows:
        medians = [statistics.median(row.samples[label]) for label, _ in CYCLE]
        lines.append(
            f"{row.clusters:>8}  {row.resources:>9}  {'on' if row.checkpoints else 'off':>11}  "
            f"{len(row.samples[FIRST_UP]):>4}  "
            + "  ".join(f"{_duration(value):>9}" for value in medians)
        )
    return lines


def environment_lines(pulumi_version: str, openbao_version: str, runs: int) -> list[str]:
    """What the numbers were measured with, so a pasted note stays interpretable."""
    return [
        f"nomad-vault-setup bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, runs={runs}",
        f"pulumi CLI {pulumi_version}, pulumi SDK {version('pulumi')}, "
        f"pulumi-vault {version('pulumi-vault')}, Python {platform.python_version()}",
        f"OpenBao {openbao_version} dev server (in-memory) on loopback, file:// backend, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "up/destroy run with --skip-preview (an interactive `pulumi up` ~ preview + up); "
        "checkpoints off (PULUMI_SKIP_CHECKPOINTS=true) unless a row says on",
    ]


def openbao_version(vault: raw.Vault) -> str:
    """From the unauthenticated seal status, which every OpenBao/Vault answers."""
    status = requests.get(f"{vault.address}/v1/sys/seal-status", timeout=raw.TIMEOUT).json()
    return str(status.get("version", "unknown"))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__)
    parser.add_argument(
        "--runs",
        type=int,
        default=int(os.environ.get("BENCH_RUNS", "5")),
        help="timed runs per measurement of the default stack (default 5, or $BENCH_RUNS)",
    )
    parser.add_argument(
        "--cluster-runs",
        type=int,
        default=None,
        help="timed runs per cluster count (default: "
        + ", ".join(f"{runs} for {size}" for size, runs in CLUSTER_RUNS.items())
        + "); 0 skips the cluster rows",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.cluster_runs is not None and args.cluster_runs < 0:
        parser.error("--cluster-runs must be at least 0")
    return args


def bench(work: Path, runs: int, cluster_runs: dict[int, int]) -> int:
    """Everything between starting and stopping the servers; returns the exit status."""
    pulumi_version = subprocess.run(
        ["pulumi", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log("starting OpenBao dev server and dev issuer")
    dev = openbao.start(work / "openbao", extra_config=openbao.AUDIT_API_CONFIG)
    issuer = IssuerServer(Issuer()).start()
    try:
        vault = raw.Vault(dev.address, dev.token)
        stack = workspace.throwaway_stack(work, STACK, PASSPHRASE, vault)
        workspace.configure(stack, jwksUrl=issuer.jwks_url)
        log("warm-up: one untimed preview and raw create/delete")
        workspace.run(stack, *PREVIEW)
        raw_samples = time_raw(vault, issuer.jwks_url, runs)
        samples = {
            **time_pulumi(stack, runs),
            **raw_samples,
            **time_yaml_consumer(work, dev, issuer.jwks_url, runs),
            **time_raft(work, issuer.jwks_url, runs),
        }
        log("counting Vault requests via the audit log")
        report = count_requests(stack, vault, issuer.jwks_url, work / "audit.log")
        checks, idempotent = idempotency_lines(report)
        same, same_ok = same_objects_lines(report)
        rows = [
            row
            for size, size_runs in cluster_runs.items()
            if size_runs
            for row in time_clusters(stack, issuer.jwks_url, size, size_runs)
        ]
        lines = [
            *environment_lines(pulumi_version, openbao_version(vault), runs),
            "",
            *timing_table(samples),
            ratio_line(samples),
            *medians_ratio_lines(
                samples, ((FIRST_UP, RAFT_FIRST_UP), (NOOP_UP, RAFT_NOOP_UP)), "dev server"
            ),
            *medians_ratio_lines(
                samples, ((FIRST_UP, YAML_FIRST_UP), (NOOP_UP, YAML_NOOP_UP)), "stack program"
            ),
            *same,
            "",
            *audit_table(report),
            "",
            *checks,
            *(["", *clusters_table(rows)] if rows else []),
        ]
        print("\n".join(lines))
        if not idempotent:
            log("WARNING: a no-op command changed Vault; the program is not idempotent")
        if not same_ok:
            log("WARNING: raw HTTP does not create what the program does; fix bench/raw.py")
        return 0 if idempotent and same_ok else 1
    finally:
        issuer.stop()
        stop(dev.pid)
        log(f"stopped OpenBao (pid {dev.pid}) and the issuer")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        workspace.require_cli()
    except workspace.PulumiMissing as missing:
        sys.exit(f"bench: {missing}")
    cluster_runs = (
        CLUSTER_RUNS
        if args.cluster_runs is None
        else dict.fromkeys(CLUSTER_RUNS, args.cluster_runs)
    )
    with tempfile.TemporaryDirectory(prefix="nomad-vault-bench-") as work:
        return bench(Path(work), args.runs, cluster_runs)


if __name__ == "__main__":
    sys.exit(main())
