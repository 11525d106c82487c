"""The Vault side of Nomad workload identity, as one ComponentResource.

What `nomad setup vault` writes with one-off API calls, declared so the engine plans, applies,
repairs and removes it: an optional namespace, a JWT auth mount trusting Nomad's JWKS, the
templated policy that confines each job to its own secrets, and the role that ties them.
"""

import pulumi
import pulumi_vault as vault

from .durations import format_duration
from .nomad_config import render_client_config, render_server_config
from .policy import render_workload_policy
from .settings import PROJECT, Settings

COMPONENT_TYPE = f"{PROJECT}:index:NomadVaultSetup"

# Nomad signs with RS256 since 1.7 and EdDSA for older root keys; nothing else is accepted.
JWT_SUPPORTED_ALGS = ["EdDSA", "RS256"]

# The claims copied onto the entity alias: the policy templates read namespace and job ID
# from there, and the task helps audit logs.
CLAIM_MAPPINGS = {claim: claim for claim in ("nomad_job_id", "nomad_namespace", "nomad_task")}


class NomadVaultSetup(pulumi.ComponentResource):
    """Namespace?, JWT auth backend, workload policy and role for one Nomad cluster."""

    auth_path: pulumi.Output[str]
    auth_accessor: pulumi.Output[str]
    role_name: pulumi.Output[str]
    policy_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    policy: pulumi.Output[str]
    kv_mount: pulumi.Output[str]
    nomad_server_config: pulumi.Output[str]
    nomad_client_config: pulumi.Output[str]

    def __init__(
        self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        # Vault writes overwrite: a replacement created before the old object is deleted would
        # be written to the same path and then deleted with it.
        at_same_path = pulumi.ResourceOptions(parent=self, delete_before_replace=True)

        self.namespace_resource = (
            vault.Namespace(
                f"{name}-namespace",
                path=settings.namespace,
                custom_metadata={"created-by": PROJECT},
                opts=at_same_path,
            )
            if settings.namespace
            else None
        )
        # From the resource's output, so everything inside waits for the namespace on create
        # and is deleted before it.
        inside = self.namespace_resource.path if self.namespace_resource else None

        self.auth_backend = vault.jwt.AuthBackend(
            f"{name}-auth",
            path=settings.auth_path,
            type="jwt",
            description=f"Nomad workload identities (managed by {PROJECT})",
            jwks_url=settings.jwks_url,
            jwks_ca_pem=settings.jwks_ca_pem or None,
            jwt_supported_algs=JWT_SUPPORTED_ALGS,
            # A job whose vault block names no role logs in with this one.
            default_role=settings.role_name,
            namespace=inside,
            opts=at_same_path,
        )

        policy_text = self.auth_backend.accessor.apply(
            lambda accessor: render_workload_policy(accessor, settings.kv_mount)
        )
        self.policy_resource = vault.Policy(
            f"{name}-policy",
            name=settings.policy_name,
            policy=policy_text,
            namespace=inside,
            opts=at_same_path,
        )

        self.role = vault.jwt.AuthBackendRole(
            f"{name}-role",
            backend=self.auth_backend.path,
            role_name=settings.role_name,
            role_type="jwt",  # the server defaults to oidc
            bound_audiences=list(settings.audiences),
            user_claim="/nomad_job_id",
            user_claim_json_pointer=True,
            claim_mappings=CLAIM_MAPPINGS,
            # Service tokens, so Nomad can renew them for as long as the task runs; a periodic
            # token with no explicit max TTL never hits a hard expiry mid-task.
            token_type="service",
            token_period=settings.token_period,
            token_explicit_max_ttl=0,
            token_policies=[self.policy_resource.name],
            namespace=inside,
            opts=at_same_path,
        )

        self.auth_path = self.auth_backend.path
        self.auth_accessor = self.auth_backend.accessor
        self.role_name = self.role.role_name
        self.policy_name = self.policy_resource.name
        self.namespace = inside if inside is not None else pulumi.Output.from_input("")
        self.policy = self.policy_resource.policy
        self.kv_mount = pulumi.Output.from_input(settings.kv_mount)
        self.nomad_server_config = pulumi.Output.from_input(
            render_server_config(settings.audiences, format_duration(settings.identity_ttl))
        )
        self.nomad_client_config = self.auth_backend.path.apply(
            lambda path: render_client_config(
                settings.nomad_vault_address, path, settings.client_namespace
            )
        )
        self.register_outputs(self.outputs())

    def outputs(self) -> dict[str, pulumi.Output[str]]:
        """The stack outputs, by their exported (snake_case) names."""
        return {
            "nomad_server_config": self.nomad_server_config,
            "nomad_client_config": self.nomad_client_config,
            "auth_path": self.auth_path,
            "auth_accessor": self.auth_accessor,
            "role_name": self.role_name,
            "policy_name": self.policy_name,
            "namespace": self.namespace,
            "policy": self.policy,
            "kv_mount": self.kv_mount,
        }
