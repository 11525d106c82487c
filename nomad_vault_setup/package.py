"""The component package: NomadVaultSetup served to Pulumi programs in any language.

`provider/` (PulumiPlugin.yaml and its `__main__.py`) runs `serve()`. Pulumi's component
provider host infers the schema from the component's type hints (inputs.py, and its annotated
outputs); this adds one thing to it: a refusal (bad inputs, or the live server's checks) reaches
the program as the one message that names every problem, where the host would print a Python
traceback of the component's code.
"""

import json
import sys
from typing import Any

import pulumi
from pulumi.errors import InputPropertiesError
from pulumi.provider import main
from pulumi.provider.experimental.component import ComponentProvider
from pulumi.provider.server import ComponentInitError

from . import standalone
from .vault_setup import NomadVaultSetup
from .version import __version__

PACKAGE = "nomad-vault-setup"


class NomadVaultSetupProvider(ComponentProvider):
    """The host's provider, reporting the component's refusals as refusals."""

    def construct(
        self,
        name: str,
        resource_type: str,
        inputs: pulumi.Inputs,
        options: pulumi.ResourceOptions | None = None,
    ):
        try:
            return super().construct(name, resource_type, inputs, options)
        except ComponentInitError as failed:
            if isinstance(failed.inner, pulumi.RunError):
                # ConfigError or PreflightError: the engine prints this kind's message as it
                # is (an empty list of details: the message names every bad input itself).
                raise InputPropertiesError(str(failed.inner), []) from None
            raise


def provider() -> NomadVaultSetupProvider:
    """The package's provider; its `schema` is what `pulumi package get-schema` prints."""
    return NomadVaultSetupProvider([NomadVaultSetup], PACKAGE, version=__version__)


def schema() -> dict[str, Any]:
    """The package schema Pulumi infers, as JSON."""
    return json.loads(provider().schema or "{}")


def serve(args: list[str] | None = None) -> None:
    """Run the package's provider (the engine starts it with its own arguments)."""
    standalone.SCHEMA_NAMES = True
    main(provider(), sys.argv[1:] if args is None else args)
