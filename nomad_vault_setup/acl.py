"""Vault's ACL path matching, as a pure function: which capabilities a set of policies grants
on one request path.

The access audit (audit.py) answers "who can read this path" without a Vault token, so it
evaluates policies the way Vault does (`vault/policy.go` parsePaths and `vault/acl.go`
Capabilities / CheckAllowedFromNonExactPaths, the same in OpenBao):

- a path rule ending in `*` with no `+` segment is a *prefix* rule (the `*` is dropped); a
  `*` anywhere else is a literal character;
- a rule with a `+` segment (`+`, `+/...`, `.../+`, `.../+/...`) is a *segment wildcard* rule:
  each `+` segment matches any one segment, and a trailing `*` makes the last segment a prefix;
  a `+` inside a segment (`a+b`) is literal;
- a rule containing `+*` does not parse: the whole policy is refused;
- rules for the same path in the token's policies merge (capabilities add up, `deny` wins);
- an exact rule wins; otherwise the most specific of the longest prefix rule and every
  matching segment wildcard rule (first `+`/`*` position later, not a prefix, fewer `+`
  segments, longer, then lexically greater) decides alone: capabilities of less specific
  rules are not added.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hcl.lexer import Lexer
from hcl.parser import HclParser

DENY = "deny"
NOTHING: frozenset[str] = frozenset()


class PolicyRefused(ValueError):
    """Vault refuses the policy text: a token carrying it fails every request."""


@dataclass(frozen=True)
class Rule:
    """One `path "..." { capabilities = [...] }` block, as written (after templating)."""

    path: str
    capabilities: frozenset[str]


@dataclass(frozen=True)
class _Wildcard:
    pattern: str  # without the trailing `*` of a prefix
    is_prefix: bool
    first_wildcard: int
    capabilities: frozenset[str]

    def matches(self, parts: list[str]) -> tuple[bool, int]:
        """Whether the request path (split on `/`) matches, and how many `+` segments it used."""
        own = self.pattern.split("/")
        if len(parts) < len(own) or (not self.is_prefix and len(parts) != len(own)):
            return False, 0
        wildcards = 0
        for index, segment in enumerate(own):
            last_of_prefix = self.is_prefix and index == len(own) - 1
            if segment == "+":
                wildcards += 1
            elif not (
                segment == parts[index] or (last_of_prefix and parts[index].startswith(segment))
            ):
                return False, 0
        return True, wildcards


def _merge(first: frozenset[str], second: frozenset[str]) -> frozenset[str]:
    merged = first | second
    return frozenset({DENY}) if DENY in merged else merged


class Acl:
    """The merged rules of a token's policies; `capabilities(path)` is Vault's answer to
    `sys/capabilities-self` for that path (an empty set is Vault's `deny`)."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._exact: dict[str, frozenset[str]] = {}
        self._prefix: dict[str, frozenset[str]] = {}
        wildcards: dict[str, frozenset[str]] = {}
        for rule in self.rules:
            path = rule.path.removeprefix("/")
            if "+*" in path:
                raise PolicyRefused(f"path {path!r}: invalid use of wildcards ('+*' is forbidden)")
            capabilities = frozenset({DENY}) if DENY in rule.capabilities else rule.capabilities
            if path == "+" or "/+" in path or path.startswith("+/"):
                table = wildcards
            elif path.endswith("*"):
                table, path = self._prefix, path[:-1]
            else:
                table = self._exact
            table[path] = _merge(table.get(path, NOTHING), capabilities)
        self._wildcards = [
            _Wildcard(
                pattern.removesuffix("*"),
                pattern.endswith("*"),
                pattern.index("+") if "+" in pattern else -1,
                capabilities,
            )
            for pattern, capabilities in wildcards.items()
        ]
        # Longest prefix first, so the first that matches is the radix tree's LongestPrefix.
        self._prefixes = sorted(self._prefix.items(), key=lambda item: -len(item[0]))

    def capabilities(self, path: str) -> frozenset[str]:
        """What the token may do on `path` (no leading slash); deny and no rule give {}."""
        granted = self._exact.get(path)
        if granted is None:
            granted = self._non_exact(path)
        return NOTHING if granted is None or DENY in granted else granted

    def _non_exact(self, path: str) -> frozenset[str] | None:
        candidates: list[tuple[tuple[int, bool, int, int, str], frozenset[str]]] = []
        for prefix, capabilities in self._prefixes:
            if path.startswith(prefix):
                if not self._wildcards:
                    return capabilities
                candidates.append(((len(prefix), False, 0, len(prefix), prefix), capabilities))
                break
        parts = path.split("/")
        for wildcard in self._wildcards:
            matched, count = wildcard.matches(parts)
            if matched:
                # Higher sorts as more specific, as acl.go's `less` orders them.
                rank = (
                    wildcard.first_wildcard,
                    not wildcard.is_prefix,
                    -count,
                    len(wildcard.pattern),
                    wildcard.pattern,
                )
                candidates.append((rank, wildcard.capabilities))
        if not candidates:
            return None
        return max(candidates, key=lambda candidate: candidate[0])[1]


# Vault's pre-0.9 `policy = "..."` shorthand, still accepted (vault/policy.go parsePaths).
LEGACY_POLICIES = {
    "read": frozenset({"read", "list"}),
    "write": frozenset({"create", "read", "update", "delete", "list"}),
    "sudo": frozenset({"create", "read", "update", "delete", "list", "sudo"}),
}


# What Vault's or OpenBao's policy parser takes (`scan`: OpenBao only; `subscribe` and
# `recover`: HashiCorp Vault only), so a typo such as `reed` fails before anything is written.
CAPABILITIES = frozenset(
    {"deny", "create", "read", "update", "patch", "delete", "list", "sudo", "scan"}
    | {"subscribe", "recover"}
)


# The keys a path block may hold: vault/policy.go parsePaths in OpenBao (`pagination_limit`,
# `list_scan_response_keys_filter_path`) and HashiCorp Vault (`subscribe_event_types`);
# anything else makes the server refuse the policy. Not OpenBao's `expiration`: a block that
# expires grants one thing before and another after (an expired block of fewer capabilities
# no longer shadows a broader read), which one answer per path cannot say.
PATH_BLOCK_KEYS = frozenset(
    {"comment", "policy", "capabilities", "allowed_parameters", "denied_parameters"}
    | {"required_parameters", "min_wrapping_ttl", "max_wrapping_ttl", "mfa_methods"}
    | {"control_group", "pagination_limit", "list_scan_response_keys_filter_path"}
    | {"subscribe_event_types"}
)


@functools.cache
def _item_parser() -> HclParser:
    """A pyhcl parser that also keeps the top-level items as written: pyhcl folds two blocks
    for the same path into one dict (the later block's keys win), where Vault keeps both and
    merges their capabilities."""
    parser = HclParser()
    flatten = parser.objectlist_flat

    def keep_top_level(items: list, replace: bool) -> dict:
        if replace:  # only the top-level object list is flattened with replace
            parser.top_level_items = copy.deepcopy(items)
        return flatten(items, replace)

    parser.objectlist_flat = keep_top_level
    return parser


def misread_form(text: str) -> str | None:
    """What in `text` pyhcl might read otherwise than Vault, if anything. Only plain blocks
    pass: `path "<path>" { key = value ... }`, values strings, numbers, booleans, lists and
    `{ key = value }` objects, no heredoc, no line break in a string, no backslash, and
    template braces only in pairs. Attack reviews found pyhcl reading the rest otherwise
    than Vault: a second label (`path "a" "x" {...}`: Vault takes `a` as the path and the
    body as written, pyhcl nests it under `x`), escapes (Vault decodes `\\u002a` into a
    `*`; pyhcl ends no string at `\\\\"`, so a comment could hide a block from it) each
    granted a read the audit did not see."""
    if "\\" in text:
        return "a backslash (Vault and this program's parser read escapes differently)"
    if "<<" in text:
        return "a heredoc (write the value in quotes)"
    lexer = Lexer()
    lexer.input(text)
    tokens = list(iter(lexer.token, None))
    strings = [token.value for token in tokens if token.type == "STRING"]
    if any("\n" in string for string in strings):
        return "a line break inside a string"
    if any(re.search("{{|}}", TEMPLATE.sub("", string)) for string in strings):
        return "a `{{` or `}}` that is not one of a `{{...}}` pair"
    if not _plain_blocks(tokens):
        return (
            'anything but `path "<path>" { key = value ... }` blocks (no second label,'
            " `path = {...}`, `:` or nested block)"
        )
    return None


_SCALARS = ("STRING", "NUMBER", "FLOAT", "BOOL")
# An identity template, `{{ expression }}` (the expression captured without its spaces).
TEMPLATE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


def _plain_blocks(tokens: list) -> bool:
    """Whether `tokens` are `path "<path>" { key = value ... }` blocks and nothing else."""
    position = 0

    def peek() -> str | None:
        return tokens[position].type if position < len(tokens) else None

    def take(*types: str) -> bool:
        nonlocal position
        if peek() in types:
            position += 1
            return True
        return False

    def value() -> bool:
        if take(*_SCALARS):
            return True
        if take("LEFTBRACKET"):
            while not take("RIGHTBRACKET"):
                if not value() or not (take("COMMA") or peek() == "RIGHTBRACKET"):
                    return False
            return True
        return take("LEFTBRACE") and assignments() and take("RIGHTBRACE")

    def assignments() -> bool:
        while take("IDENTIFIER", "STRING"):
            if not take("EQUAL") or not value():
                return False
            take("COMMA")
        return True

    while position < len(tokens):
        keyword = tokens[position]
        if keyword.type not in ("IDENTIFIER", "STRING") or keyword.value != "path":
            return False
        position += 1
        if not (take("STRING") and take("LEFTBRACE") and assignments() and take("RIGHTBRACE")):
            return False
        take("COMMA")
    return True


def parse_rules(text: str) -> list[Rule] | None:
    """The path rules of an HCL policy text, one per block as Vault reads them (a path
    written twice gives two rules, which Acl merges); None when it is not a policy Vault
    would take as plain path blocks (not HCL, other keys, a value of the wrong type), or
    one pyhcl would read otherwise than Vault."""
    try:
        if misread_form(text):
            return None
    except ValueError:
        return None
    parser = _item_parser()
    parser.top_level_items = []
    try:
        parser.parse(text)
    except ValueError:
        return None
    rules = []
    for key, value in parser.top_level_items:
        if key != "path" or not isinstance(value, dict):
            return None
        for path, body in value.items():
            capabilities = _capabilities(body)
            if capabilities is None:
                return None
            rules.append(Rule(path, capabilities))
    return rules


def _capabilities(body: object) -> frozenset[str] | None:
    """A block's capabilities as Vault's parser leaves them: the legacy `policy` shorthand
    added, and `deny` alone once it is there (a block of `["deny", "read"]` denies)."""
    if not isinstance(body, dict) or set(body) - PATH_BLOCK_KEYS:
        return None
    capabilities = body.get("capabilities", [])
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        return None
    legacy = body.get("policy")
    granted = frozenset(capabilities)
    if legacy is not None:
        if not isinstance(legacy, str) or legacy not in (DENY, *LEGACY_POLICIES):
            return None
        granted |= LEGACY_POLICIES.get(legacy, frozenset({DENY}))
    return frozenset({DENY}) if DENY in granted else granted
