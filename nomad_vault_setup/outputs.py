"""The stack outputs: their names and what each holds, defined once.

The program exports exactly these (a unit test checks it), and the README's outputs table is
generated from them. With `clusters`, every output but `vault_server` is a map keyed by
cluster name.
"""

OUTPUTS: dict[str, str] = {
    "nomad_server_config": (
        "HCL `vault { enabled, default_identity { aud, ttl, extra_claims? } }` for every Nomad"
        " server (`extra_claims.unique_id` under `identityClaim: unique-id`)"
    ),
    "nomad_client_config": (
        "HCL `vault { enabled, address, namespace?, jwt_auth_backend_path }` for every Nomad client"
    ),
    "auth_path": "the JWT auth mount's path",
    "auth_accessor": "the JWT auth mount's accessor (the workload policy is templated on it)",
    "role_name": "the default role Nomad workloads log in with",
    "policy_name": "the templated workload policy",
    "namespace": (
        "the namespace the cluster's objects live in, relative to the provider's; empty for none"
    ),
    "policy": "the rendered workload policy text",
    "kv_mount": "the KV v2 mount the policy grants on (where jobs' secrets go)",
    "vault_policies": (
        "every policy the stack manages (workload and inline role policies); the next run reads"
        " it back to tell drift in its own policies from someone else's"
    ),
    "jwks_keys": (
        "the signing keys (PEM) the JWKS held at this update, with keySource: static-keys (empty"
        " otherwise); the next update keeps trusting any of them that left the JWKS, once"
    ),
    "vault_server": (
        "the Vault cluster (`cluster_id`) and provider namespace the stack was applied to; one"
        " value for the whole stack"
    ),
    "single_form_mount": (
        "the auth mount (namespace, path) of the stack's single-cluster form, carried forward in"
        " the `clusters` form so the entry holding it keeps the objects it had; one value for the"
        " whole stack"
    ),
}
# The outputs that describe the whole stack, never keyed by cluster.
STACK_WIDE = frozenset({"vault_server", "single_form_mount"})
