"""Run a dev tool's command line (`python -m devtools.<tool> ...`) as make and people do."""

import subprocess
import sys
from pathlib import Path

from devtools.project_copy import PROJECT_DIR


def run_devtool(
    tool: str, *args: str, cwd: Path = PROJECT_DIR, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The finished command, with its output; the caller asserts on the exit code."""
    return subprocess.run(
        [sys.executable, "-m", f"devtools.{tool}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
