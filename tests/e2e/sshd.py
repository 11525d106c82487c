"""A throw-away OpenSSH server standing in for a Nomad agent's host.

It listens on 127.0.0.1 on a free port, with a host key and a user key generated for it, lets
in only the current user with that key, keeps everything (config, keys, PID file, log) in its
own directory, and is stopped by its PID.
"""

import getpass
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.proc import free_port, spawn, stop

SSHD = Path("/usr/sbin/sshd")
INSTALL_HINT = (
    f"the delivery e2e tests need OpenSSH's server at {SSHD}: install it with "
    "`apt-get update && apt-get install -y --no-install-recommends openssh-server` "
    "(CI's .ci/run does this)"
)
START_TIMEOUT = 10.0
# Run as root, sshd needs its privilege separation directory, which Debian's service unit
# would create (RuntimeDirectory=sshd); run as another user, it never looks for it.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class SshServer:
    host: str
    port: int
    user: str
    private_key: str
    host_key: str  # the `ssh-ed25519 AAAA...` line of its host key
    pid: int
    log_path: Path


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
    )


def _config(directory: Path, port: int) -> Path:
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {directory / 'host_key'}",
                f"PidFile {directory / 'sshd.pid'}",
                f"AuthorizedKeysFile {directory / 'authorized_keys'}",
                f"AllowUsers {getpass.getuser()}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",  # pytest's temp dirs are not laid out like ~/.ssh
                "LogLevel VERBOSE",
                "",
            ]
        )
    )
    return config


def _wait_for_banner(port: int, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}):\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(64).startswith(b"SSH-2.0-"):
                    return
        except OSError:
            time.sleep(0.05)
    stop(proc.pid)
    raise RuntimeError(f"sshd did not answer within {START_TIMEOUT}s:\n{log_path.read_text()}")


def start(directory: Path) -> SshServer:
    """Generate the keys, write the config, start `sshd -D` and wait for its banner."""
    if not SSHD.is_file():
        raise FileNotFoundError(INSTALL_HINT)
    directory.mkdir(parents=True, exist_ok=True)
    _keygen(directory / "host_key")
    _keygen(directory / "user_key")
    (directory / "authorized_keys").write_text((directory / "user_key.pub").read_text())
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    port = free_port()
    log_path = directory / "sshd.log"
    proc = spawn([str(SSHD), "-D", "-e", "-f", str(_config(directory, port))], log_path)
    _wait_for_banner(port, proc, log_path)
    return SshServer(
        host="127.0.0.1",
        port=port,
        user=getpass.getuser(),
        private_key=(directory / "user_key").read_text(),
        host_key=" ".join((directory / "host_key.pub").read_text().split()[:2]),
        pid=proc.pid,
        log_path=log_path,
    )
