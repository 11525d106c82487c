# The least a token needs to run `pulumi up`, `pulumi refresh` and `pulumi destroy` of this
# program with the default names (authPath jwt-nomad, roleName/policyName nomad-workloads) at
# the root of Vault. For other names, replace them below; with `namespace` set, also grant
# `sys/namespaces` (list) and `sys/namespaces/<namespace>` (create, read, update, delete) at the
# parent (the program lists namespaces to refuse taking over one it did not create) and prefix every
# other path with `<namespace>/` (that variant is not measured by the tests). The rules for the
# root were measured against OpenBao 2.7.2 by tests/e2e/test_least_privilege.py.

# The provider looks up its own token first.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Before writing anything, the program asks what this token may do on the paths below (a
# question: it changes nothing), so a missing capability fails before the first write.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# The provider logs in with a short-lived child token of this one (its default). Drop this
# rule if the stack sets `vault:skipChildToken true`.
path "auth/token/create" {
  capabilities = ["update"]
}

# The JWT auth mount: enable, read back, tune, disable (enabling an auth method needs sudo).
path "sys/auth/jwt-nomad" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}
path "sys/mounts/auth/jwt-nomad" {
  capabilities = ["read"]
}
path "sys/mounts/auth/jwt-nomad/tune" {
  capabilities = ["read", "update"]
}
path "auth/jwt-nomad/config" {
  capabilities = ["create", "read", "update"]
}
path "auth/jwt-nomad/role/nomad-workloads" {
  capabilities = ["create", "read", "update", "delete"]
}

# The templated workload policy.
path "sys/policies/acl/nomad-workloads" {
  capabilities = ["create", "read", "update", "delete"]
}
