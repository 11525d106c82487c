"""nomad-vault-setup: prepare Vault/OpenBao for Nomad workload identities.

Settings are read and validated first, so a bad stack config fails before any resource is
registered; then the component is built and its outputs exported.
"""

import pulumi

from components import NomadVaultSetup, load_settings

settings = load_settings()
setup = NomadVaultSetup("nomad", settings)
for output_name, value in setup.outputs().items():
    pulumi.export(output_name, value)
