"""The Vault side of Nomad workload identity for one Nomad cluster, as one ComponentResource.

What `nomad setup vault` writes with one-off API calls, declared so the engine plans, applies,
repairs and removes it: a JWT auth mount trusting Nomad's JWKS, the templated policy that
confines each job to its own secrets, the role that ties them, the extra roles some jobs need,
and optionally the KV mount. The namespace they live in is made at stack level (stack.py), so
clusters can share it; the component takes its path.
"""

from dataclasses import dataclass, replace

import pulumi
import pulumi_vault as vault

from .config import ClusterSettings, ExtraRole
from .durations import format_duration
from .inputs import NomadVaultSetupArgs
from .nomad_config import render_client_config, render_server_config
from .outputs import OUTPUTS, STACK_WIDE
from .ownership import KV_MOUNT_DESCRIPTION, marked, mount_description, namespace_metadata
from .policy import render_workload_policy
from .resource_types import CLUSTER_COMPONENT, FormerNames
from .signing_keys import SigningKeys

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


@dataclass(frozen=True)
class Imports:
    """Pulumi import ids of the existing objects this run adopts (adoption.py); None: the
    object is registered as usual."""

    auth: str | None = None
    policy: str | None = None
    role: str | None = None


NOTHING_IMPORTED = Imports()


@dataclass(frozen=True)
class ClusterPlan:
    """What one cluster's component builds, once the settings and the live server are checked.

    `owner` is who the ownership marks name (ownership.py); `nomad_vault_address` and
    `client_namespace` are what Nomad agents are told (the provider's facts already applied);
    `namespace` is the path output of the Namespace the objects live in (None: the provider's
    own namespace), so they wait for it and go before it; `imports` names the existing objects
    this run adopts instead of creating them; `former_names(child)` gives a child's aliases
    where an earlier layout named it; `signing_keys`, the keys a static-keys mount trusts.
    """

    settings: ClusterSettings
    owner: str
    nomad_vault_address: str
    client_namespace: str = ""
    namespace: pulumi.Input[str] | None = None
    imports: Imports = NOTHING_IMPORTED
    former_names: FormerNames = lambda _name: []
    # With keySource: static-keys, the keys the mount trusts (signing_keys.py); None: the
    # mount fetches jwksUrl itself.
    signing_keys: SigningKeys | None = None


def owned_namespace(
    resource_name: str,
    path: str,
    owner: str,
    protect: bool,
    opts: pulumi.ResourceOptions | None = None,
) -> vault.Namespace:
    """A namespace tagged as `owner`'s (ownership.py). Deleting a namespace deletes everything
    in it: `protect` guards it like the mount; it is addressed by path, so it is replaced
    delete-first."""
    return vault.Namespace(
        resource_name,
        path=path,
        custom_metadata=namespace_metadata(owner),
        opts=pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(delete_before_replace=True, protect=protect), opts
        ),
    )


class NomadVaultSetup(pulumi.ComponentResource):
    """One Nomad cluster's Vault side: JWT auth mount, workload policy, roles, Nomad config."""

    nomad_server_config: pulumi.Output[str]
    (
        "HCL `vault { enabled, default_identity { aud, ttl, extra_claims? } }` for every Nomad "
        "server (`extra_claims.unique_id` under `identityClaim: unique-id`)"
    )
    nomad_client_config: pulumi.Output[str]
    """HCL `vault { enabled, address, namespace?, jwt_auth_backend_path }` for every Nomad client"""
    auth_path: pulumi.Output[str]
    """the JWT auth mount's path"""
    auth_accessor: pulumi.Output[str]
    """the JWT auth mount's accessor (the workload policy is templated on it)"""
    role_name: pulumi.Output[str]
    """the default role Nomad workloads log in with"""
    policy_name: pulumi.Output[str]
    """the templated workload policy"""
    namespace: pulumi.Output[str]
    """the namespace the cluster's objects live in, relative to the provider's; empty for none"""
    policy: pulumi.Output[str]
    """the rendered workload policy text"""
    kv_mount: pulumi.Output[str]
    """the KV v2 mount the policy grants on (where jobs' secrets go)"""
    vault_policies: pulumi.Output[list[str]]
    (
        "every policy the stack manages (workload and inline role policies); the next run reads "
        "it back to tell drift in its own policies from someone else's"
    )

    jwks_keys: pulumi.Output[list[str]]
    (
        "the signing keys (PEM) the JWKS held at this update, with keySource: static-keys (empty "
        "otherwise); the next update keeps trusting any of them that left the JWKS, once"
    )

    def __init__(
        self,
        name: str,
        args: NomadVaultSetupArgs,
        opts: pulumi.ResourceOptions | None = None,
        *,
        plan: ClusterPlan | None = None,
    ) -> None:
        """Built from `args` in any program (standalone.py validates them and checks the live
        server first); the stack program passes the `plan` it made for the cluster instead."""
        namespace_path = ""
        if plan is None:
            from .standalone import standalone_plan

            standalone = standalone_plan(name, args, opts)
            plan = standalone.plan
            namespace_path = plan.settings.namespace if standalone.creates_namespace else ""
        super().__init__(CLUSTER_COMPONENT, name, None, opts)
        if namespace_path:
            created = owned_namespace(
                f"{name}-namespace",
                namespace_path,
                plan.owner,
                plan.settings.protect,
                pulumi.ResourceOptions(parent=self),
            )
            plan = replace(plan, namespace=created.path)
        settings = plan.settings
        self._settings = settings
        self._plan = plan
        self._inside = plan.namespace
        imports = plan.imports
        keys = plan.signing_keys

        self.managed_kv_mount = (
            vault.Mount(
                f"{name}-kv",
                path=settings.kv_mount,
                type="kv",
                options={"version": "2"},
                description=KV_MOUNT_DESCRIPTION,
                namespace=self._inside,
                opts=self._opts(f"{name}-kv", protect=settings.protect),
            )
            if settings.manage_kv_mount
            else None
        )

        self.auth_backend = vault.jwt.AuthBackend(
            f"{name}-auth",
            path=settings.auth_path,
            type="jwt",
            description=mount_description(plan.owner),
            # Vault fetches Nomad's keys itself, or is handed the keys the program fetched.
            jwks_url=None if keys else settings.jwks_url,
            jwks_ca_pem=None if keys else settings.jwks_ca_pem or None,
            jwt_validation_pubkeys=list(keys.trusted) if keys else None,
            jwt_supported_algs=JWT_SUPPORTED_ALGS,
            # A job whose vault block names no role logs in with this one.
            default_role=settings.role_name,
            namespace=self._inside,
            # Vault sets a mount's description only when it is enabled: the provider's later
            # writes of it change nothing, so a difference (an adopted mount's) is not a change.
            opts=pulumi.ResourceOptions.merge(
                self._opts(f"{name}-auth", protect=settings.protect, import_id=imports.auth),
                pulumi.ResourceOptions(ignore_changes=["description"]),
            ),
        )

        self.policies: list[vault.Policy] = []
        workload_text = self.auth_backend.accessor.apply(
            lambda accessor: render_workload_policy(accessor, settings.kv_mount)
        )
        self.workload_policy = self._policy(
            f"{name}-policy", settings.policy_name, workload_text, imports.policy
        )
        self.default_role = self._role(
            f"{name}-role", settings.role_name, [self.workload_policy.name], import_id=imports.role
        )
        self.extra_roles = [self._extra_role(f"{name}-role-{r.name}", r) for r in settings.roles]

        self.auth_path = self.auth_backend.path
        self.auth_accessor = self.auth_backend.accessor
        self.role_name = self.default_role.role_name
        self.policy_name = self.workload_policy.name
        self.namespace = pulumi.Output.from_input(
            plan.namespace if plan.namespace is not None else ""
        )
        self.policy = self.workload_policy.policy
        self.kv_mount = pulumi.Output.from_input(settings.kv_mount)
        self.jwks_keys = pulumi.Output.from_input(list(keys.fetched) if keys else [])
        # Every policy this cluster manages: the next run reads it back to tell drift in its
        # own policies (repair) from someone else's policy (leave alone); see preflight.py.
        self.vault_policies = pulumi.Output.all(*(policy.name for policy in self.policies))
        self.nomad_server_config = pulumi.Output.from_input(
            render_server_config(
                settings.audiences,
                format_duration(settings.identity_ttl),
                UNIQUE_ID_CLAIM if settings.identity_claim == "unique-id" else None,
            )
        )
        self.nomad_client_config = self.auth_backend.path.apply(
            lambda path: render_client_config(plan.nomad_vault_address, path, plan.client_namespace)
        )
        self.register_outputs(self.outputs())

    def _opts(
        self, resource_name: str, protect: bool = False, import_id: str | None = None
    ) -> pulumi.ResourceOptions:
        """Options of every child: this component's, replaced delete-first (Vault writes
        overwrite: a replacement created before the old object is deleted would be written to
        the same path and then deleted with it), `protect` where replacing or deleting breaks
        every running job (a new mount has a new accessor; a deleted KV mount takes its
        secrets), and explicit aliases where an earlier layout named the child otherwise (the
        engine's aliases inherited from the component's do not follow a child whose move an
        interrupted run left half done). `import_id` adopts the existing object by that id."""
        return pulumi.ResourceOptions(
            parent=self,
            delete_before_replace=True,
            protect=protect,
            aliases=self._plan.former_names(resource_name),
            import_=import_id,
        )

    def _policy(
        self,
        resource_name: str,
        name: str,
        text: pulumi.Input[str],
        import_id: str | None = None,
    ) -> vault.Policy:
        """A policy whose first line says which stack owns it (see ownership.py)."""
        owner = self._plan.owner
        policy = vault.Policy(
            resource_name,
            name=name,
            policy=pulumi.Output.from_input(text).apply(lambda plain: marked(plain, owner)),
            namespace=self._inside,
            opts=self._opts(resource_name, import_id=import_id),
        )
        self.policies.append(policy)
        return policy

    def _role(
        self,
        resource_name: str,
        role_name: str,
        policies: list[pulumi.Input[str]],
        token_period: int | None = None,
        bound_claims: dict[str, str] | None = None,
        import_id: str | None = None,
    ) -> vault.jwt.AuthBackendRole:
        """A JWT role on this cluster's mount; every role names entities the same way."""
        settings = self._settings
        return vault.jwt.AuthBackendRole(
            resource_name,
            backend=self.auth_backend.path,
            role_name=role_name,
            role_type="jwt",  # the server defaults to oidc
            bound_audiences=list(settings.audiences),
            bound_claims=bound_claims,
            # Glob only treats `*` specially: exact values still match exactly.
            bound_claims_type="glob" if bound_claims else None,
            user_claim=USER_CLAIMS[settings.identity_claim],
            user_claim_json_pointer=True,
            claim_mappings=CLAIM_MAPPINGS,
            # Service tokens, so Nomad can renew them for as long as the task runs; a periodic
            # token with no explicit max TTL never hits a hard expiry mid-task.
            token_type="service",
            token_period=token_period or settings.token_period,
            token_explicit_max_ttl=0,
            # Taken from the Policy resources' outputs, so the role waits for its policies.
            token_policies=policies,
            namespace=self._inside,
            opts=self._opts(resource_name, import_id=import_id),
        )

    def _extra_role(self, resource_name: str, role: ExtraRole) -> vault.jwt.AuthBackendRole:
        """A role for jobs that need more: the workload policy plus the role's own policies."""
        policies: list[pulumi.Input[str]] = [self.workload_policy.name, *role.policies]
        if role.policy:
            inline_name = self._settings.inline_policy_name(role)
            policies.append(self._policy(f"{resource_name}-policy", inline_name, role.policy).name)
        return self._role(
            resource_name,
            role.name,
            policies,
            token_period=role.token_period,
            bound_claims={claim: ",".join(values) for claim, values in role.bound_claims.items()},
        )

    def outputs(self) -> dict[str, pulumi.Output]:
        """The cluster's stack outputs, by their exported names (nomad_vault_setup/outputs.py)."""
        values = {
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
            "jwks_keys": self.jwks_keys,
        }
        assert set(values) == set(OUTPUTS) - STACK_WIDE, "outputs.py lists them all"
        return values
