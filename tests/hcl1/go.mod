// The tests' truth parser for Nomad agent config: see main.go.
module nomad-vault-setup/tests/hcl1

go 1.19

// Nomad's go.mod replaces github.com/hashicorp/hcl with this fork tag (v1.0.1-nomad-1).
require github.com/hashicorp/hcl v1.0.1-nomad-1
