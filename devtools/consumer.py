"""Another team's Pulumi program using NomadVaultSetup: a copy of an example, run for real.

`examples/yaml` reaches the component through its package (`pulumi package add` of a copy
of this repository's package files, as a user would from a path or a git URL);
`examples/python` imports it as a pip-installed library. The e2e tier and the benchmark run
them through the CLI, on a throw-away `file://` backend, with the Vault provider's settings in
the stack's config as any program would carry them.
"""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import yaml
from pulumi import automation as auto

from devtools import workspace
from devtools.project_copy import PROJECT_DIR

EXAMPLES = PROJECT_DIR / "examples"
PACKAGE_DIR = PROJECT_DIR / "provider"
STACK = "consumer"
PASSPHRASE = "consumer-only"


def package_copy(root: Path) -> Path:
    """The repository's package files (provider/, nomad_vault_setup/, requirements.txt) copied
    to `root/package`, with a virtualenv of their own beside provider/ (its PulumiPlugin.yaml
    says `../venv`) that sees this interpreter's packages through a .pth file.

    Pulumi prepares a package's virtualenv on every `package add` (it upgrades pip there): on
    the project's own venv that would race the tests using it. The copy's venv is created in
    seconds and installs nothing: the requirements are satisfied already. Returns provider/.
    """
    package = root / "package"
    shutil.copytree(PACKAGE_DIR, package / "provider", ignore=shutil.ignore_patterns("venv"))
    shutil.copytree(
        PROJECT_DIR / "nomad_vault_setup",
        package / "nomad_vault_setup",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy2(PROJECT_DIR / "requirements.txt", package / "requirements.txt")
    venv = package / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "interpreter-packages.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")
    return package / "provider"


def yaml_program(root: Path, vault: workspace.VaultServer) -> auto.Stack:
    """examples/yaml copied to `root/yaml`, the package added from this repository's path
    (the copy's `packages` entry, relative to the example's place, is dropped first)."""
    work_dir = _copy(EXAMPLES / "yaml", root / "yaml")
    project_file = work_dir / "Pulumi.yaml"
    project = yaml.safe_load(project_file.read_text())
    project.pop("packages")
    project_file.write_text(yaml.safe_dump(project, sort_keys=False))
    stack = _stack(root, work_dir, vault)
    cli(stack, "package", "add", str(package_copy(root)))
    return stack


def cli(stack: auto.Stack, *args: str) -> str:
    """`pulumi <args>` in the stack's project and environment, for the commands that take no
    stack; what it printed on stdout."""
    used = stack.workspace
    return used.pulumi_command.run(list(args), used.work_dir, used.env_vars).stdout


def python_program(root: Path, vault: workspace.VaultServer) -> auto.Stack:
    """examples/python copied to `root/python`, with nomad-vault-setup pip-installed (from this
    repository, as from a git URL) into a directory its interpreter imports from."""
    work_dir = _copy(EXAMPLES / "python", root / "python")
    site = root / "site-packages"
    pip_install_package(site)
    (work_dir / "venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    stack = _stack(root, work_dir, vault, {"PYTHONPATH": str(site)})
    return stack


def pip_install_package(target: Path) -> str:
    """`pip install --target <target>` of the package as pip builds it from this repository
    (from a copy of the files it is built from, so no build leftovers land in the work tree;
    no dependencies: the interpreter has them); pip's output."""
    source = target.parent / "package-source"
    shutil.copytree(
        PROJECT_DIR / "nomad_vault_setup",
        source / "nomad_vault_setup",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_DIR / name, source / name)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    done = subprocess.run(
        [*pip, "--target", str(target), str(source)], capture_output=True, text=True, check=True
    )
    return done.stdout + done.stderr


def configure(stack: auto.Stack, **values: Any) -> None:
    """Set the program's own config (its keys are the example's, not ours)."""
    stack.set_all_config({key: auto.ConfigValue(str(value)) for key, value in values.items()})


def _copy(source: Path, dest: Path) -> Path:
    shutil.copytree(
        source, dest, ignore=shutil.ignore_patterns("__pycache__", "sdks", "Pulumi.*.yaml", "venv")
    )
    return dest


def _stack(
    root: Path,
    work_dir: Path,
    vault: workspace.VaultServer,
    extra_env: dict[str, str] | None = None,
) -> auto.Stack:
    state_dir = root / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    env = workspace.pulumi_env(state_dir=state_dir, passphrase=PASSPHRASE, skip_checkpoints=True)
    stack = workspace.open_stack(STACK, work_dir, {**env, **(extra_env or {})}, create=True)
    stack.set_all_config(
        {
            "vault:address": auto.ConfigValue(vault.address),
            "vault:token": auto.ConfigValue(vault.token, secret=True),
        }
    )
    return stack
