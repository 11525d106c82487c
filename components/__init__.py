"""nomad-vault-setup: Vault/OpenBao JWT auth for Nomad workload identities, as Pulumi resources.

The public surface: load and validate the stack's settings, build the component.
"""

from .settings import ConfigError, Settings, load_settings, parse_settings
from .vault_setup import NomadVaultSetup

__all__ = ["ConfigError", "NomadVaultSetup", "Settings", "load_settings", "parse_settings"]
