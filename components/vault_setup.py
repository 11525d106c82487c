"""The Vault side of Nomad workload identity for one Nomad cluster, as one ComponentResource.

What `nomad setup vault` writes with one-off API calls, declared so the engine plans, applies,
repairs and removes it: an optional namespace, a JWT auth mount trusting Nomad's JWKS, the
templated policy that confines each job to its own secrets, the role that ties them, and the
extra roles some jobs need.
"""

import pulumi
import pulumi_vault as vault

from .durations import format_duration
from .nomad_config import render_client_config, render_server_config
from .ownership import marked, namespace_metadata, stack_owner
from .policy import render_workload_policy
from .settings import PROJECT, ExtraRole, Settings

COMPONENT_TYPE = f"{PROJECT}:index:NomadVaultSetup"

# Nomad signs with RS256 since 1.7 and EdDSA for older root keys; nothing else is accepted.
JWT_SUPPORTED_ALGS = ["EdDSA", "RS256"]

# The claims copied onto the entity alias: the policy templates read namespace and job ID
# from there, and the task helps audit logs.
CLAIM_MAPPINGS = {claim: claim for claim in ("nomad_job_id", "nomad_namespace", "nomad_task")}

# Which claim names the Vault entity. `unique-id` gives every job (region, namespace, ID) an
# entity of its own; `job-id` is `nomad setup vault`'s choice, where jobs with the same ID in
# two Nomad namespaces share one entity and the last login's metadata wins for both.
USER_CLAIMS = {"unique-id": "/extra_claims/unique_id", "job-id": "/nomad_job_id"}

# What a Nomad server configured with our server block adds to every identity (Nomad >= 1.8.3).
UNIQUE_ID_CLAIM = {"unique_id": "${job.region}:${job.namespace}:${job.id}"}


def namespace_resource(
    name: str, path: str, protect: bool, opts: pulumi.ResourceOptions | None = None
) -> vault.Namespace:
    """A namespace tagged as ours, replaced delete-first (a namespace is addressed by path).

    Deleting a namespace deletes everything in it, so `protect` guards it like the mount, and
    an existing namespace that is not tagged as ours is refused before (preflight.py).
    """
    return vault.Namespace(
        name,
        path=path,
        custom_metadata=namespace_metadata(stack_owner()),
        opts=pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(delete_before_replace=True, protect=protect)
        ),
    )


class NomadVaultSetup(pulumi.ComponentResource):
    """Namespace?, KV mount?, JWT auth backend, workload policy and roles for one cluster.

    `namespace` is a Namespace created by the caller when several clusters share it; without
    it, the component creates the one its settings name.
    """

    auth_path: pulumi.Output[str]
    auth_accessor: pulumi.Output[str]
    role_name: pulumi.Output[str]
    policy_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    policy: pulumi.Output[str]
    kv_mount: pulumi.Output[str]
    vault_policies: pulumi.Output[list[str]]
    nomad_server_config: pulumi.Output[str]
    nomad_client_config: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        settings: Settings,
        namespace: vault.Namespace | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        self.settings = settings
        # Vault writes overwrite: a replacement created before the old object is deleted would
        # be written to the same path and then deleted with it.
        self._at_same_path = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        # Replacing or deleting these breaks every running job (a new mount has a new accessor;
        # a deleted KV mount takes its secrets): with `protect`, Pulumi refuses to.
        protected = pulumi.ResourceOptions.merge(
            self._at_same_path, pulumi.ResourceOptions(protect=settings.protect)
        )

        self.namespace_resource = namespace
        if settings.namespace and namespace is None:
            self.namespace_resource = namespace_resource(
                f"{name}-namespace",
                settings.namespace,
                settings.protect,
                pulumi.ResourceOptions(parent=self),
            )
        # From the resource's output, so everything inside waits for the namespace on create
        # and is deleted before it.
        self._inside = self.namespace_resource.path if self.namespace_resource else None

        self.kv_mount_resource = (
            vault.Mount(
                f"{name}-kv",
                path=settings.kv_mount,
                type="kv",
                options={"version": "2"},
                description=f"Nomad workload secrets (managed by {PROJECT})",
                namespace=self._inside,
                opts=protected,
            )
            if settings.manage_kv_mount
            else None
        )

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
            namespace=self._inside,
            opts=protected,
        )

        self.policy_resources: list[vault.Policy] = []
        policy_text = self.auth_backend.accessor.apply(
            lambda accessor: render_workload_policy(accessor, settings.kv_mount)
        )
        self.policy_resource = self._policy(f"{name}-policy", settings.policy_name, policy_text)
        self.role = self._role(f"{name}-role", settings.role_name, [self.policy_resource.name])
        self.extra_roles = [self._extra_role(f"{name}-role-{r.name}", r) for r in settings.roles]

        self.auth_path = self.auth_backend.path
        self.auth_accessor = self.auth_backend.accessor
        self.role_name = self.role.role_name
        self.policy_name = self.policy_resource.name
        self.namespace = self._inside if self._inside is not None else pulumi.Output.from_input("")
        self.policy = self.policy_resource.policy
        self.kv_mount = pulumi.Output.from_input(settings.kv_mount)
        # Every policy this cluster manages: the next run reads it back to tell drift in its
        # own policies (repair) from someone else's policy (leave alone); see preflight.py.
        self.vault_policies = pulumi.Output.all(*(p.name for p in self.policy_resources))
        self.nomad_server_config = pulumi.Output.from_input(
            render_server_config(
                settings.audiences,
                format_duration(settings.identity_ttl),
                UNIQUE_ID_CLAIM if settings.identity_claim == "unique-id" else None,
            )
        )
        self.nomad_client_config = self.auth_backend.path.apply(
            lambda path: render_client_config(
                settings.nomad_vault_address, path, settings.client_namespace
            )
        )
        self.register_outputs(self.outputs())

    def _policy(self, resource_name: str, name: str, text: pulumi.Input[str]) -> vault.Policy:
        """A policy whose first line says which stack owns it (see ownership.py)."""
        owner = stack_owner()
        policy = vault.Policy(
            resource_name,
            name=name,
            policy=pulumi.Output.from_input(text).apply(lambda plain: marked(plain, owner)),
            namespace=self._inside,
            opts=self._at_same_path,
        )
        self.policy_resources.append(policy)
        return policy

    def _role(
        self,
        resource_name: str,
        role_name: str,
        policies: list[pulumi.Input[str]],
        token_period: int | None = None,
        bound_claims: dict[str, str] | None = None,
    ) -> vault.jwt.AuthBackendRole:
        """A JWT role on this cluster's mount; every role names entities the same way."""
        return vault.jwt.AuthBackendRole(
            resource_name,
            backend=self.auth_backend.path,
            role_name=role_name,
            role_type="jwt",  # the server defaults to oidc
            bound_audiences=list(self.settings.audiences),
            bound_claims=bound_claims,
            # Glob only treats `*` specially: exact values still match exactly.
            bound_claims_type="glob" if bound_claims else None,
            user_claim=USER_CLAIMS[self.settings.identity_claim],
            user_claim_json_pointer=True,
            claim_mappings=CLAIM_MAPPINGS,
            # Service tokens, so Nomad can renew them for as long as the task runs; a periodic
            # token with no explicit max TTL never hits a hard expiry mid-task.
            token_type="service",
            token_period=token_period or self.settings.token_period,
            token_explicit_max_ttl=0,
            # Taken from the Policy resources' outputs, so the role waits for its policies.
            token_policies=policies,
            namespace=self._inside,
            opts=self._at_same_path,
        )

    def _extra_role(self, resource_name: str, role: ExtraRole) -> vault.jwt.AuthBackendRole:
        """A role for jobs that need more: the workload policy plus the role's own policies."""
        policies: list[pulumi.Input[str]] = [self.policy_resource.name, *role.policies]
        if role.policy:
            inline_name = self.settings.inline_policy_name(role)
            policies.append(self._policy(f"{resource_name}-policy", inline_name, role.policy).name)
        return self._role(
            resource_name,
            role.name,
            policies,
            token_period=role.token_period,
            bound_claims={claim: ",".join(values) for claim, values in role.bound_claims.items()},
        )

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
            "vault_policies": self.vault_policies,
        }
