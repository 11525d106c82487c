"""Stack config -> frozen, validated settings, before any resource exists.

schema.py (what each key accepts), derive.py (each cluster's settings), report.py (the one
error naming every bad key), engine.py (the only code reading the engine), context.py (the
provider's facts, typed).
"""

from .context import NO_PROVIDER, ProviderContext
from .derive import (
    CLUSTER_KEY,
    PRIVATE_KEY,
    RISKS_KEY,
    Cluster,
    StackSettings,
    cluster_keys,
    config_keys,
    parse_settings,
)
from .engine import load_stack
from .report import PROJECT, ConfigError
from .schema import ClusterSettings, ExtraRole, NomadAgent

__all__ = [
    "CLUSTER_KEY",
    "NO_PROVIDER",
    "PRIVATE_KEY",
    "PROJECT",
    "RISKS_KEY",
    "Cluster",
    "ClusterSettings",
    "ConfigError",
    "ExtraRole",
    "NomadAgent",
    "ProviderContext",
    "StackSettings",
    "cluster_keys",
    "config_keys",
    "load_stack",
    "parse_settings",
]
