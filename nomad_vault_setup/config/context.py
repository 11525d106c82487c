"""What the engine and the Vault provider say, beside the user's keys: a typed context.

Provider facts never travel as user keys: the stack's identity (who owns what it writes), the
provider's address, namespace and TLS settings (how the server is reached, and the defaults
of what Nomad is told).
"""

from dataclasses import dataclass, field

from ..vault_http import Session, Tls


@dataclass(frozen=True)
class ProviderContext:
    """Who runs (organization/project/stack) and how the provider reaches Vault."""

    organization: str
    project: str
    stack: str
    address: str = ""
    address_setting: str = "vault:address"  # where the address came from, for reports
    namespace: str = ""  # the provider's own namespace, as a path without end slashes
    ca_cert_file: str | None = None
    ca_cert_dir: str | None = None
    skip_tls_verify: bool = False
    # The provider's TERRAFORM_VAULT_NAMESPACE_IMPORT ("" unset): see adoption.py.
    namespace_import: str = ""
    # The stack's token (vault:token, else VAULT_TOKEN) for vault_http's questions, and
    # where it came from; whether the provider logs in with a child token of it.
    token: str = field(default="", repr=False)
    token_setting: str = "vault:token"
    child_token: bool = True
    # The NomadVaultSetup resource, when another program builds one: its own owner, so two of
    # them in one stack never take each other's objects for their own.
    component: str = ""

    @property
    def session(self) -> Session:
        """How vault_http asks the stack's server, with the stack's token."""
        tls = Tls(self.ca_cert_file, self.ca_cert_dir, self.skip_tls_verify)
        return Session(self.address, self.token, self.namespace, tls)

    @property
    def tls(self) -> Tls:
        return self.session.tls

    @property
    def owner(self) -> str:
        """The stack, fully qualified (and the component another program built): what
        ownership markers name."""
        stack = f"{self.organization}/{self.project}/{self.stack}"
        return f"{stack}/{self.component}" if self.component else stack


# The context of a program run outside any engine (tests of the pure settings).
NO_PROVIDER = ProviderContext("organization", "nomad-vault-setup", "dev")
