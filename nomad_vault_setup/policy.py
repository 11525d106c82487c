"""The templated ACL policy that lets a Nomad job read only its own secrets.

Same four paths as `nomad setup vault`. The namespace and job ID come from the metadata of
the entity alias that the JWT login created (the role's claim_mappings put them there), and
that alias is addressed by the auth mount's accessor. The accessor changes whenever the mount
is re-enabled, so the text is always rendered from the live accessor, never written by hand.
"""


def alias_metadata(accessor: str, claim: str) -> str:
    """The identity template for one claim mapped onto the alias of the JWT mount."""
    return f"{{{{identity.entity.aliases.{accessor}.metadata.{claim}}}}}"


def render_workload_policy(accessor: str, kv_mount: str) -> str:
    """ACL text: read on the job's own KV v2 secrets, list on the metadata to find them.

    `kv_mount` is a mount path without leading or trailing slashes.
    """
    namespace = alias_metadata(accessor, "nomad_namespace")
    job = alias_metadata(accessor, "nomad_job_id")
    rules = [
        (f"{kv_mount}/data/{namespace}/{job}/*", "read"),
        (f"{kv_mount}/data/{namespace}/{job}", "read"),
        (f"{kv_mount}/metadata/{namespace}/*", "list"),
        (f"{kv_mount}/metadata/*", "list"),
    ]
    return "\n".join(
        f'path "{path}" {{\n  capabilities = ["{capability}"]\n}}\n' for path, capability in rules
    )
