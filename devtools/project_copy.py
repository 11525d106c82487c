"""A throw-away copy of the Pulumi program, for the e2e tier and the benchmark.

They run the real CLI on the program with stacks and state of their own; a copy keeps those
stack files out of the working tree. The copy's `venv` links to the interpreter running them,
which holds the pinned requirements, so the engine starts the program without installing.
"""

import shutil
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
PROGRAM_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "nomad_vault_setup")


def copy_project(dest: Path) -> Path:
    """The program's files (no tests, no stack files) in `dest`, with the venv linked."""
    dest.mkdir(parents=True)
    for name in PROGRAM_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    (dest / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return dest
