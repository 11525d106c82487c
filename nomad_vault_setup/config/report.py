"""The one error a bad stack configuration raises, and how each bad key is worded in it.

Every problem found anywhere (a key's value, two clusters clashing, the provider's settings)
becomes one line naming the key as the stack file spells it (`nomad-vault-setup:roles[0].name`,
`vault:address`) and what it accepts; all lines go into one `ConfigError`.
"""

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import pulumi

PROJECT = "nomad-vault-setup"

# Pydantic's wording for a value of the wrong type, in the words of the stack file.
_TYPE_ERRORS = {
    "string_type": "must be a string",
    "int_type": "must be a whole number",
    "bool_type": "must be true or false",
    "tuple_type": "must be a list",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "int_from_float": "must be a whole number",
}


class ConfigError(pulumi.RunError, ValueError):
    """The stack configuration is invalid; the message lists every bad key.

    A `RunError`, so the engine prints just the message (no Python traceback) and stops.
    """


@dataclass(frozen=True)
class Naming:
    """How the user wrote the settings, so every message names a key as they spell it.

    The stack program's keys are config keys (`nomad-vault-setup:roles[0].boundClaims`); a
    NomadVaultSetup built by another program takes them as inputs, named as its language
    spells them (`authPath` from YAML, TypeScript or Go; `auth_path` from Python).
    """

    prefix: str
    what: str  # what holds the settings, in the error's first line
    snake_case: bool = False

    def spell(self, path: str) -> str:
        """A camelCase key path as the user wrote it."""
        return _SNAKE.sub(lambda m: "_" + m.group(0).lower(), path) if self.snake_case else path


_SNAKE = re.compile(r"(?<=[a-z0-9])[A-Z]")
STACK_CONFIG = Naming(f"{PROJECT}:", "stack configuration")
_naming: ContextVar[Naming] = ContextVar("naming", default=STACK_CONFIG)


def component_naming(name: str, snake_case: bool) -> Naming:
    """The inputs of the NomadVaultSetup resource `name`."""
    return Naming(
        f"NomadVaultSetup {name!r} input ", f"NomadVaultSetup {name!r} inputs", snake_case
    )


@contextmanager
def named_as(naming: Naming) -> Iterator[None]:
    """Within: every reported key is named the way `naming` says."""
    token = _naming.set(naming)
    try:
        yield
    finally:
        _naming.reset(token)


def naming() -> Naming:
    """How keys are named here (the stack's config keys, unless a component's inputs)."""
    return _naming.get()


def raise_if_any(problems: Iterable[str]) -> None:
    """One ConfigError listing every problem, if there is any."""
    problems = list(problems)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(
            f"invalid {naming().what}, nothing was changed; fix these settings:\n{lines}"
        )


def setting(key: str, scope: str = "") -> str:
    """A key of ours as the user wrote it; `scope` is e.g. "clusters[1]"."""
    current = naming()
    return current.prefix + current.spell(f"{scope + '.' if scope else ''}{key}")


def key_name(location: tuple[Any, ...]) -> str:
    """("roles", 0, "boundClaims") -> "roles[0].boundClaims"."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def describe(error: Mapping[str, Any], scope: str, known: list[str]) -> str:
    """One line for one pydantic error; `known` lists the keys allowed where it occurred."""
    shown = setting(key_name(error["loc"]), scope)
    if error["type"] == "extra_forbidden":
        known = [naming().spell(key) for key in known]
        return f"{shown}: unknown setting; known settings are {', '.join(known)}"
    message = _TYPE_ERRORS.get(error["type"], error["msg"].removeprefix("Value error, "))
    return worded(shown, error["input"], message)


def worded(shown: str, value: Any, message: str) -> str:
    """`key = 'value': message`, the value left out when it is long or not plain."""
    if isinstance(value, str | int | float) and len(str(value)) <= 80:
        return f"{shown} = {value!r}: {message}"
    return f"{shown}: {message}"
