"""nomad-vault-setup: prepare Vault/OpenBao for Nomad workload identities.

Settings are read and validated first, so a bad stack config fails before any resource is
registered; then one component per Nomad cluster is built and the outputs exported.
"""

import pulumi

from nomad_vault_setup import deploy, load_stack

for output_name, value in deploy(load_stack()).items():
    pulumi.export(output_name, value)
