"""The pure renderers on their own: durations, the workload policy, the Nomad agent blocks."""

import pytest

from nomad_vault_setup.durations import format_duration, parse_duration
from nomad_vault_setup.nomad_config import hcl1_problem, render_client_config, render_server_config
from nomad_vault_setup.policy import render_workload_policy
from nomad_vault_setup.vault_setup import UNIQUE_ID_CLAIM
from tests.hcl import HCLError, parse_hcl, parse_hcl_many, vault_block

ALIAS = "identity.entity.aliases.auth_jwt_abc123.metadata"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1800", 1800), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("90s", 90), ("2h0m5s", 7205)],
)
def test_parse_duration_accepts_vault_syntax(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "30x", "1d", "-5m", "30m1h", "1.5h", "ten"])
def test_parse_duration_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(3600, "1h"), (5400, "1h30m"), (45, "45s"), (3661, "1h1m1s"), (0, "0s")]
)
def test_format_duration_writes_go_durations(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_policy_has_the_four_templated_paths_of_nomad_setup_vault() -> None:
    blocks = parse_hcl(render_workload_policy("auth_jwt_abc123", "secret"))["path"]
    rules = {path: body["capabilities"] for block in blocks for path, (body,) in block.items()}
    ns, job = f"{{{{{ALIAS}.nomad_namespace}}}}", f"{{{{{ALIAS}.nomad_job_id}}}}"
    assert rules == {
        f"secret/data/{ns}/{job}/*": ["read"],
        f"secret/data/{ns}/{job}": ["read"],
        f"secret/metadata/{ns}/*": ["list"],
        "secret/metadata/*": ["list"],
    }


def test_policy_uses_the_given_kv_mount_and_accessor_only() -> None:
    text = render_workload_policy("auth_jwt_ffff", "team/kv")
    paths = [path for block in parse_hcl(text)["path"] for path in block]
    assert all(path.startswith("team/kv/") for path in paths)
    assert "auth_jwt_ffff" in text and "secret/" not in text
    assert "create" not in text and "update" not in text and "delete" not in text


def test_server_config_carries_audiences_and_ttl() -> None:
    vault = vault_block(render_server_config(["vault.io", "other"], "1h30m"))
    assert vault == {
        "enabled": True,
        "default_identity": {"aud": ["vault.io", "other"], "ttl": "1h30m"},
    }


def test_client_config_with_and_without_namespace() -> None:
    with_ns = vault_block(render_client_config("https://v:8200", "jwt-nomad", "team/nomad"))
    assert with_ns == {
        "enabled": True,
        "address": "https://v:8200",
        "namespace": "team/nomad",
        "jwt_auth_backend_path": "jwt-nomad",
    }
    root = vault_block(render_client_config("https://v:8200", "jwt"))
    assert "namespace" not in root


def test_the_unique_id_claim_reaches_nomad_as_a_template() -> None:
    """HCL1 keeps `${...}` literally: Nomad gets the template and fills it in itself."""
    text = render_server_config(["vault.io"], "1h", UNIQUE_ID_CLAIM)
    claims = vault_block(text)["default_identity"]["extra_claims"]
    assert claims == {"unique_id": "${job.region}:${job.namespace}:${job.id}"}
    assert '"${job.region}:${job.namespace}:${job.id}"' in text


# Values HCL1 can hold: each must reach Nomad exactly, through Go's parser.
TRICKY = [
    'a"b',
    '"',
    "a\\b",
    "\\",
    "ends with a backslash\\",
    '\\"',
    "\\n is not a newline",
    "\\u0041",
    "%{if x}",
    "%%{",
    "$x",
    "$",
    "a$",
    "$$",
    "{}",
    "}{",
    "$ {x}",
    "$\\{",
    "#not a comment",
    "// not a comment",
    "/* not a comment */",
    "\U0001f600 emoji",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "日本語の名前",
    "trailing spaces  ",
    "  leading spaces",
    " ",
    "",
    "\u2028 and \u2029",
    "\u00a0\ufeff\u200b\u202e",
    "\U0010ffff\ue000",
    "https://vault.example:8200/v1",
    "team/nomad",
]


def test_literals_decode_exactly_through_go_hcl1() -> None:
    texts = [render_server_config([value], "1h") for value in TRICKY]
    texts += [render_client_config(value, "jwt", value) for value in TRICKY if value]
    decoded = parse_hcl_many(texts)
    for value, document in zip(TRICKY, decoded[: len(TRICKY)], strict=True):
        assert not isinstance(document, HCLError), (value, document)
        assert document["vault"][0]["default_identity"][0]["aud"] == [value]
    for value, document in zip([v for v in TRICKY if v], decoded[len(TRICKY) :], strict=True):
        assert not isinstance(document, HCLError), (value, document)
        (block,) = document["vault"]
        assert (block["address"], block["namespace"]) == (value, value)


def test_strings_are_written_raw_with_only_quote_and_backslash_escaped() -> None:
    text = render_server_config(['a"b\\c', "%{if}", "$x", "\U0001f600"], "1h")
    assert 'aud = ["a\\"b\\\\c", "%{if}", "$x", "\U0001f600"]' in text


@pytest.mark.parametrize("value", TRICKY)
def test_hcl1_problem_accepts_what_decodes_exactly(value: str) -> None:
    assert hcl1_problem(value) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("${x}", "'${'"),
        ("${", "'${'"),
        ("a${b", "'${'"),
        ('${"}', "'${'"),
        ("$${x}", "'${'"),
        ("${job.id}", "'${'"),
        ("a\nb", "control characters"),
        ("a\rb", "control characters"),
        ("a\tb", "control characters"),
        ("\x00", "control characters"),
        ("\x01", "control characters"),
        ("\x1b[31m", "control characters"),
        ("\x7f", "control characters"),
        ("\x85", "control characters"),
        ("\x9b", "control characters"),
        ("\ud83d", "surrogate"),
        ("\ud83d\ude00", "surrogate"),
        ("\udfff", "surrogate"),
    ],
)
def test_hcl1_problem_refuses(value: str, reason: str) -> None:
    problem = hcl1_problem(value)
    assert problem is not None and reason in problem
    assert problem.startswith("must not contain ")
    with pytest.raises(ValueError, match="must not contain"):
        render_client_config(value, "jwt")
    with pytest.raises(ValueError, match="must not contain"):
        render_server_config([value], "1h")


@pytest.mark.parametrize(
    ("literal", "outcome"),
    [
        # What Go's HCL1 does with the text a naive renderer would write: why these are refused.
        ('"${"', HCLError),
        ('"a${b"', HCLError),
        ('"${\\"}"', '${\\"}'),  # inside ${...} the escape is not decoded
        ('"$${x}"', "$${x}"),  # no $${ escape in HCL1
        ('"a\nb"', HCLError),  # a raw newline ends the literal
        ('"a\x00b"', HCLError),
        ('"\\uD83D\\uDE00"', "\ufffd\ufffd"),  # a surrogate-pair escape
        # Control characters other than newline and NUL survive only when written raw
        # (invisible in the pasted config); hcl1_problem refuses them all the same.
        ('"a\tb"', "a\tb"),
        ('"a\x01b"', "a\x01b"),
        ('"a\x85b"', "a\x85b"),
        ('"a\\u0001b"', "a\x01b"),
    ],
)
def test_go_hcl1_behaviour_behind_the_rules(literal: str, outcome: object) -> None:
    if outcome is HCLError:
        with pytest.raises(HCLError):
            parse_hcl(f"k = {literal}\n")
    else:
        assert parse_hcl(f"k = {literal}\n") == {"k": outcome}
