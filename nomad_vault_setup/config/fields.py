"""The value types of the stack settings: each one parses, normalises and says what it allows.

Every check raises ValueError with a message that reads after the key's name
("nomad-vault-setup:kvMount = '/': must be a non-empty mount path ..."), so pydantic can
collect them all into one report.
"""

import functools
import ipaddress
import json
import posixpath
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from hcl.parser import HclParser
from pydantic import AfterValidator, BeforeValidator

from ..acl import CAPABILITIES, PATH_BLOCK_KEYS, misread_form, parse_rules
from ..durations import MAX_SECONDS, parse_duration
from ..nomad_config import hcl1_problem

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PATH_SEGMENT = r"[A-Za-z0-9_.-]+"
_MOUNT_PATH = re.compile(rf"{_PATH_SEGMENT}(/{_PATH_SEGMENT})*")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CLUSTER_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_SSH_KEY_TYPE = re.compile(r"(ssh|ecdsa|sk)-[a-z0-9@.-]+")
RESERVED_NAMESPACES = frozenset({"root", "sys", "audit", "auth", "cubbyhole", "identity"})
BUILTIN_POLICIES = frozenset({"root", "default"})
SYSTEM_MOUNTS = frozenset({"sys", "auth", "identity", "cubbyhole"})


def positive_seconds(value: Any) -> int:
    """Vault duration ("30m", "1h30m", "1800", or a whole number of seconds) -> seconds,
    positive and no longer than Go's longest duration (Nomad and Vault hold durations in Go)."""
    seconds = 0
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and value == value.strip():
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = 0
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(
            "must be a positive duration in s, m, h (e.g. 90s, 30m, 1h30m), at most"
            f" {MAX_SECONDS // 3600}h (Go's longest duration)"
        )
    return seconds


def nomad_text(value: str) -> str:
    """A value written into Nomad's agent config: it must reach Nomad exactly (HCL1)."""
    problem = hcl1_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def http_url(value: str) -> str:
    """Vault and Nomad reach these over HTTP: anything else can only fail later, less clearly.

    No user or password in it: the URL is kept in plain state, outputs and agent files.
    """
    if value != value.strip() or any(char.isspace() for char in value):
        raise ValueError("must be an http:// or https:// URL without spaces")
    parsed = urlparse(value)
    try:
        parsed.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise ValueError("must be an http:// or https:// URL with a valid port") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parsed.username is not None or parsed.password is not None:
        raise ValueError(
            "must not carry a user or password (user:password@): it would be stored in plain"
            " text in the state, the outputs and the agents' files"
        )
    return nomad_text(value)


def nomad_vault_address(value: str) -> str:
    """The base address Nomad agents use for Vault: scheme, host, port and nothing more."""
    url = http_url(value)
    parsed = urlparse(url)
    if parsed.query or parsed.fragment or url.endswith(("?", "#")):
        raise ValueError("must be a base URL without a query or fragment (?, #)")
    return url


def optional_nomad_vault_address(value: str) -> str:
    """Empty means "the provider's address"; anything else must be a base URL."""
    return nomad_vault_address(value) if value else ""


def mount_path(value: str) -> str:
    """Slashes at the ends are trimmed, as `nomad setup vault` does; empty is refused, and so
    are `.` and `..` segments, which Vault would resolve to another path than the one named."""
    path = value.strip("/")
    if not _MOUNT_PATH.fullmatch(path):
        raise ValueError("must be a non-empty mount path of letters, digits, '_', '-', '.' and '/'")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError("must not have '.' or '..' segments")
    return path


def auth_mount_path(value: str) -> str:
    """`token` is Vault's own token auth method: it can be neither enabled nor disabled."""
    path = mount_path(value)
    if path.split("/")[0] == "token":
        raise ValueError("must not be (or be under) `token`, Vault's built-in token auth method")
    return path


def secret_mount_path(value: str) -> str:
    """System mounts hold no KV secrets: a grant there would give something else entirely."""
    path = mount_path(value)
    if path.split("/")[0] in SYSTEM_MOUNTS:
        raise ValueError(f"must not be a system mount ({', '.join(sorted(SYSTEM_MOUNTS))})")
    return path


def vault_name(value: str) -> str:
    """Lowercase only: Vault/OpenBao lowercase role and policy names; mixed case diffs forever."""
    if not _NAME.fullmatch(value):
        raise ValueError("must be lowercase letters, digits, '_', '-' or '.', without '/'")
    return value


def policy_name(value: str) -> str:
    """The built-in policies cannot be managed: `root` is refused by Vault, `default` is shared."""
    if value in BUILTIN_POLICIES:
        raise ValueError(f"must not be a built-in policy ({', '.join(sorted(BUILTIN_POLICIES))})")
    return vault_name(value)


def cluster_name(value: str) -> str:
    """Cluster names become parts of mount paths, policy names and Pulumi resource names."""
    if not _CLUSTER_NAME.fullmatch(value):
        raise ValueError("must be lowercase letters, digits and '-'")
    return value


def namespace(value: str) -> str:
    """One namespace level under the provider's; nest by setting VAULT_NAMESPACE to the parent."""
    name = value.strip("/")
    if name and (not _NAMESPACE.fullmatch(name) or name.lower() in RESERVED_NAMESPACES):
        raise ValueError(
            "must be one namespace name (letters, digits, '_', '-', '.'; no '/'), not one of "
            + ", ".join(sorted(RESERVED_NAMESPACES))
        )
    return name


def provider_namespace(value: str) -> str:
    """The provider's own namespace (vault:namespace or VAULT_NAMESPACE), nested or not: it is
    written into the Nomad client block, so it must be a plain namespace path."""
    path = value.strip("/")
    if path:
        for name in path.split("/"):
            if not name:
                raise ValueError("must be a namespace path without empty segments ('//')")
            namespace(name)
    return path


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\s*", re.DOTALL)


def pem_from_file(value: Any) -> str:
    """The setting names a file; the settings carry its PEM text, read once, here.

    Only certificates: the text is sent to Vault and kept in the state, so a private key
    saved in the same file would land in both.
    """
    if not value:
        return ""
    try:
        text = Path(str(value)).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"must be a readable PEM file ({error.__class__.__name__})") from None
    labels = [match.group(1) for match in _PEM_BLOCK.finditer(text)]
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if others or "-----BEGIN" in _PEM_BLOCK.sub("", text):
        raise ValueError(
            "must hold only CERTIFICATE blocks (found "
            f"{', '.join(others) or 'an unterminated block'}): everything in it is sent to"
            " Vault and kept in the state"
        )
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        certificates = []
    if not certificates:
        raise ValueError("must be a PEM file holding at least one valid CERTIFICATE block")
    return text


def absolute_path(value: str) -> str:
    """A file or directory on a machine Pulumi does not run in: a relative path would depend on
    whichever directory a command happens to start in. Normalised so one file has one spelling;
    `.` and `..` segments are refused (`/etc/nomad.d/.` names the directory, not a file in it).
    """
    if not value.startswith("/") or any(char < " " or char == "\x7f" for char in value):
        raise ValueError("must be an absolute path (starting with '/')")
    if any(segment in (".", "..") for segment in value.split("/")):
        raise ValueError("must not have '.' or '..' segments")
    path = posixpath.normpath(value)
    return "/" + path.lstrip("/")  # normpath keeps a leading '//'


def optional_absolute_path(value: str) -> str:
    """Empty means "not set"; anything else must be an absolute path."""
    return absolute_path(value) if value else ""


def file_path(value: str) -> str:
    """An absolute path that names a file, not a directory."""
    if value.endswith("/") or absolute_path(value) == "/":
        raise ValueError("must be the absolute path of a file, not a directory")
    return absolute_path(value)


def ssh_host(value: str) -> str:
    """A DNS name or an IP address, and nothing more: `user@host` and `host:port` have their
    own keys, and anything else would only fail at `pulumi up`, on one agent at a time."""
    host = value.strip().lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(part) for part in host.split(".")):
        raise ValueError(
            "must be a host name or an IP address (no user@ or :port; use `user` and `port`)"
        )
    return host


def is_loopback(host: str) -> bool:
    """Whether `host` (as ssh_host normalised it, or a URL's host) names the machine that
    runs Pulumi."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unix_user(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError("must be a user name (letters, digits, '_', '-', '.')")
    return value


def port(value: int) -> int:
    """A whole number (JSON), not a string or a boolean: those are refused by the model."""
    if not 1 <= value <= 65535:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def shell_command(value: str) -> str:
    """Run with `sh -c` on the agent after each write: empty would leave the agent on its old
    configuration, which Nomad only rereads on a restart."""
    if not value.strip():
        raise ValueError("must be a non-empty shell command (e.g. systemctl restart nomad)")
    return value


def ssh_public_key(value: str) -> str:
    """One OpenSSH public key line (`ssh-ed25519 AAAA...`), as in known_hosts without the host;
    its key must decode, or every connection would fail the host key check at `up`."""
    parts = value.split()
    if not value:
        return ""
    line = " ".join(parts[:2])
    try:
        if len(parts) < 2 or not _SSH_KEY_TYPE.fullmatch(parts[0]):
            raise ValueError
        serialization.load_ssh_public_key(line.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(
            "must be the host's public key as one line, e.g. the content of"
            " /etc/ssh/ssh_host_ed25519_key.pub ('ssh-ed25519 AAAA...')"
        ) from None
    return line


def ssh_private_key_problem(key: str) -> str | None:
    """Why `key` is not an unencrypted SSH private key (OpenSSH or PEM), if it is not.

    The key itself never appears in the answer."""
    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            load(key.encode(), password=None)
            return None
        except TypeError:
            return "must be an unencrypted SSH private key (this one needs a passphrase)"
        except (ValueError, UnsupportedAlgorithm):
            continue
    return "must be an unencrypted SSH private key (OpenSSH or PEM text)"


def from_json(value: Any) -> Any:
    """Structured config (lists, objects) reaches the program as JSON text from the engine.

    Lists become tuples, as the frozen settings hold them.
    """
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"is not valid JSON ({error.msg} at character {error.pos + 1}); write a list"
                ' as ["a", "b"] and an object as {"key": "value"}'
            ) from None
    return tuple(value) if isinstance(value, list) else value


def string_list(value: Any) -> Any:
    """A JSON list, or one bare string meaning a list of one."""
    value = from_json(value)
    return (value,) if isinstance(value, str) else value


def audiences(values: tuple[str, ...]) -> tuple[str, ...]:
    """Bound by Vault and signed by Nomad exactly as written: no padding, no commas (Vault keeps
    bound_audiences as a comma-separated list), nothing Nomad's HCL1 cannot carry."""
    if not values or not all(values):
        raise ValueError("must be a non-empty list of non-empty audience strings")
    for value in values:
        if value != value.strip():
            raise ValueError(f"{value!r}: an audience must not start or end with white space")
        if "," in value:
            raise ValueError(f"{value!r}: an audience must not contain ','")
        problem = hcl1_problem(value)
        if problem:
            raise ValueError(f"{value!r}: {problem}")
    return values


@functools.cache
def hcl_parser() -> HclParser:
    """pyhcl builds its parser tables on construction (~80 ms): build them once."""
    return HclParser()


def acl_policy_problem(text: str) -> str | None:
    """Why `text` is not an HCL ACL policy this program can write, if it is not.

    Checked here so a bad inline policy fails before anything is written, not half-way
    through `up`. HCL only: the first line of every policy this program writes is a comment
    naming the stack that owns it, and JSON has no comments. Vault's own parser (HCL1) has
    the last word; this one (pyhcl, a port of it) catches the structure.
    """
    if "\ufeff" in text or any(char < " " and char not in "\n\t\r" for char in text):
        return "must not contain control characters or a byte order mark"
    if text.lstrip().startswith("{"):
        return (
            "must be HCL, not JSON: the policy's first line names the stack that owns it,"
            " and JSON has no comments"
        )
    try:
        parsed = hcl_parser().parse(text)
        misread = misread_form(text)
    except ValueError as error:
        return f"is not valid HCL ({str(error).splitlines()[0][:120]})"
    if misread:
        return f"must not hold {misread}"
    paths = parsed.get("path") if isinstance(parsed, dict) else None
    rules = parse_rules(text)
    if set(parsed) != {"path"} or not isinstance(paths, dict) or not paths:
        return 'must hold `path "<path>" { capabilities = [...] }` blocks and nothing else'
    for path, body in paths.items():
        unknown = sorted(set(body) - PATH_BLOCK_KEYS) if isinstance(body, dict) else []
        if "expiration" in unknown:
            return (
                f"path {path!r}: `expiration` is not supported (an expiring block grants one"
                " thing before and another after; the access audit could not say which)"
            )
        if unknown:
            return (
                f"path {path!r}: unknown key(s) {', '.join(map(str, unknown))}"
                f" (allowed: {', '.join(sorted(PATH_BLOCK_KEYS))})"
            )
    if rules is None:
        return 'must hold `path "<path>" { capabilities = [...] }` blocks and nothing else'
    for rule in rules:
        unknown = sorted(rule.capabilities - CAPABILITIES)
        if unknown:
            return (
                f"path {rule.path!r}: unknown capabilities {', '.join(unknown)}"
                f" (allowed: {', '.join(sorted(CAPABILITIES))})"
            )
        if "+*" in rule.path:
            return f"path {rule.path!r}: Vault refuses `+*` in a path"
    return None


def go_bool(value: str) -> bool:
    """True as the provider (Go's strconv.ParseBool) reads it: 1, t, T, TRUE, true, True."""
    return value in ("1", "t", "T", "TRUE", "true", "True")


def flag(value: Any) -> bool:
    """true or false, as YAML writes them (the engine passes top-level values as text)."""
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ValueError("must be true or false")


HttpUrl = Annotated[str, AfterValidator(http_url)]
NomadVaultAddress = Annotated[str, AfterValidator(optional_nomad_vault_address)]
Flag = Annotated[bool, BeforeValidator(flag)]
Duration = Annotated[int, BeforeValidator(positive_seconds)]
AuthMountPath = Annotated[str, AfterValidator(auth_mount_path)]
SecretMountPath = Annotated[str, AfterValidator(secret_mount_path)]
VaultName = Annotated[str, AfterValidator(vault_name)]
PolicyName = Annotated[str, AfterValidator(policy_name)]
Namespace = Annotated[str, AfterValidator(namespace)]
ProviderNamespace = Annotated[str, AfterValidator(provider_namespace)]
PemFile = Annotated[str, BeforeValidator(pem_from_file)]
Audiences = Annotated[tuple[str, ...], BeforeValidator(string_list), AfterValidator(audiences)]
StringList = Annotated[tuple[str, ...], BeforeValidator(string_list)]
DirectoryPath = Annotated[str, AfterValidator(optional_absolute_path)]
FilePath = Annotated[str, AfterValidator(file_path)]
SshHost = Annotated[str, AfterValidator(ssh_host)]
UnixUser = Annotated[str, AfterValidator(unix_user)]
Port = Annotated[int, AfterValidator(port)]
ShellCommand = Annotated[str, AfterValidator(shell_command)]
SshPublicKey = Annotated[str, AfterValidator(ssh_public_key)]
