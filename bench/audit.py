"""Count the Vault requests a command makes, from an OpenBao file audit device.

The audit log sees every authenticated request whoever sends it (CLI, provider plugin, our own
HTTP calls), which is the honest way to tell whether a no-op `pulumi up` only reads. A command's
requests are the JSON lines appended while it ran.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

WRITE_OPERATIONS = frozenset({"create", "update", "delete"})
# The session, not the objects the stack manages: pulumi-vault (like Terraform's provider)
# mints a short-lived child token per run unless skip_child_token is set, and the program asks
# what its token may do (`sys/capabilities-self`, an "update" that changes nothing).
SESSION_PATHS = (
    "auth/token/create",
    "auth/token/revoke-self",
    "auth/token/lookup-self",
    "sys/capabilities-self",
)


@dataclass
class Requests:
    """The requests one command made: (operation, path) -> count."""

    by_call: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.by_call.values())

    @property
    def reads(self) -> int:
        return sum(n for (op, _), n in self.by_call.items() if op not in WRITE_OPERATIONS)

    def writes(self, *, session: bool | None = None) -> Counter[tuple[str, str]]:
        """Write calls; `session` True/False keeps only / drops the provider's token calls."""
        return Counter(
            {
                (op, path): n
                for (op, path), n in self.by_call.items()
                if op in WRITE_OPERATIONS
                and (session is None or path.startswith(SESSION_PATHS) == session)
            }
        )


def line_count(log_path: Path) -> int:
    """Lines written so far; the mark a command's requests are counted from."""
    try:
        with log_path.open("rb") as log:
            return sum(1 for _ in log)
    except FileNotFoundError:
        return 0


def requests_since(log_path: Path, mark: int) -> Requests:
    """Group the `request` entries after line `mark` by operation and path."""
    counted = Requests()
    with log_path.open(encoding="utf-8") as log:
        for number, line in enumerate(log):
            if number < mark or not line.strip():
                continue
            entry = json.loads(line)
            if entry.get("type") != "request":
                continue
            request = entry.get("request", {})
            counted.by_call[(request.get("operation", "?"), request.get("path", "?"))] += 1
    return counted
