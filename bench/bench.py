"""How long the program takes through the real Pulumi CLI, next to raw HTTP, and what it sends.

`make bench` starts a throwaway OpenBao dev server and a dev Nomad issuer, runs a temporary copy
of the project with a temporary file:// backend, and prints a table to paste into a note:

- wall-clock median/min/max over N runs of a first `up`, a no-op `up`, a `preview`, a `destroy`
  (each run destroys, so every first `up` starts from empty state and an empty Vault);
- the same objects created and deleted with raw HTTP calls, as `nomad setup vault` does;
- the Vault requests each command makes, counted from an OpenBao audit log. A no-op command
  must not write: if it does, a WARNING is printed and the exit status is 1.

Timings never fail the bench; they depend on the machine. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
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

import requests

from bench import audit, raw
from bench.audit import Requests
from components.settings import PROJECT
from devtools import openbao
from devtools.issuer import Issuer, IssuerServer
from devtools.proc import stop
from devtools.project_copy import copy_project

PROJECT_DIR = Path(__file__).resolve().parent.parent
STACK = "bench"
PASSPHRASE = "nomad-vault-setup-bench"
# Caller settings that would send the bench's stack elsewhere or unlock it differently.
DROPPED_PULUMI_ENV = frozenset(
    {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_STACK", "PULUMI_ORG"}
)
INSTALL_HINT = (
    "bench: the Pulumi CLI is not on PATH. Install it (https://www.pulumi.com/docs/install/, "
    "e.g. `curl -fsSL https://get.pulumi.com | sh`), put it on PATH and run `make bench` again."
)

# `up` and `destroy` skip their built-in preview, so each number is one engine pass and
# `preview` is measured on its own; an interactive `pulumi up` costs about preview + up.
COMMON = ("--non-interactive", "--stack", STACK, "--color", "never", "--suppress-progress")
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
NO_OP = (NOOP_UP, NOOP_PREVIEW, REFRESH_UP)


def log(message: str) -> None:
    """Progress on stderr, so stdout stays the pasteable report."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def require_pulumi() -> str:
    """The bench drives the real CLI; without one there is nothing to measure."""
    found = shutil.which("pulumi")
    if found is None:
        sys.exit(INSTALL_HINT)
    return found


@dataclass(frozen=True)
class Run:
    """One CLI invocation: how long it took, how it ended, what it printed."""

    seconds: float
    returncode: int
    output: str


@dataclass(frozen=True)
class PulumiProject:
    """A throwaway copy of the project with its own backend; every call is the real CLI."""

    work_dir: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> Run:
        """Run `pulumi args…` in the copy and time it; a failure aborts unless `check` is off."""
        started = time.perf_counter()
        done = subprocess.run(
            ["pulumi", *args],
            cwd=self.work_dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            tail = "\n".join(output.splitlines()[-30:])
            raise RuntimeError(f"pulumi {' '.join(args)} failed ({done.returncode}):\n{tail}")
        return Run(seconds, done.returncode, output)


def pulumi_env(backend: Path, vault: raw.Vault) -> dict[str, str]:
    """The CLI's environment: a private file:// backend, a passphrase, the Vault connection.

    PULUMI_BACKEND_URL instead of `pulumi login`, so the user's own login is left alone; the
    caller's VAULT_* and Pulumi credentials are dropped so only the dev server is ever touched.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("VAULT_") and k not in DROPPED_PULUMI_ENV
    }
    env.update(
        PULUMI_BACKEND_URL=backend.as_uri(),
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        PULUMI_SKIP_UPDATE_CHECK="true",
        VAULT_ADDR=vault.address,
        VAULT_TOKEN=vault.token,
    )
    return env


def init_stack(project: PulumiProject, jwks_url: str, vault: raw.Vault) -> None:
    """Create the bench stack with its own server and token (as every stack but dev must
    carry) and point the program at the dev issuer's JWKS."""
    project.run("stack", "init", STACK, "--non-interactive")
    stack_file = project.work_dir / f"Pulumi.{STACK}.yaml"
    existing = stack_file.read_text() if stack_file.exists() else ""
    stack_file.write_text(
        f"config:\n  {PROJECT}:jwksUrl: {jwks_url}\n  vault:address: {vault.address}\n{existing}"
    )
    project.run("config", "set", "--secret", "vault:token", vault.token, "--stack", STACK)


def time_pulumi(project: PulumiProject, runs: int) -> dict[str, list[float]]:
    """N cycles of first up, no-op up, preview, destroy; destroy resets state for the next."""
    samples: dict[str, list[float]] = {
        label: [] for label in (FIRST_UP, NOOP_UP, NOOP_PREVIEW, DESTROY_ALL)
    }
    steps = ((FIRST_UP, UP), (NOOP_UP, UP), (NOOP_PREVIEW, PREVIEW), (DESTROY_ALL, DESTROY))
    for number in range(1, runs + 1):
        for label, args in steps:
            seconds = project.run(*args).seconds
            samples[label].append(seconds)
            log(f"run {number}/{runs}: {label}: {seconds:.2f} s")
    return samples


def time_raw(vault: raw.Vault, jwks_url: str, runs: int) -> dict[str, list[float]]:
    """N cycles of the raw create and delete, one warm-up first (connection, JWKS fetch)."""
    raw.create(vault, jwks_url)
    raw.delete(vault)
    samples: dict[str, list[float]] = {RAW_CREATE: [], RAW_DELETE: []}
    for _ in range(runs):
        for label, action in (
            (RAW_CREATE, lambda: raw.create(vault, jwks_url)),
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
    """Request counts per command, in the order they ran."""

    by_label: dict[str, Counted] = field(default_factory=dict)


def _engine_verdict(run: Run) -> str:
    """What `--expect-no-changes` said: a no-op must plan nothing."""
    if run.returncode == 0:
        return "none"
    if "no changes were expected" in run.output:
        return "CHANGES"
    tail = "\n".join(run.output.splitlines()[-30:])
    raise RuntimeError(f"pulumi failed ({run.returncode}):\n{tail}")


def count_requests(
    project: PulumiProject, vault: raw.Vault, jwks_url: str, log_path: Path
) -> AuditReport:
    """Enable the audit device, then count what each command sends, one run each."""
    openbao.enable_file_audit(vault.address, vault.token, log_path, name="bench")
    report = AuditReport()

    def counted(label: str, action: Callable[[], str | None]) -> None:
        mark = audit.line_count(log_path)
        engine = action() or ""
        report.by_label[label] = Counted(audit.requests_since(log_path, mark), engine)
        log(f"audit: {label}: {report.by_label[label].requests.total} requests")

    def pulumi(*args: str) -> Callable[[], str | None]:
        """A change-making command must succeed; a no-op one reports the engine's verdict."""
        if "--expect-no-changes" in args:
            return lambda: _engine_verdict(project.run(*args, check=False))
        return lambda: project.run(*args) and None

    counted(RAW_CREATE, lambda: raw.create(vault, jwks_url))
    counted(RAW_DELETE, lambda: raw.delete(vault))
    counted(FIRST_UP, pulumi(*UP))
    counted(NOOP_UP, pulumi(*UP, *NO_CHANGES))
    counted(NOOP_PREVIEW, pulumi(*PREVIEW, *NO_CHANGES))
    counted(REFRESH_UP, pulumi(*UP, "--refresh", *NO_CHANGES))
    counted(DESTROY_ALL, pulumi(*DESTROY))
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
                "provider's child token (auth/token/create), not a managed object"
            )
    if ok:
        lines.append("no-op commands: 0 writes to managed Vault objects, no planned changes")
    return lines, ok


def environment_lines(pulumi_version: str, openbao_version: str, runs: int) -> list[str]:
    """What the numbers were measured with, so a pasted note stays interpretable."""
    return [
        f"nomad-vault-setup bench, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, runs={runs}",
        f"pulumi CLI {pulumi_version}, pulumi SDK {version('pulumi')}, "
        f"pulumi-vault {version('pulumi-vault')}, Python {platform.python_version()}",
        f"OpenBao {openbao_version} dev server (in-memory) on loopback, file:// backend, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "up/destroy run with --skip-preview (an interactive `pulumi up` ~ preview + up)",
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
        help="timed runs per measurement (default 5, or $BENCH_RUNS)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def bench(work: Path, runs: int) -> int:
    """Everything between starting and stopping the servers; returns the exit status."""
    pulumi_version = subprocess.run(
        ["pulumi", "version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    log("starting OpenBao dev server and dev issuer")
    dev = openbao.start(work / "openbao", extra_config=openbao.AUDIT_API_CONFIG)
    issuer = IssuerServer(Issuer()).start()
    try:
        vault = raw.Vault(dev.address, dev.token)
        project = PulumiProject(copy_project(work / "project"), pulumi_env(work / "state", vault))
        (work / "state").mkdir()
        init_stack(project, issuer.jwks_url, vault)
        log("warm-up: one untimed preview and raw create/delete")
        project.run(*PREVIEW)
        raw_samples = time_raw(vault, issuer.jwks_url, runs)
        samples = {**time_pulumi(project, runs), **raw_samples}
        log("counting Vault requests via the audit log")
        report = count_requests(project, vault, issuer.jwks_url, work / "audit.log")
        checks, ok = idempotency_lines(report)
        lines = [
            *environment_lines(pulumi_version, openbao_version(vault), runs),
            "",
            *timing_table(samples),
            ratio_line(samples),
            "",
            *audit_table(report),
            "",
            *checks,
        ]
        print("\n".join(lines))
        if not ok:
            log("WARNING: a no-op command changed Vault; the program is not idempotent")
        return 0 if ok else 1
    finally:
        issuer.stop()
        stop(dev.pid)
        log(f"stopped OpenBao (pid {dev.pid}) and the issuer")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_pulumi()
    with tempfile.TemporaryDirectory(prefix="nomad-vault-bench-") as work:
        return bench(Path(work), args.runs)


if __name__ == "__main__":
    sys.exit(main())
