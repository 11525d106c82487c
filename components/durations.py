"""Vault duration strings: parse them to seconds, write seconds back as Go durations.

pulumi-vault takes durations as integer seconds, while people (and Vault's own CLI) write
"30m" or "1h30m". Nomad parses its `ttl` with Go's `time.ParseDuration`, which refuses a bare
number, so what goes into Nomad's config is always written with units.
"""

import re

_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(text: str) -> int:
    """Seconds in `text`: a bare integer ("1800") or h/m/s parts in that order ("1h30m").

    Raises ValueError for anything else, including the empty string.
    """
    text = text.strip()
    if text.isdigit():
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
