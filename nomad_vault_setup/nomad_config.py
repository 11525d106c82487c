"""The Nomad agent `vault {}` blocks, as HCL text a user pastes into the agent config.

The server block tells Nomad which identity to sign for Vault (audience and TTL must match
what the role accepts); the client block tells Nomad where Vault is and which JWT mount to
log in at. Both are rendered from the same settings the Vault objects are built from.

Nomad reads its agent config with HCL1 (Go's github.com/hashicorp/hcl v1), not HCL2. In an
HCL1 string `${...}` and `%{...}` are kept literally (there is no `$${` escape), `\\uXXXX`
cannot spell a non-BMP character (a surrogate pair decodes to two U+FFFD) and a raw newline
ends the file's parse. So string literals are written for HCL1 exactly: every character raw
(UTF-8), only `"` and `\\` escaped; a value that cannot be written that way is refused
(`hcl1_problem`). tests/hcl1/ holds the Go parser the tests check this against.
"""

import re
import unicodedata
from collections.abc import Mapping, Sequence

# `${name}` with no brace, quote or backslash inside: HCL1 copies it through unchanged.
_TEMPLATE = re.compile(r"\$\{[^{}\"\\]*\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _problem(value: str, templates: bool) -> str | None:
    for char in value:
        if 0xD800 <= ord(char) <= 0xDFFF:
            return (
                f"must not contain surrogate code points (found U+{ord(char):04X}):"
                " they are not text and cannot be written as UTF-8"
            )
        if unicodedata.category(char) == "Cc":
            return (
                f"must not contain control characters (newline, tab, ...; found U+{ord(char):04X}):"
                " Nomad's HCL1 config cannot hold them"
            )
    if "${" in (_TEMPLATE.sub("", value) if templates else value):
        return "must not contain '${': Nomad's HCL1 config reads it as an interpolation"
    return None


def hcl1_problem(value: str) -> str | None:
    """None if `value` can be written as an HCL1 string that Nomad decodes to exactly `value`;
    else why not, worded to follow the setting's name ("audience 'x': must not contain ...").

    Refused, as checked against Go's HCL1 parser (tests/hcl1):
    - control characters (Unicode Cc: U+0000-U+001F, U+007F-U+009F): a raw newline or NUL
      ends the parse; the others survive only when written raw, invisible in the pasted
      text and at the mercy of editors and line-ending conversion, and an escape would be
      HCL1-only syntax. No audience, address or namespace contains one legitimately.
    - surrogate code points (U+D800-U+DFFF): not text; Python lets a str hold them, UTF-8
      cannot, and `\\uD83D\\uDE00` decodes to two U+FFFD.
    - `${`: the scanner treats `${ ... }` as an interpolation, inside which quotes do not end
      the string and escapes are not decoded (so `${"}` cannot be written), and an
      unterminated `${` fails to parse.
    Everything else (`%{`, `$`, `{}`, quotes, backslashes, U+2028, non-BMP characters, leading
    or trailing spaces) is written raw or as `\\"` / `\\\\` and decodes exactly.
    """
    return _problem(value, templates=False)


def _literal(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def hcl_string(value: str) -> str:
    """A quoted HCL1 string literal that Nomad decodes to exactly `value`.

    Raises ValueError for a value `hcl1_problem` refuses; settings are validated before this.
    """
    problem = hcl1_problem(value)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return _literal(value)


def hcl_template(value: str) -> str:
    """A quoted HCL1 string literal for a Nomad template such as "${job.id}": HCL1 keeps each
    `${...}` literally (no escape needed or possible), so Nomad fills it in when it signs."""
    problem = _problem(value, templates=True)
    if problem:
        raise ValueError(f"{value!r}: {problem}")
    return _literal(value)


def hcl_list(values: Sequence[str]) -> str:
    """A one-line HCL list of string literals."""
    return "[" + ", ".join(hcl_string(value) for value in values) + "]"


def render_server_config(
    audiences: Sequence[str], identity_ttl: str, extra_claims: Mapping[str, str] | None = None
) -> str:
    """The Nomad server `vault` block: the default workload identity Vault accepts.

    `extra_claims` values are Nomad templates such as "${job.id}": Nomad fills them in when it
    signs each identity, so they are written as they are, not escaped.
    """
    lines = [
        "vault {",
        "  enabled = true",
        "",
        "  default_identity {",
        f"    aud = {hcl_list(audiences)}",
        f"    ttl = {hcl_string(identity_ttl)}",
    ]
    if extra_claims:
        lines += ["", "    extra_claims {"]
        for name, value in extra_claims.items():
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"{name!r}: an extra claim's name must be an HCL identifier")
            lines.append(f"      {name} = {hcl_template(value)}")
        lines.append("    }")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def render_client_config(address: str, auth_path: str, namespace: str = "") -> str:
    """The Nomad client `vault` block; `namespace` is written only when there is one."""
    lines = [
        "vault {",
        "  enabled               = true",
        f"  address               = {hcl_string(address)}",
    ]
    if namespace:
        lines.append(f"  namespace             = {hcl_string(namespace)}")
    lines.append(f"  jwt_auth_backend_path = {hcl_string(auth_path)}")
    lines.append("}")
    return "\n".join(lines) + "\n"
