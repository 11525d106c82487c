"""Which server answers at the Vault address, and which job-ID risks it carries.

The decision runs on the version strings of real OpenBao and HashiCorp Vault releases; the
probe runs against a stub on 127.0.0.1 that answers like Vault's `sys/health` (no Vault binary
is available here; the real OpenBao is probed in tests/devtools/test_server_kind_openbao.py).
"""

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools.proc import free_port
from nomad_vault_setup.server_kind import (
    CONFIG_KEY,
    ServerProbeError,
    VaultServer,
    job_id_risk_problem,
    job_id_risks,
    parse_version,
    probe_server,
    server_from_health,
)
from nomad_vault_setup.vault_http import Tls
from tests.keys import self_signed

BOTH, SLASH, NONE = {"glob", "slash"}, {"slash"}, set()

# Sources: OpenBao's fix is openbao/openbao#3401 (in the v2.6.0 tag and changelog, not in
# v2.6.0-beta20260622 nor any 2.5.x); Vault's releases that deny a rendered `*`/`+` are those
# of the `policy-template-wildcards` important change (hashicorp/web-unified-docs #2612).
RELEASES = [
    ("openbao", "2.0.0", BOTH),
    ("openbao", "2.5.0", BOTH),
    ("openbao", "2.5.5", BOTH),
    ("openbao", "2.6.0-beta20260622", BOTH),
    ("openbao", "2.6.0", NONE),
    ("openbao", "2.6.2", NONE),
    ("openbao", "2.7.2", NONE),
    ("vault", "1.14.10", BOTH),
    ("vault", "1.15.6+ent.hsm.fips1402", BOTH),
    ("vault", "1.18.15+ent", BOTH),
    ("vault", "1.19.16+ent", BOTH),
    ("vault", "1.19.17+ent", SLASH),
    ("vault", "1.19.17", SLASH),
    ("vault", "1.20.10", BOTH),
    ("vault", "1.20.11", SLASH),
    ("vault", "1.20.11+ent.hsm.fips1403", SLASH),
    ("vault", "1.21.0", BOTH),
    ("vault", "1.21.5", BOTH),
    ("vault", "1.21.6-rc1", BOTH),
    ("vault", "1.21.6", SLASH),
    ("vault", "1.21.7+ent", SLASH),
    ("vault", "2.0.0", BOTH),
    ("vault", "2.0.0+ent", BOTH),
    ("vault", "2.0.1", SLASH),
    ("vault", "2.0.1+ent", SLASH),
    ("vault", "2.1.0", SLASH),
    ("vault", "2.2.0+ent", SLASH),
]


@pytest.mark.parametrize(("kind", "version", "expected"), RELEASES)
def test_the_risks_of_each_release(kind: str, version: str, expected: set[str]) -> None:
    assert set(job_id_risks(VaultServer(kind, version))) == expected


@pytest.mark.parametrize(
    "server",
    [
        VaultServer("unknown", "2.7.2"),
        VaultServer("unknown", ""),
        VaultServer("vault", "banana"),
        VaultServer("openbao", "2.7"),
        VaultServer("vault", ""),
    ],
)
def test_an_unknown_kind_or_version_is_assumed_to_have_both_risks(server: VaultServer) -> None:
    risks = job_id_risks(server)
    assert set(risks) == BOTH
    assert all("unknown" in line for line in risks.values()), risks


def test_each_risk_says_what_a_job_reads_and_where_that_was_measured() -> None:
    vault = job_id_risks(VaultServer("vault", "1.14.10"))
    assert "`*` or `+`" in vault["glob"] and "`web*`" in vault["glob"]
    assert "job `web`'s secret `db`" in vault["slash"]
    assert all("measured on Vault 1.14.10" in line for line in vault.values())
    assert "deny_slash_in_templated_paths" in vault["slash"]
    old_openbao = job_id_risks(VaultServer("openbao", "2.5.5"))
    assert all("measured on OpenBao 2.5.5" in line for line in old_openbao.values()), old_openbao


def test_versions_parse_with_pre_releases_before_their_release() -> None:
    assert parse_version("1.21.6") == (1, 21, 6, 1)
    assert parse_version("1.21.6+ent.hsm") == (1, 21, 6, 1)
    assert parse_version("v2.7.2") == (2, 7, 2, 1)
    assert parse_version("1.21.6-rc1")[3] == 0  # type: ignore[index]
    assert parse_version("1.21.6-rc1") < parse_version("1.21.6")  # type: ignore[operator]
    for text in ("", "2.7", "1.21.x", "latest", "1.2.3.4"):
        assert parse_version(text) is None, text


def test_no_problem_when_the_server_has_no_risk_or_every_risk_is_accepted() -> None:
    assert job_id_risk_problem(VaultServer("openbao", "2.7.2"), []) is None
    assert job_id_risk_problem(VaultServer("openbao", "2.6.0"), []) is None
    assert job_id_risk_problem(VaultServer("vault", "1.21.6"), ["slash"]) is None
    assert job_id_risk_problem(VaultServer("vault", "1.14.10"), ("glob", "slash")) is None


def test_the_problem_names_the_server_each_risk_its_fix_and_how_to_accept_it() -> None:
    problem = job_id_risk_problem(VaultServer("vault", "1.14.10"), [])
    assert problem is not None
    assert "HashiCorp Vault 1.14.10" in problem
    assert "`*` or `+` reads the secrets of every job in its Nomad namespace" in problem
    assert "job `web`'s secret `db`" in problem
    assert "1.19.17+, 1.20.11+, 1.21.6+ or 2.0.1+" in problem  # the glob fix
    assert "deny_slash_in_templated_paths = true" in problem  # the slash fix ...
    assert "cannot see that setting" in problem  # ... which the program cannot check
    assert f"pulumi config set --path '{CONFIG_KEY}[0]' glob" in problem
    assert f"pulumi config set --path '{CONFIG_KEY}[1]' slash" in problem


def test_the_problem_leaves_out_accepted_risks_and_appends_to_the_list() -> None:
    problem = job_id_risk_problem(VaultServer("vault", "1.20.10+ent"), ["slash"])
    assert problem is not None
    assert "HashiCorp Vault 1.20.10+ent" in problem
    assert "- glob:" in problem and "- slash:" not in problem
    assert f"pulumi config set --path '{CONFIG_KEY}[1]' glob" in problem
    assert "slash" not in problem.split("\n")[0]


def test_a_fixed_vault_still_reports_slash_and_a_fixed_openbao_is_the_way_out() -> None:
    vault = job_id_risk_problem(VaultServer("vault", "2.1.0"), [])
    assert vault is not None and "- slash:" in vault and "- glob:" not in vault
    old_openbao = job_id_risk_problem(VaultServer("openbao", "2.5.5"), ["glob"])
    assert old_openbao is not None and "upgrade to OpenBao 2.6.0 or later" in old_openbao
    unknown = job_id_risk_problem(VaultServer("unknown", ""), [])
    assert unknown is not None and "unrecognised server" in unknown


# What the servers send (OpenBao's as measured on 2.7.2; Vault's fields from its
# http/sys_health.go, `enterprise` since 1.16).
OPENBAO_2_7_2 = {
    "initialized": True,
    "sealed": False,
    "standby": False,
    "replication_performance_mode": "disabled",
    "replication_dr_mode": "disabled",
    "server_time_utc": 1796094266,
    "version": "2.7.2",
    "cluster_name": "vault-cluster-c79328ab",
    "cluster_id": "248002cd-7574-7195-31e7-c21b1111f5ba",
}
CLUSTER = OPENBAO_2_7_2["cluster_id"]
OPENBAO_2_5 = OPENBAO_2_7_2 | {"performance_standby": False, "version": "2.5.5"}
VAULT_1_14 = OPENBAO_2_5 | {"version": "1.14.10", "last_wal": 31}
VAULT_1_21_ENT = VAULT_1_14 | {
    "version": "1.21.6+ent",
    "enterprise": True,
    "echo_duration_ms": 0,
    "clock_skew_ms": 0,
}
VAULT_2_CE = VAULT_1_21_ENT | {"version": "2.0.1", "enterprise": False}


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        (OPENBAO_2_7_2, VaultServer("openbao", "2.7.2", CLUSTER)),
        (OPENBAO_2_5, VaultServer("openbao", "2.5.5", CLUSTER)),
        (VAULT_1_14, VaultServer("vault", "1.14.10", CLUSTER)),
        (VAULT_1_21_ENT, VaultServer("vault", "1.21.6+ent", CLUSTER)),
        # Vault 2.x: told apart by `enterprise`
        (VAULT_2_CE, VaultServer("vault", "2.0.1", CLUSTER)),
        (OPENBAO_2_7_2 | {"version": "main"}, VaultServer("unknown", "main", CLUSTER)),
        ({"initialized": True, "sealed": False}, VaultServer("unknown", "")),
    ],
)
def test_the_kind_comes_from_the_shape_of_the_health_answer(
    health: dict[str, Any], expected: VaultServer
) -> None:
    assert server_from_health(health) == expected


@dataclass
class Stub:
    """A fake Vault on 127.0.0.1 (GET and POST): `answer(path)` decides (status, body,
    headers)."""

    answer: Any
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    address: str = ""


def serve(stub: Stub, tls: ssl.SSLContext | None = None) -> Iterator[Stub]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            stub.requests.append((self.path, dict(self.headers)))
            status, body, headers = stub.answer(self.path)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.do_GET()

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    stub.address = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def vault_health(path: str) -> tuple[int, bytes, dict[str, str]]:
    """Like Vault: 200 only when the query asks for it on a standby, else 429."""
    query = parse_qs(urlsplit(path).query)
    if urlsplit(path).path != "/v1/sys/health":
        return 404, b'{"errors":[]}', {"Content-Type": "application/json"}
    status = 200 if query.get("standbyok") == ["true"] else 429
    body = json.dumps(VAULT_1_21_ENT | {"standby": True}).encode()
    return status, body, {"Content-Type": "application/json"}


@pytest.fixture
def vault_stub() -> Iterator[Stub]:
    yield from serve(Stub(vault_health))


def test_probe_tells_a_vault_standby_from_its_health_answer_without_a_token(
    vault_stub: Stub,
) -> None:
    server = probe_server(vault_stub.address + "/")
    assert server == VaultServer("vault", "1.21.6+ent", CLUSTER)
    ((path, headers),) = vault_stub.requests
    assert urlsplit(path).path == "/v1/sys/health"
    query = parse_qs(urlsplit(path).query)
    for name in ("standbyok", "perfstandbyok"):
        assert query[name] == ["true"], name
    for name in ("sealedcode", "uninitcode", "standbycode", "performancestandbycode"):
        assert query[name] == ["200"], name
    sent = {name.lower() for name in headers}
    assert not sent & {"x-vault-token", "authorization", "x-vault-namespace"}, sent


def test_probe_reads_the_body_of_a_non_200_health_answer() -> None:
    standby = VAULT_1_14 | {"standby": True}
    answer = (429, json.dumps(standby).encode(), {"Content-Type": "application/json"})
    for stub in serve(Stub(lambda path: answer)):
        assert probe_server(stub.address) == VaultServer("vault", "1.14.10", CLUSTER)


@pytest.mark.parametrize(
    ("state", "says"),
    [
        ({"sealed": True}, "is sealed, so it serves nothing: unseal it"),
        ({"initialized": False, "sealed": True}, "is not initialised"),
    ],
)
def test_a_sealed_or_uninitialised_node_is_refused_naming_it(state, says) -> None:
    answer = (503, json.dumps(VAULT_1_14 | state).encode(), {})
    for stub in serve(Stub(lambda path: answer)):
        with pytest.raises(ServerProbeError) as refused:
            probe_server(stub.address)
        assert f"the Vault server at {stub.address} (HashiCorp Vault 1.14.10) " in str(
            refused.value
        )
        assert says in str(refused.value)


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected"),
    [
        (200, b"<html>hello</html>", {"Content-Type": "text/html"}, "not a Vault health answer"),
        (502, b"", {}, "an empty body"),
        (200, b'["a", "list"]', {}, "not a Vault health answer"),
        (403, b'{"errors":["permission denied"]}', {}, "permission denied"),
        (307, b"", {"Location": "http://elsewhere.invalid/v1/sys/health"}, "HTTP 307"),
    ],
)
def test_probe_refuses_what_is_not_a_vault_health_answer_naming_the_address(
    status: int, body: bytes, headers: dict[str, str], expected: str
) -> None:
    for stub in serve(Stub(lambda path: (status, body, headers))):
        with pytest.raises(ServerProbeError) as refused:
            probe_server(stub.address)
        assert stub.address in str(refused.value)
        assert expected in str(refused.value)
        assert len(stub.requests) == 1  # a redirect is reported, never followed


def test_probe_of_an_unreachable_or_non_http_address_says_which() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerProbeError, match="cannot reach the Vault server at " + address):
        probe_server(address, timeout=2)
    for address in ("file:///etc/passwd", "unix:///run/vault.sock", "127.0.0.1:8200", ""):
        with pytest.raises(ServerProbeError, match="not an http:// or https:// address"):
            probe_server(address)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    certificate, key = self_signed("vault-stub", ip="127.0.0.1")
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_text(certificate)
    key_file.write_text(key)
    return cert_file, key_file


def test_probe_over_tls_trusts_the_given_ca_and_nothing_else_unless_told(
    tmp_path: Path,
) -> None:
    cert_file, key_file = _self_signed(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert_file, key_file)
    for stub in serve(Stub(vault_health), tls=tls):
        with pytest.raises(ServerProbeError, match="CERTIFICATE_VERIFY_FAILED") as refused:
            probe_server(stub.address)
        assert stub.address in str(refused.value)
        expected = VaultServer("vault", "1.21.6+ent", CLUSTER)
        assert probe_server(stub.address, Tls(ca_cert_file=str(cert_file))) == expected
        assert probe_server(stub.address, Tls(skip_verify=True)) == expected
