"""The value types of the stack settings: each one parses, normalises and says what it allows.

Every check raises ValueError with a message that reads after the key's name
("nomad-vault-setup:kvMount = '/': must be a non-empty mount path ..."), so pydantic can
collect them all into one report.
"""

import ipaddress
import json
import posixpath
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

from pydantic import AfterValidator, BeforeValidator

from .durations import parse_duration

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
    """Vault duration ("30m", "1h30m", "1800") -> seconds, which must be positive."""
    try:
        seconds = parse_duration(str(value))
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise ValueError("must be a positive duration in s, m, h (e.g. 90s, 30m, 1h30m)")
    return seconds


def http_url(value: str) -> str:
    """Vault and Nomad reach these over HTTP: anything else can only fail later, less clearly."""
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return value


def mount_path(value: str) -> str:
    """Slashes at the ends are trimmed, as `nomad setup vault` does; empty is refused."""
    path = value.strip("/")
    if not _MOUNT_PATH.fullmatch(path):
        raise ValueError("must be a non-empty mount path of letters, digits, '_', '-', '.' and '/'")
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


def pem_from_file(value: Any) -> str:
    """The setting names a file; the settings carry its PEM text, read once, here."""
    if not value:
        return ""
    try:
        text = Path(str(value)).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"must be a readable PEM file ({error.__class__.__name__})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("must be a PEM file holding at least one CERTIFICATE block")
    return text


def absolute_path(value: str) -> str:
    """A file or directory on a machine Pulumi does not run in: a relative path would depend on
    whichever directory a command happens to start in. Normalised so one file has one spelling.
    """
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise ValueError("must be an absolute path (starting with '/')")
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


def unix_user(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError("must be a user name (letters, digits, '_', '-', '.')")
    return value


def port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be a TCP port between 1 and 65535")
    return value


def shell_command(value: str) -> str:
    """Run by the agent's login shell after each write: empty would leave the agent on its old
    configuration, which Nomad only rereads on a restart."""
    if not value.strip():
        raise ValueError("must be a non-empty shell command (e.g. systemctl restart nomad)")
    return value


def ssh_public_key(value: str) -> str:
    """One OpenSSH public key line (`ssh-ed25519 AAAA...`), as in known_hosts without the host."""
    parts = value.split()
    if value and (len(parts) < 2 or not _SSH_KEY_TYPE.fullmatch(parts[0])):
        raise ValueError(
            "must be the host's public key as one line, e.g. the content of"
            " /etc/ssh/ssh_host_ed25519_key.pub ('ssh-ed25519 AAAA...')"
        )
    return " ".join(parts[:2])


def from_json(value: Any) -> Any:
    """Structured config (lists, objects) reaches the program as JSON text from the engine."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        return json.loads(value)
    return value


def string_list(value: Any) -> Any:
    """A JSON list, or one bare string meaning a list of one."""
    value = from_json(value)
    return [value] if isinstance(value, str) else value


def audiences(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or not all(value.strip() for value in values):
        raise ValueError("must be a non-empty list of non-empty audience strings")
    return values


HttpUrl = Annotated[str, AfterValidator(http_url)]
Duration = Annotated[int, BeforeValidator(positive_seconds)]
AuthMountPath = Annotated[str, AfterValidator(auth_mount_path)]
SecretMountPath = Annotated[str, AfterValidator(secret_mount_path)]
VaultName = Annotated[str, AfterValidator(vault_name)]
PolicyName = Annotated[str, AfterValidator(policy_name)]
Namespace = Annotated[str, AfterValidator(namespace)]
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
