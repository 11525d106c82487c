"""Parse HCL with a real parser (python-hcl2), as Nomad and Vault would read the text."""

from typing import Any

import hcl2
from hcl2.utils import SerializationOptions

_PLAIN = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def parse_hcl(text: str) -> dict[str, Any]:
    """HCL text -> plain dict (blocks become lists of dicts, strings lose their quotes)."""
    return hcl2.loads(text, serialization_options=_PLAIN)
