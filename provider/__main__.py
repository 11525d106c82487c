"""The component package's entry point: serves NomadVaultSetup to programs in any language
(nomad_vault_setup/package.py). Pulumi runs it when a program using the package runs."""

import sys
from pathlib import Path

# The package is this repository: its root holds nomad_vault_setup.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nomad_vault_setup.package import serve

if __name__ == "__main__":
    serve()
