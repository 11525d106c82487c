"""Property: whatever text a setting holds, the Nomad config either refuses it or Nomad reads
it back exactly. "Reads" is Go's HCL1 parser (tests/hcl1), the one Nomad's agent uses.

`hcl_hostile_text()` is the strategy for text built to break HCL: reuse it wherever a value
ends up in Nomad's config (e.g. through the settings validators).
"""

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nomad_vault_setup.nomad_config import hcl1_problem, render_client_config, render_server_config
from tests.hcl import HCLError, parse_hcl_many

# Pieces that mean something to HCL1, HCL2, JSON or a terminal, and characters that need
# more than one UTF-16 unit or UTF-8 byte.
HOSTILE_PIECES = [
    '"',
    "\\",
    '\\"',
    "\\\\",
    "${",
    "}",
    "{",
    "$",
    "$${",
    "%{",
    "%%{",
    "${x}",
    "${job.id}",
    "\\n",
    "\\u0041",
    "\\uD83D\\uDE00",
    "\n",
    "\r",
    "\t",
    "\x00",
    "\x1b",
    "\x7f",
    "\x85",
    "\u2028",
    "\ufeff",
    "\ud83d",
    "\U0001f600",
    "\U00010348",
    "日本",
    " ",
    "  ",
    "#",
    "//",
    "/*",
    "*/",
    "<<EOF",
    "=",
    ",",
    "]",
    "https://v:8200",
]


def hcl_hostile_text(max_pieces: int = 8) -> st.SearchStrategy[str]:
    """Text mixing HCL-significant pieces, arbitrary characters (surrogates included) and
    padding spaces; shrinks towards short, plain strings."""
    piece = st.one_of(
        st.sampled_from(HOSTILE_PIECES),
        st.text(max_size=3),
        st.characters(exclude_categories=()).map(str),
    )
    return st.one_of(
        st.lists(piece, max_size=max_pieces).map("".join),
        st.text(max_size=12),
    )


PROPERTY_SETTINGS = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _refused(render, *args) -> bool:
    try:
        render(*args)
    except ValueError:
        return True
    return False


@PROPERTY_SETTINGS
@given(
    audiences=st.lists(hcl_hostile_text(), min_size=1, max_size=3),
    address=hcl_hostile_text(),
    namespace=hcl_hostile_text(),
)
def test_rendered_values_are_refused_or_reach_nomad_exactly(
    audiences: list[str], address: str, namespace: str
) -> None:
    texts = []
    server_ok = all(hcl1_problem(value) is None for value in audiences)
    client_ok = hcl1_problem(address) is None and hcl1_problem(namespace) is None
    # The renderers refuse exactly what hcl1_problem refuses (never write a broken file).
    assert _refused(render_server_config, audiences, "1h") is not server_ok
    assert _refused(render_client_config, address, "jwt", namespace) is not client_ok
    event(f"server block parsed: {server_ok}")
    event(f"client block parsed: {client_ok}")
    if server_ok:
        texts.append(render_server_config(audiences, "1h"))
    if client_ok:
        texts.append(render_client_config(address, "jwt", namespace))
    if not texts:
        return
    decoded = iter(parse_hcl_many(texts))
    if server_ok:
        document = next(decoded)
        assert not isinstance(document, HCLError), document
        (block,) = document["vault"]
        (identity,) = block["default_identity"]
        assert identity == {"aud": audiences, "ttl": "1h"}
    if client_ok:
        document = next(decoded)
        assert not isinstance(document, HCLError), document
        (block,) = document["vault"]
        expected = {"enabled": True, "address": address, "jwt_auth_backend_path": "jwt"}
        if namespace:
            expected["namespace"] = namespace
        assert block == expected


@PROPERTY_SETTINGS
@given(value=hcl_hostile_text())
def test_hcl1_problem_refuses_every_control_character_surrogate_and_interpolation(
    value: str,
) -> None:
    unsafe = "${" in value or any(
        ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or 0xD800 <= ord(char) <= 0xDFFF
        for char in value
    )
    assert (hcl1_problem(value) is not None) is unsafe
