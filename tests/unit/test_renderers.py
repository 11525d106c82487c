"""The pure renderers on their own: durations, the workload policy, the Nomad agent blocks."""

import pytest

from components.durations import format_duration, parse_duration
from components.nomad_config import render_client_config, render_server_config
from components.policy import render_workload_policy
from tests.hcl import parse_hcl

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
    rules = {path: body["capabilities"] for block in blocks for path, body in block.items()}
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
    (vault,) = parse_hcl(render_server_config(["vault.io", "other"], "1h30m"))["vault"]
    assert vault["enabled"] is True
    assert vault["default_identity"] == [{"aud": ["vault.io", "other"], "ttl": "1h30m"}]


def test_client_config_with_and_without_namespace() -> None:
    (with_ns,) = parse_hcl(render_client_config("https://v:8200", "jwt-nomad", "team/nomad"))[
        "vault"
    ]
    assert with_ns == {
        "enabled": True,
        "address": "https://v:8200",
        "namespace": "team/nomad",
        "jwt_auth_backend_path": "jwt-nomad",
    }
    (root,) = parse_hcl(render_client_config("https://v:8200", "jwt"))["vault"]
    assert "namespace" not in root


def test_hcl_strings_are_escaped_so_nomad_never_interpolates() -> None:
    text = render_server_config(['a"b', "${env}", "%{if}"], "1h")
    assert '"a\\"b"' in text and '"$${env}"' in text and '"%%{if}"' in text
    parse_hcl(text)
