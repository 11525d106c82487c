"""nomad-vault-setup: Vault/OpenBao JWT auth for Nomad workload identities, as Pulumi resources.

The public surface: load and validate the stack's settings, build the component(s). The
delivery component (`nomad_vault_setup.agent_config.AgentConfig`) is imported where it is used: only
a stack that delivers files loads pulumi-command.
"""

from .config import ClusterSettings, ConfigError, StackSettings, load_stack, parse_settings
from .stack import deploy
from .vault_setup import NomadVaultSetup, NomadVaultSetupArgs

__all__ = [
    "ClusterSettings",
    "ConfigError",
    "NomadVaultSetup",
    "NomadVaultSetupArgs",
    "StackSettings",
    "deploy",
    "load_stack",
    "parse_settings",
]
