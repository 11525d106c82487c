"""Deliver the Nomad agent `vault {}` blocks with pulumi-command: files on this machine, and
onto the agents over SSH.

`nomad setup vault` prints the blocks and leaves the pasting to the operator; these commands
close the loop, so a changed setting reaches every agent on the next `pulumi up` and
`pulumi destroy` takes the files away again.

How the engine keeps this to "only on change":
- the file's content travels as the command's `stdin`, so new content is an in-place update,
  which re-runs `create` (write, then reload); unchanged inputs run nothing, and a re-run with
  the same text (say, after a key rotation) finds the file identical and stops before writing
  or reloading;
- what addresses the file (host, port, path) is part of the command's resource name, so a file
  that moves is a new resource: the engine writes the new file, then deletes the old resource,
  which removes the old file. One resource never addresses two files, nor two resources one.
"""

import posixpath
import shlex
from collections.abc import Sequence

import pulumi
from pulumi_command import local, remote

from .settings import NomadAgent, Settings
from .vault_setup import NomadVaultSetup

SERVER_FILE = "vault-server.hcl"
CLIENT_FILE = "vault-client.hcl"
# World-readable: the text holds no secret (it is the plain stack output), and an agent may run
# as a user other than the SSH user who writes it (Nomad servers often run as `nomad`), which a
# 0640 file owned by root could lock out of its own config at the next restart. Restrict
# readers with the directory's permissions instead.
FILE_MODE = "0644"


def script(lines: Sequence[str]) -> str:
    """A POSIX sh script that stops at the first failing line, so a failure fails the `up`."""
    return "\n".join(["set -e", *lines]) + "\n"


def write_lines(path: str) -> list[str]:
    """Write stdin to `path` atomically: into a temp file beside it, then renamed over it, so an
    agent (re)starting meanwhile never reads half a file. The temp name does not end in .hcl,
    so Nomad, which loads every *.hcl of its config directory, never reads it either.

    When the file already holds exactly this text, the script stops there: nothing is written
    and the reload after these lines is skipped. So a change that re-runs the command without
    changing the text (a rotated SSH key, another user or host key) restarts no agent."""
    target = shlex.quote(path)
    return [
        f"tmp=$(mktemp {target}.XXXXXX)",
        """trap 'rm -f "$tmp"' EXIT""",
        'cat > "$tmp"',
        f'if [ -f {target} ] && cmp -s "$tmp" {target}; then exit 0; fi',
        f'chmod {FILE_MODE} "$tmp"',
        f'mv -f "$tmp" {target}',
    ]


def deliver_agent_config(
    name: str,
    settings: Settings,
    component: NomadVaultSetup,
    private_key: pulumi.Output[str] | None,
) -> None:
    """Register the commands that put `component`'s agent config where `settings` say.

    `private_key` must already be a secret Output; it reaches only the SSH connections.
    """
    if settings.nomad_config_dir:
        contents = {
            SERVER_FILE: component.nomad_server_config,
            CLIENT_FILE: component.nomad_client_config,
        }
        for file_name, content in contents.items():
            path = posixpath.join(settings.nomad_config_dir, file_name)
            _local_file(f"{name}-local{path}", path, content, component)
    previous_server: remote.Command | None = None
    for agent in settings.nomad_agents:
        is_server = agent.role == "server"
        content = component.nomad_server_config if is_server else component.nomad_client_config
        # Servers one after the other (a Raft cluster restarted all at once has no leader for a
        # while); clients in parallel.
        after = [previous_server] if is_server and previous_server else []
        command = _agent_file(name, agent, content, private_key, component, after)
        previous_server = command if is_server else previous_server


def _local_file(
    resource_name: str, path: str, content: pulumi.Output[str], parent: pulumi.Resource
) -> local.Command:
    return local.Command(
        resource_name,
        create=script([f"mkdir -p {shlex.quote(posixpath.dirname(path))}", *write_lines(path)]),
        delete=script([f"rm -f {shlex.quote(path)}"]),
        stdin=content,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def agent_resource_name(name: str, agent: NomadAgent) -> str:
    """Derived from the file's address, and only from it: an entry keeps its resource whatever
    else of it changes. IPv6 colons become `_` (no host name has one): `::` separates the parts
    of a Pulumi URN."""
    return f"{name}-agent-{agent.host.replace(':', '_')}-{agent.port}{agent.config_path}"


def _agent_file(
    name: str,
    agent: NomadAgent,
    content: pulumi.Output[str],
    private_key: pulumi.Output[str] | None,
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource],
) -> remote.Command:
    """Write the agent's file and reload it; on delete remove the file and reload again, so the
    running agent never keeps a `vault` block its files no longer have."""
    connection = remote.ConnectionArgs(
        host=agent.host,
        port=agent.port,
        user=agent.user,
        private_key=private_key,
        host_key=agent.host_key or None,
    )
    return remote.Command(
        agent_resource_name(name, agent),
        connection=connection,
        create=script([*write_lines(agent.config_path), agent.reload_command]),
        delete=script([f"rm -f {shlex.quote(agent.config_path)}", agent.reload_command]),
        stdin=content,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
