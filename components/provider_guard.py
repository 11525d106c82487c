"""Keep every environment's Vault token on its own server.

The pulumi-vault provider takes `vault:address` / `vault:token` from the stack's config and
falls back to VAULT_ADDR / VAULT_TOKEN (and to ~/.vault-token). A stack whose config names its
server but not its token would send whatever token the shell holds, perhaps another
environment's, to that server; a stack token without the stack's address would go wherever
VAULT_ADDR points. Only a stack that carries both, or neither (the dev stack, run entirely from
its shell's VAULT_ADDR / VAULT_TOKEN pair), is safe.

Config is read afresh by every command, `pulumi refresh` and `pulumi destroy` included, so a
stack that carries both is safe in every command, even though only `up` and `preview` run the
program (and so this check).
"""


def token_binding_problem(stack_address: str | None, stack_has_token: bool) -> str | None:
    """Why this stack's config could send a Vault token to the wrong server, if it could."""
    if stack_address and not stack_has_token:
        return (
            f"vault:address: this stack talks to {stack_address} but has no vault:token of its "
            "own, so the provider would send whatever VAULT_TOKEN the shell holds; set the "
            "stack's token with `pulumi config set --secret vault:token ...`"
        )
    if stack_has_token and not stack_address:
        return (
            "vault:token: this stack has its own token but no vault:address, so the token "
            "would go to whatever VAULT_ADDR says; set `pulumi config set vault:address ...`"
        )
    return None
