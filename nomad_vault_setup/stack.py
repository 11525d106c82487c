"""A whole stack, one path for one Nomad cluster or many: namespaces, clusters, outputs.

Each namespace is created once, at stack level, as `namespace-<path>`: clusters share it, and
adding or removing a cluster never moves (so never replaces) one that others live in. Each
cluster is a `NomadVaultSetup` component, `nomad` for a stack without `clusters` and
`nomad-<name>` with them, and its agent config is delivered by an `AgentConfig` component of
the same name beneath it.

Where earlier layouts registered a resource elsewhere, a Pulumi alias maps the old name, so an
upgraded stack, or a single-cluster stack written as an entry of `clusters`, changes
nothing in Vault (the accessor of a re-created mount would change, and break every job):
- the namespace of a single-cluster stack was `nomad-namespace`, a child of the component;
- delivered files were children of the cluster component, not of an AgentConfig;
- the `clusters` entry with the auth mount a single-cluster stack recorded takes over the
  single-cluster names (`nomad`, `nomad-auth`, ...), which match no state once it has.
"""

from dataclasses import replace
from typing import Any

import pulumi
import pulumi_vault as vault

from .adoption import Adoption
from .config import Cluster, StackSettings
from .config.report import raise_if_any
from .mount_repair import complete_configs
from .preflight import check_live_server, recorded_clusters, recorded_value, refuse
from .resource_types import CLUSTER_COMPONENT, FormerNames
from .signing_keys import JwksUnavailable, SigningKeys, fetch_jwks, public_keys, signing_keys
from .vault_setup import ClusterPlan, Imports, NomadVaultSetup, owned_namespace

# The component name of a stack without `clusters`.
SINGLE = "nomad"


def component_name(cluster: Cluster) -> str:
    return f"{SINGLE}-{cluster.name}" if cluster.name else SINGLE


def deploy(stack: StackSettings) -> dict[str, Any]:
    """Check the live server, register every resource; return the stack outputs by name."""
    live = check_live_server(stack, stack.provider)
    single_mount = single_form_mount(stack, live.previous)
    heir = single_form_heir(stack, single_mount)
    raise_if_any(renamed_mount_problems(stack, live.previous, heir))
    keys = static_signing_keys(stack, live.trusted)
    completed = complete_configs(live.unconfigured, stack.provider, keys)
    key = stack.agents_private_key
    private_key = pulumi.Output.secret(key.get_secret_value()) if key else None
    adoption = replace(live.adoption, imports={**live.adoption.imports, **completed})
    namespaces = {} if adoption.namespaces_deferred else _namespaces(stack, heir, adoption)
    per_cluster: dict[str, dict[str, pulumi.Output]] = {}
    for cluster in stack.clusters:
        namespace = namespaces.get(cluster.settings.namespace)
        per_cluster[cluster.name] = _cluster(
            stack,
            cluster,
            # Without its Namespace resource (adoption's first step): the path itself.
            namespace.path if namespace else cluster.settings.namespace or None,
            private_key,
            adoption.of(cluster),
            takes_over_single=cluster is heir,
            signing_keys=keys.get(cluster.name),
        )
    outputs: dict[str, Any] = {}
    if not stack.multi_cluster:
        outputs = dict(per_cluster[""])
    else:
        for name, values in per_cluster.items():
            for output, value in values.items():
                outputs.setdefault(output, {})[name] = value
    # Where the objects live: the next run trusts these outputs only on this same server.
    outputs["vault_server"] = live.record
    outputs["single_form_mount"] = single_mount
    return outputs


def static_signing_keys(stack: StackSettings, trusted: dict[str, Any]) -> dict[str, SigningKeys]:
    """The keys each `keySource: static-keys` cluster's mount trusts, read from its JWKS here
    (signing_keys.py), beside the keys its last update recorded (`trusted`: the last outputs,
    when made on this server). A JWKS that cannot be read stops the run before anything is
    written; a key that came or went since the last update is said, so a scheduled
    `pulumi preview` shows it."""
    keys, problems = {}, []
    for cluster in stack.clusters:
        settings = cluster.settings
        if settings.key_source != "static-keys":
            continue
        try:
            fetched, skipped = public_keys(fetch_jwks(settings.jwks_url, settings.jwks_ca_pem))
        except JwksUnavailable as error:
            problems.append(f"{cluster.setting('jwksUrl')}: keySource is static-keys: {error}")
            continue
        if not fetched:
            problems.append(
                f"{cluster.setting('jwksUrl')}: keySource is static-keys, but the JWKS holds no"
                f" RSA or Ed25519 signing key ({'; '.join(skipped) or 'no keys'})"
            )
            continue
        if skipped:
            pulumi.log.warn(
                f"{cluster.setting('jwksUrl')}: not trusted, from the JWKS: {'; '.join(skipped)}"
            )
        recorded = recorded_value(trusted, "jwks_keys", cluster.name)
        found = signing_keys(fetched, recorded if isinstance(recorded, list) else None)
        keys[cluster.name] = found
        if found.added:
            pulumi.log.warn(
                f"{cluster.setting('jwksUrl')}: the JWKS has {len(found.added)} key(s) more than"
                " at the last `up` (prepublished by Nomad?): Vault trusts them from this `up` on"
            )
        if found.retired:
            pulumi.log.warn(
                f"{cluster.setting('jwksUrl')}: {len(found.retired)} key(s) left the JWKS since"
                " the last `up`: still trusted by this `up`, dropped by the next one"
            )
    if problems:
        refuse(problems)
    return keys


Mount = dict[str, str]


def _mount(namespace: Any, auth_path: Any) -> Mount | None:
    if isinstance(auth_path, str) and isinstance(namespace, str | None):
        return {"namespace": namespace or "", "auth_path": auth_path}
    return None


def single_form_mount(stack: StackSettings, previous: dict[str, Any]) -> Mount | None:
    """The auth mount of the stack's single-cluster form, if it ever had one.

    Recorded by every run (the `single_form_mount` output) and carried forward in the
    `clusters` form, so the entry holding that mount keeps the single form's resource names
    even when a run was interrupted or targeted half-way through the move. A stack of the
    previous release recorded it as its plain `auth_path` and `namespace` outputs.
    """
    if not stack.multi_cluster:
        settings = stack.clusters[0].settings
        return _mount(settings.namespace, settings.auth_path)
    recorded = previous.get("single_form_mount")
    if isinstance(recorded, dict):
        return _mount(recorded.get("namespace"), recorded.get("auth_path"))
    return _mount(
        recorded_value(previous, "namespace", ""), recorded_value(previous, "auth_path", "")
    )


def single_form_heir(stack: StackSettings, mount: Mount | None) -> Cluster | None:
    """The `clusters` entry that takes over a single-cluster stack's resources, if any.

    The one holding the single form's auth mount (namespace and path): its objects are the
    same Vault objects. Chosen by what it is, not by position, so a new cluster listed first
    can never inherit (and so move) the mount that running jobs log in at.
    """
    if not stack.multi_cluster or mount is None:
        return None
    for cluster in stack.clusters:
        if _mount(cluster.settings.namespace, cluster.settings.auth_path) == mount:
            return cluster
    return None


def renamed_mount_problems(
    stack: StackSettings, previous: dict[str, Any], heir: Cluster | None
) -> list[str]:
    """A cluster whose auth mount the last update recorded under another cluster name.

    Its resources would be new ones at the same Vault paths: the `up` would fail on the mount
    in use after writing some of them, and undoing it would delete policies. An entry's name
    is its identity: renaming one, or leaving the `clusters` form, is refused before anything
    is written.
    """
    recorded = {
        name: _mount(
            recorded_value(previous, "namespace", name), recorded_value(previous, "auth_path", name)
        )
        for name in recorded_clusters(previous)
    }
    problems = []
    for cluster in stack.clusters:
        mount = _mount(cluster.settings.namespace, cluster.settings.auth_path)
        for name, was in recorded.items():
            if was != mount or name == cluster.name or cluster is heir:
                continue
            before = f"cluster {name!r}" if name else "the single-cluster form"
            now = f"cluster {cluster.name!r}" if cluster.name else "the single-cluster form"
            problems.append(
                f"{cluster.setting('authPath')}: the auth mount {mount['auth_path']!r} (namespace"
                f" {mount['namespace'] or 'none'!r}) belongs to {before} in this stack, not to"
                f" {now}: renaming a `clusters` entry, or going back to the single-cluster form,"
                " would re-create its objects while jobs use them. Keep the name"
                f" {name!r}" + (" (a one-entry `clusters` list stays as it is)" if name else "")
            )
    return problems


def _single_urn() -> pulumi.Output[str]:
    """The URN of the single-cluster form's component, where earlier layouts put children."""
    return pulumi.create_urn(SINGLE, CLUSTER_COMPONENT)


def _namespaces(
    stack: StackSettings, heir: Cluster | None, adoption: Adoption
) -> dict[str, vault.Namespace]:
    """One Namespace per path the clusters name, tagged as this stack's (ownership.py), or
    adopted from `nomad setup vault` (adoption.py)."""
    namespaces: dict[str, vault.Namespace] = {}
    # Earlier layouts made a single-cluster stack's namespace as its component's child: the
    # single cluster's, or its heir's in the `clusters` form.
    single = heir or (None if stack.multi_cluster else stack.clusters[0])
    first = single.settings.namespace if single else None
    for path in dict.fromkeys(c.settings.namespace for c in stack.clusters):
        if not path:
            continue
        protect = any(c.settings.protect for c in stack.clusters if c.settings.namespace == path)
        former = [pulumi.Alias(name=f"{SINGLE}-namespace", parent=_single_urn())]
        namespaces[path] = owned_namespace(
            f"namespace-{path}",
            path,
            stack.provider.owner,
            protect,
            pulumi.ResourceOptions(
                aliases=former if path == first else [],
                import_=adoption.namespace_id(path),
            ),
        )
    return namespaces


def _cluster(
    stack: StackSettings,
    cluster: Cluster,
    namespace: pulumi.Input[str] | None,
    private_key: pulumi.Output[str] | None,
    imports: Imports,
    takes_over_single: bool,
    signing_keys: SigningKeys | None,
) -> dict[str, pulumi.Output]:
    """One cluster's component and its delivery; its outputs by name."""
    name = component_name(cluster)
    plan = ClusterPlan(
        settings=cluster.settings,
        owner=stack.provider.owner,
        nomad_vault_address=stack.nomad_vault_address(cluster),
        client_namespace=stack.client_namespace(cluster),
        # From the resource's output, so everything inside waits for the namespace on create
        # and is deleted before it.
        namespace=namespace,
        imports=imports,
        former_names=_former_single_names(name) if takes_over_single else lambda _child: [],
        signing_keys=signing_keys,
    )
    former = [pulumi.Alias(name=SINGLE)] if takes_over_single else []
    component = NomadVaultSetup(name, {}, pulumi.ResourceOptions(aliases=former), plan=plan)
    settings = cluster.settings
    if settings.nomad_config_dir or settings.nomad_agents:
        # Only a stack that delivers files loads pulumi-command.
        from .agent_config import AgentConfig, AgentConfigArgs

        AgentConfig(
            name,
            AgentConfigArgs(
                settings,
                component.nomad_server_config,
                component.nomad_client_config,
                private_key,
            ),
            _former_file_names(name, component, takes_over_single),
            pulumi.ResourceOptions(parent=component),
        )
    return component.outputs()


def _former_single_names(name: str) -> FormerNames:
    """The single-cluster form's name of each of the heir's children (`nomad-auth`, ...)."""

    def aliases(child: str) -> list[pulumi.Alias]:
        return [pulumi.Alias(name=SINGLE + child.removeprefix(name), parent=_single_urn())]

    return aliases


def _former_file_names(
    name: str, component: NomadVaultSetup, takes_over_single: bool
) -> FormerNames:
    """Delivered files were children of the cluster component itself (and, for the heir of a
    single-cluster stack, of the single-cluster form's component, under its name)."""

    single = _former_single_names(name)

    def aliases(child: str) -> list[pulumi.Alias]:
        return [pulumi.Alias(parent=component), *(single(child) if takes_over_single else [])]

    return aliases
