"""Vault duration strings: parse them to seconds, write seconds back as Go durations.

pulumi-vault takes durations as integer seconds, while people (and Vault's own CLI) write
"30m" or "1h30m". Nomad parses its `ttl` with Go's `time.ParseDuration`, which refuses a bare
number, so what goes into Nomad's config is always written with units. Go holds a duration in
int64 nanoseconds, so nothing longer than MAX_SECONDS can reach Nomad (or Vault) intact.
"""

import re

_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
# ASCII digits only: `\d` would also take the digits of other scripts (Arabic-Indic, ...).
_DURATION = re.compile(r"(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?", re.ASCII)
_SECONDS = re.compile(r"[0-9]+", re.ASCII)
# Go's longest duration, 2562047h47m16.854775807s, in whole seconds.
MAX_SECONDS = (2**63 - 1) // 10**9


def parse_duration(text: str) -> int:
    """Seconds in `text`: a bare integer ("1800") or h/m/s parts in that order ("1h30m").

    Raises ValueError for anything else, including the empty string.
    """
    text = text.strip()
    if _SECONDS.fullmatch(text):
        return int(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise ValueError(f"{text!r} is not a duration")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """The shortest Go duration for `seconds` ("1h", "1h30m", "45s"), as Nomad expects."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
