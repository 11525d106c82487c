"""Timing harness for nomad-vault-setup: the Pulumi CLI against a throwaway OpenBao dev server.

Not a test: it measures and reports, and fails only when the program turns out not to be
idempotent (a no-op run that writes to Vault). Run it with `make bench`.
"""
