"""Keep every environment's Vault token on its own server.

The pulumi-vault provider takes `vault:address` / `vault:token` from the stack's config and
falls back to VAULT_ADDR / VAULT_TOKEN (and to ~/.vault-token). A stack whose config names its
server but not its token would send whatever token the shell holds, perhaps another
environment's, to that server; a stack token without the stack's address would go wherever
VAULT_ADDR points; an empty stack token counts as none, so the shell's is sent instead; and a
token written in plain text sits unencrypted in a stack file that gets committed.

So a stack carries both an address and a secret, non-empty token. Only the dev stack (the
embedded local server of `make up`) may carry neither and run on its shell's VAULT_ADDR /
VAULT_TOKEN pair: any other stack running on the shell's pair would apply its state to
whichever server the shell happens to point at.

Only `up` and `preview` run the program, and so this check. `pulumi refresh` and
`pulumi destroy` configure the provider from what the last `up` stored (measured with CLI
3.274.1: a token changed in the stack file since is not used), so they inherit a checked
configuration; after changing a stack's address or token, run `up` or `preview` first.
"""

from collections.abc import Collection, Mapping

# The stacks that may run on the shell's VAULT_ADDR / VAULT_TOKEN.
AMBIENT_STACKS = frozenset({"dev"})
SET_TOKEN = "`pulumi config set --secret vault:token <token>`"


def token_binding_problem(
    stack: str, address: str | None, token: str | None, token_is_secret: bool
) -> str | None:
    """Why this stack's config could send a Vault token to the wrong server, if it could.

    `token` is the stack's own `vault:token` value (None when the stack has none).
    """
    if token is not None and not token.strip():
        return (
            "vault:token: set but empty, so the provider would fall back to whatever "
            f"VAULT_TOKEN the shell holds; set the stack's token with {SET_TOKEN}"
        )
    if token and not token_is_secret:
        return (
            "vault:token: stored in plain text in the stack file; remove it "
            f"(`pulumi config rm vault:token`) and set it again as a secret with {SET_TOKEN}"
        )
    if address and not token:
        return (
            f"vault:address: this stack talks to {address} but has no vault:token of its "
            "own, so the provider would send whatever VAULT_TOKEN the shell holds; set the "
            f"stack's token with {SET_TOKEN}"
        )
    if token and not address:
        return (
            "vault:token: this stack has its own token but no vault:address, so the token "
            "would go to whatever VAULT_ADDR says; set `pulumi config set vault:address ...`"
        )
    if not address and not token and stack not in AMBIENT_STACKS:
        return (
            f"vault:address: stack {stack!r} has neither vault:address nor vault:token, so it "
            "would run against whatever server VAULT_ADDR names with whatever VAULT_TOKEN the "
            f"shell holds; only the {'/'.join(sorted(AMBIENT_STACKS))} stack may. Set "
            f"`pulumi config set vault:address <url>` and {SET_TOKEN}"
        )
    return None


# Shell variables the provider honours that change where a stack's token goes, or how safely:
# variable -> the stack setting that would say so instead.
SHELL_OVERRIDES = {
    "VAULT_NAMESPACE": "vault:namespace",
    "VAULT_SKIP_VERIFY": "vault:skipTlsVerify",
}
_FALSE = ("", "0", "false", "False", "FALSE")


def shell_override_problems(
    stack: str, stack_keys: Collection[str], environment: Mapping[str, str]
) -> list[str]:
    """Shell variables that would change a stack's connection behind its config's back.

    The provider honours VAULT_NAMESPACE (objects land in the shell's namespace) and
    VAULT_SKIP_VERIFY (the token goes over unverified TLS) when the stack does not set them.
    Only the dev stack runs on its shell's Vault settings.
    """
    if stack in AMBIENT_STACKS:
        return []
    return [
        f"{variable}: set in the shell, and stack {stack!r} has no {setting} of its own, so the"
        f" provider would use the shell's; unset {variable}, or set {setting} in the stack"
        for variable, setting in SHELL_OVERRIDES.items()
        if environment.get(variable, "") not in _FALSE and setting not in stack_keys
    ]
