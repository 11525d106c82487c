"""Whether the stack's token may do this run's work, asked before anything is written.

A token that expired, was revoked or lacks one capability would otherwise fail half-way
through an `up`, after writing some objects and not others. The server is asked directly
(vault_http.py), the way the provider uses the token: its lookup without the provider's
namespace, the capabilities in the token's own namespace for every path this stack touches
(capabilities.py), the stack's paths under the provider's namespace relative to the token's.
"""

from dataclasses import replace

import pulumi

from .capabilities import (
    for_preview,
    missing_capabilities,
    missing_problems,
    required_capabilities,
)
from .config import ProviderContext, StackSettings
from .vault_http import Refused, VaultUnreachable, capabilities, token_namespace


def token_problems(stack: StackSettings, provider: ProviderContext) -> list[str]:
    """Whether the server accepts the stack's token, and lets it do what this run needs on
    every path (capabilities.py): asked before anything is written, so a token that expired,
    was revoked or lacks one capability changes nothing. A token the program cannot see (the
    provider's token helper, say) is left to the provider to report."""
    if not provider.token:
        return []
    setting, address = provider.token_setting, provider.address
    try:
        token_home = token_namespace(provider.session)
    except VaultUnreachable as error:
        return [f"{provider.address_setting}: cannot reach {address}: {error}"]
    except Refused as error:
        if error.status in (400, 403):
            return [
                f"{setting}: the Vault server at {address} refuses this token ({error}): it has"
                " expired, been revoked, or belongs to another server; issue a new one"
            ]
        return [f"{provider.address_setting}: {address} answered the token's lookup with {error}"]
    # The provider uses the token in its own namespace, then works in the provider's.
    own = provider.namespace.strip("/")
    if token_home and own != token_home and not own.startswith(f"{token_home}/"):
        pulumi.log.warn(
            f"the token lives in namespace {token_home!r}, outside the provider's ({own!r}):"
            " what it may do is left to the provider to report"
        )
        return []
    prefix = own[len(token_home) :] if token_home else own
    required = required_capabilities(stack, provider.child_token, prefix)
    if pulumi.runtime.is_dry_run():
        required = for_preview(required)
    try:
        asked = replace(provider.session, namespace=token_home)
        granted = capabilities(asked, sorted(required))
    except (VaultUnreachable, ValueError) as error:
        pulumi.log.warn(
            f"cannot ask what the token may do (sys/capabilities-self: {error}); a missing"
            " capability will be reported by the provider, maybe after some writes. Grant"
            " `update` on sys/capabilities-self (deployer-policy.hcl)"
        )
        return []
    return missing_problems(setting, missing_capabilities(required, granted))
