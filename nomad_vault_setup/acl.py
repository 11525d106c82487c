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

import re
from collections.abc import Iterable
from dataclasses import dataclass

from .config.fields import hcl_parser

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


def parse_rules(text: str) -> list[Rule] | None:
    """The path rules of an HCL policy text; None when this parser cannot see all of them
    (not HCL, not `path` blocks, or a path written twice: pyhcl keeps only the last block
    where Vault merges both, so an answer from it could be wrong)."""
    try:
        parsed = hcl_parser().parse(text)
    except ValueError:
        return None
    paths = parsed.get("path") if isinstance(parsed, dict) else None
    if not isinstance(paths, dict):
        return None
    if len(re.findall(r'(?m)^\s*path\s*"', text)) != len(paths):
        return None
    rules = []
    for path, body in paths.items():
        capabilities = body.get("capabilities") if isinstance(body, dict) else None
        if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
            return None
        rules.append(Rule(path, frozenset(capabilities)))
    return rules
