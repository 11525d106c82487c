"""A team's Vault program: its own KV mount, and Nomad jobs reading their secrets from it."""

import pulumi
import pulumi_vault as vault

from nomad_vault_setup import NomadVaultSetup

config = pulumi.Config()

# What the program already had: the KV v2 mount the team's applications keep secrets in.
apps = vault.Mount(
    "apps",
    path="apps",
    type="kv",
    options={"version": "2"},
    description="Application secrets",
)

# Added: Nomad jobs log in with their workload identities and read their own secrets in it,
# at apps/data/<nomad namespace>/<job id>/*.
nomad = NomadVaultSetup(
    "nomad",
    {
        "jwks_url": config.require("jwksUrl"),
        "kv_mount": "apps",
        "token_period": "1h",
    },
    # The policy names the mount: it exists first, and goes last.
    pulumi.ResourceOptions(depends_on=[apps]),
)

pulumi.export("nomad_server_config", nomad.nomad_server_config)
pulumi.export("nomad_client_config", nomad.nomad_client_config)
pulumi.export("auth_path", nomad.auth_path)
pulumi.export("role_name", nomad.role_name)
pulumi.export("kv_mount", nomad.kv_mount)
