"""Deliver the Nomad agent `vault {}` blocks with pulumi-command, as one component per cluster:
files on this machine, and onto the agents over SSH. What the files hold and how the scripts
guard them is agent_files.py's.
"""

from dataclasses import dataclass

import pulumi
from pulumi_command import local, remote

from .agent_files import (
    CONFIG_DIR_KEY,
    DeliveredFile,
    delete_lines,
    delivered_text,
    local_paths,
    local_write_script,
    script,
    write_lines,
)
from .config import ClusterSettings, NomadAgent
from .ownership import stack_owner
from .resource_types import AGENT_CONFIG_COMPONENT, FormerNames


@dataclass(frozen=True)
class AgentConfigArgs:
    """What one cluster's delivery needs: where to write (its settings), the two texts, and the
    SSH key (already a secret Output; it reaches only the SSH connections)."""

    settings: ClusterSettings
    server_config: pulumi.Output[str]
    client_config: pulumi.Output[str]
    private_key: pulumi.Output[str] | None = None


class AgentConfig(pulumi.ComponentResource):
    """The cluster's two `vault {}` blocks delivered: files on this machine and on agents."""

    def __init__(
        self,
        name: str,
        args: AgentConfigArgs,
        former_names: FormerNames = lambda _name: [],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(AGENT_CONFIG_COMPONENT, name, None, opts)
        settings = args.settings
        owner = stack_owner()
        replace = settings.replace_existing_files
        self.commands: list[local.Command | remote.Command] = []
        if settings.nomad_config_dir:
            contents = [args.server_config, args.client_config]
            for path, content in zip(local_paths(settings), contents, strict=True):
                setting = f"{CONFIG_DIR_KEY} ({settings.nomad_config_dir})"
                file = DeliveredFile(path, owner, setting, replace_existing=replace)
                resource_name = f"{name}-local{path}"
                self.commands.append(
                    _local_file(
                        resource_name,
                        file,
                        delivered_text(owner, content),
                        self._opts(resource_name, former_names),
                    )
                )
        previous_server: remote.Command | None = None
        for agent in settings.nomad_agents:
            is_server = agent.role == "server"
            content = args.server_config if is_server else args.client_config
            # Servers one after the other (a Raft cluster restarted all at once has no leader
            # for a while); clients in parallel.
            after = [previous_server] if is_server and previous_server else []
            location = f"{agent.host}:{agent.port}"
            file = DeliveredFile(
                agent.config_path,
                owner,
                f"the configPath of the nomadAgents entry for {location}",
                location,
                replace,
                agent.reload_command,
            )
            resource_name = agent_resource_name(name, agent)
            opts = pulumi.ResourceOptions.merge(
                self._opts(resource_name, former_names), pulumi.ResourceOptions(depends_on=after)
            )
            text = delivered_text(owner, content)
            command = _agent_file(resource_name, agent, file, text, args.private_key, opts)
            self.commands.append(command)
            previous_server = command if is_server else previous_server
        self.register_outputs({})

    def _opts(self, resource_name: str, former_names: FormerNames) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, aliases=former_names(resource_name))


def _local_file(
    resource_name: str,
    file: DeliveredFile,
    content: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> local.Command:
    return local.Command(
        resource_name,
        create=local_write_script(file),
        delete=script(delete_lines(file)),
        stdin=content,
        opts=opts,
    )


def agent_resource_name(name: str, agent: NomadAgent) -> str:
    """Derived from the file's address, and only from it: an entry keeps its resource whatever
    else of it changes. IPv6 colons become `_` (no host name has one): `::` separates the parts
    of a Pulumi URN."""
    return f"{name}-agent-{agent.host.replace(':', '_')}-{agent.port}{agent.config_path}"


def _agent_file(
    resource_name: str,
    agent: NomadAgent,
    file: DeliveredFile,
    content: pulumi.Output[str],
    private_key: pulumi.Output[str] | None,
    opts: pulumi.ResourceOptions,
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
        resource_name,
        connection=connection,
        create=script(write_lines(file)),
        delete=script(delete_lines(file)),
        stdin=content,
        opts=opts,
    )
