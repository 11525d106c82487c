"""The Pulumi type tokens of what this program registers, defined once.

The program, `make promote` (which judges a preview's steps by type), the mock runner and the
tests all name resources by these.
"""

from collections.abc import Callable

import pulumi

PROJECT = "nomad-vault-setup"

# Components of this program.
CLUSTER_COMPONENT = f"{PROJECT}:index:NomadVaultSetup"
AGENT_CONFIG_COMPONENT = f"{PROJECT}:index:AgentConfig"

# pulumi-vault
NAMESPACE = "vault:index/namespace:Namespace"
AUTH_BACKEND = "vault:jwt/authBackend:AuthBackend"
ROLE = "vault:jwt/authBackendRole:AuthBackendRole"
POLICY = "vault:index/policy:Policy"
MOUNT = "vault:index/mount:Mount"

# pulumi-command: the delivered agent config files
LOCAL_FILE = "command:local:Command"
REMOTE_FILE = "command:remote:Command"

# The engine's own
STACK_REFERENCE = "pulumi:pulumi:StackReference"

# Where a child was registered before (parent, name): Pulumi aliases, so nothing is replaced
# when the layout moves it. `former_names(child_name)` gives them for one child.
FormerNames = Callable[[str], list[pulumi.Alias]]
