"""nomad-vault-setup: Vault/OpenBao JWT auth for Nomad workload identities, as Pulumi resources.

The public surface: the component NomadVaultSetup and its inputs (for any Pulumi program), and
the stack program: load and validate the stack's settings, build the component(s). The
delivery component (`nomad_vault_setup.agent_config.AgentConfig`) is imported where it is used: only
a stack that delivers files loads pulumi-command.
"""

from .config import ClusterSettings, ConfigError, StackSettings, load_stack, parse_settings
from .inputs import ExtraRoleArgs, NomadVaultSetupArgs
from .stack import deploy
from .vault_setup import NomadVaultSetup
from .version import __version__

__all__ = [
    "ClusterSettings",
    "ConfigError",
    "ExtraRoleArgs",
    "NomadVaultSetup",
    "NomadVaultSetupArgs",
    "StackSettings",
    "__version__",
    "deploy",
    "load_stack",
    "parse_settings",
]
