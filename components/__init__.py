"""nomad-vault-setup: Vault/OpenBao JWT auth for Nomad workload identities, as Pulumi resources.

The public surface: load and validate the stack's settings, build the component(s).
"""

from .settings import ConfigError, Settings, StackSettings, load_settings, parse_settings
from .stack import deploy
from .vault_setup import NomadVaultSetup

__all__ = [
    "ConfigError",
    "NomadVaultSetup",
    "Settings",
    "StackSettings",
    "deploy",
    "load_settings",
    "parse_settings",
]
