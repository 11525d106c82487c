"""The one error a bad stack configuration raises, and how each bad key is worded in it.

Every problem found anywhere (a key's value, two clusters clashing, the provider's settings)
becomes one line naming the key as the stack file spells it (`nomad-vault-setup:roles[0].name`,
`vault:address`) and what it accepts; all lines go into one `ConfigError`.
"""

from collections.abc import Iterable, Mapping
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


def raise_if_any(problems: Iterable[str]) -> None:
    """One ConfigError listing every problem, if there is any."""
    problems = list(problems)
    if problems:
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise ConfigError(
            f"invalid stack configuration, nothing was changed; fix these settings:\n{lines}"
        )


def setting(key: str, scope: str = "") -> str:
    """A key of ours as the stack file names it; `scope` is e.g. "clusters[1]"."""
    return f"{PROJECT}:{scope + '.' if scope else ''}{key}"


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
        return f"{shown}: unknown setting; known settings are {', '.join(known)}"
    message = _TYPE_ERRORS.get(error["type"], error["msg"].removeprefix("Value error, "))
    return worded(shown, error["input"], message)


def worded(shown: str, value: Any, message: str) -> str:
    """`key = 'value': message`, the value left out when it is long or not plain."""
    if isinstance(value, str | int | float) and len(str(value)) <= 80:
        return f"{shown} = {value!r}: {message}"
    return f"{shown}: {message}"
