"""Deliver the Nomad agent `vault {}` blocks with pulumi-command: files on this machine, and
onto the agents over SSH.

`nomad setup vault` prints the blocks and leaves the pasting to the operator; these commands
close the loop, so a changed setting reaches every agent on the next `pulumi up` and
`pulumi destroy` takes the files away again.

How the engine keeps this to "only on change":
- the file's content travels as the command's `stdin`, so new content is an in-place update,
  which re-runs `create` (write, then reload); unchanged inputs run nothing, and a re-run with
  the same text (say, after a key rotation) finds the file identical and stops before writing
  or reloading, unless a reload is still pending (below);
- what addresses the file (host, port, path) is part of the command's resource name, so a file
  that moves is a new resource: the engine writes the new file, then deletes the old resource,
  which removes the old file. One resource never addresses two files, nor two resources one.

Whose file it is: every delivered file starts with a marker line naming this project and stack
(`marker_line`); the rendered outputs do not carry it. A file at the target that does not start
with this stack's marker was not written by it:
- `pulumi up` refuses to touch it (the command fails before changing anything, naming the file,
  the setting that points at it and `replaceExistingFiles`), unless the cluster's
  `replaceExistingFiles` is true: then the original is kept once, as
  `<path>.before-nomad-vault-setup` (`cp -p`: mode and owner kept), and ours written;
- `pulumi destroy` removes only a file that still carries our marker, and then puts the kept
  original back; a file someone replaced by hand since is left alone (said on stderr).
Files in `nomadConfigDir` on this machine are also checked while the program runs, before any
resource is registered (`local_file_problems`, for the program's preflight), so `preview`
already reports them. Remote agents are checked only by the command itself, on the agent, when
it writes: the program never connects to an agent on its own.

A reload that fails is retried: before writing, the command creates `<path>.reload-pending`
beside the file (no `.hcl` suffix, so Nomad never loads it) and removes it only after the
reload command succeeded. The next run reloads whenever that file is there, even when the text
is unchanged, so `up` keeps failing until the agent has really been reloaded.
"""

import os
import posixpath
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
from pulumi_command import local, remote

from .ownership import marker_line, marker_prefix
from .settings import NomadAgent, Settings
from .vault_setup import NomadVaultSetup

SERVER_FILE = "vault-server.hcl"
CLIENT_FILE = "vault-client.hcl"
# World-readable: the text holds no secret (it is the plain stack output), and an agent may run
# as a user other than the SSH user who writes it (Nomad servers often run as `nomad`), which a
# 0640 file owned by root could lock out of its own config at the next restart. Restrict
# readers with the directory's permissions instead.
FILE_MODE = "0644"
# Beside the target; neither ends in .hcl, so Nomad (which loads every *.hcl of its config
# directory) never reads them.
BACKUP_SUFFIX = ".before-nomad-vault-setup"
PENDING_SUFFIX = ".reload-pending"
REPLACE_KEY = "nomad-vault-setup:replaceExistingFiles"
CONFIG_DIR_KEY = "nomad-vault-setup:nomadConfigDir"


def stack_owner() -> str:
    """This program's "<project>/<stack>", as the marker names it."""
    return f"{pulumi.get_project()}/{pulumi.get_stack()}"


@dataclass(frozen=True)
class DeliveredFile:
    """One file a stack writes, and what its scripts need to know about it.

    `location` says where the file is, for messages ("" on this machine, else "host:port");
    `setting` names what points at it, for the message that refuses a foreign file.
    `reload_command` ("" for none) runs after each write and after the delete.
    """

    path: str
    owner: str
    setting: str
    location: str = ""
    replace_existing: bool = False
    reload_command: str = ""

    @property
    def backup(self) -> str:
        return self.path + BACKUP_SUFFIX

    @property
    def pending(self) -> str:
        return self.path + PENDING_SUFFIX

    @property
    def shown(self) -> str:
        return f"{self.path} on {self.location}" if self.location else self.path


def script(lines: Sequence[str]) -> str:
    """A POSIX sh script that stops at the first failing line, so a failure fails the `up`."""
    return "\n".join(["set -e", *lines]) + "\n"


def _q(text: str) -> str:
    return shlex.quote(text)


def _first_line_case(file: DeliveredFile, ours: str, foreign: str) -> list[str]:
    """Run `ours` or `foreign` depending on whether the existing target starts with the marker
    of `file.owner`; nothing when there is no target."""
    target = _q(file.path)
    return [
        f"if [ -e {target} ] || [ -L {target} ]; then",
        f'  case "$(head -n 1 {target} 2>/dev/null || :)" in',
        f"    {_q(marker_prefix(file.owner))}*) {ours} ;;",
        f"    *) {foreign} ;;",
        "  esac",
        "fi",
    ]


def refusal(file: DeliveredFile) -> str:
    """Why `up` leaves a foreign file alone, and the ways out."""
    return (
        f"nomad-vault-setup: refusing to overwrite {file.shown}: it exists and its first line"
        f' is not the marker of stack {file.owner} ("{marker_prefix(file.owner)} ..."), so this'
        f" stack did not write it; the file was left as it is. Move it away, change"
        f" {file.setting}, or set {REPLACE_KEY} to true: then pulumi up keeps the file as"
        f" {file.backup} and pulumi destroy puts it back."
    )


def _reload(command: str) -> str:
    """The reload command in a subshell: `set -e` then stops the script when the command fails
    as a whole (it ignores a failure on the left of `&&`, as in `test -e x && systemctl ...`,
    when that list is a line of the script itself), and an `exit` or `cd` in it stays inside.
    The newline keeps `)` out of a trailing comment."""
    return f"( {command}\n)"


def write_lines(file: DeliveredFile) -> list[str]:
    """Write stdin to `file.path` atomically: into a temp file beside it, then renamed over it,
    so an agent (re)starting meanwhile never reads half a file. The temp name does not end in
    .hcl, so Nomad, which loads every *.hcl of its config directory, never reads it either.

    A target that does not start with this stack's marker is refused before anything changes,
    or (with `replace_existing`) kept once as `file.backup` before ours replaces it.

    When the file already holds exactly this text and no reload is pending, the script stops
    there: nothing is written and the reload is skipped. So a change that re-runs the command
    without changing the text (a rotated SSH key, another user or host key) restarts no agent.
    With a `reload_command`, a pending-reload file exists from before the write until the
    reload succeeded, so a failed reload runs again on the next run, text unchanged or not."""
    target = _q(file.path)
    refuse = f"printf '%s\\n' {_q(refusal(file))} >&2; exit 1"
    foreign = "foreign=1" if file.replace_existing else refuse
    lines = ["foreign=", *_first_line_case(file, ":", foreign), f"tmp=$(mktemp {target}.XXXXXX)"]
    reload = file.reload_command
    if reload:
        failed = (
            f"nomad-vault-setup: {file.shown} is written, but its reload command failed:"
            f" {reload} -- the agent may still run its old configuration; the next pulumi up"
            f" runs the reload again ({file.pending} marks it as pending)."
        )
        lines += [
            f"reload_failed={_q(failed)}",
            "step=write",
            "on_exit() {",
            "  status=$?",
            '  rm -f "$tmp"',
            '  if [ "$status" != 0 ] && [ "$step" = reload ]; then',
            "    printf '%s\\n' \"$reload_failed\" >&2",
            "  fi",
            "}",
            "trap on_exit EXIT",
        ]
    else:
        lines.append("""trap 'rm -f "$tmp"' EXIT""")
    backup = _q(file.backup)
    write = [
        f'if [ -n "$foreign" ] && [ ! -e {backup} ]; then',
        f"  bak=$(mktemp {backup}.XXXXXX)",
        f'  cp -p {target} "$bak" || {{ rm -f "$bak"; exit 1; }}',
        f'  mv -f "$bak" {backup}',
        "fi",
        f'chmod {FILE_MODE} "$tmp"',
        f'mv -f "$tmp" {target}',
    ]
    lines += ['cat > "$tmp"', f'if [ -f {target} ] && cmp -s "$tmp" {target}; then']
    if not reload:
        return [*lines, "  exit 0", "fi", *write]
    pending = _q(file.pending)
    return [
        *lines,
        f"  if [ ! -e {pending} ]; then exit 0; fi",
        "else",
        f"  : > {pending}",
        *(f"  {line}" for line in write),
        "fi",
        "step=reload",
        _reload(reload),
        "step=done",
        f"rm -f {pending}",
    ]


def delete_lines(file: DeliveredFile) -> list[str]:
    """Remove the file only while it still carries this stack's marker, and put back the
    original it replaced; a file replaced by hand since is left alone (said on stderr). Then
    reload, and the pending-reload file goes too."""
    kept = (
        f"nomad-vault-setup: left {file.shown} as it is: it no longer starts with the marker"
        f" line of stack {file.owner}, so someone replaced it after pulumi up wrote it."
    )
    kept_backup = f"nomad-vault-setup: the file it had replaced is still at {file.backup}."
    backup = _q(file.backup)
    lines = [
        "kept=",
        *_first_line_case(file, f"rm -f {_q(file.path)}", f"kept=1; printf '%s\\n' {_q(kept)} >&2"),
        f"if [ -e {backup} ]; then",
        f'  if [ -z "$kept" ]; then mv -f {backup} {_q(file.path)};'
        f" else printf '%s\\n' {_q(kept_backup)} >&2; fi",
        "fi",
    ]
    if file.reload_command:
        lines += [_reload(file.reload_command), f"rm -f {_q(file.pending)}"]
    return lines


def delivered_text(owner: str, content: pulumi.Input[str]) -> pulumi.Output[str]:
    """What lands in the file: the marker line, then the rendered output unchanged."""
    return pulumi.Output.concat(marker_line(owner), "\n", content)


def _local_paths(settings: Settings) -> list[str]:
    directory = settings.nomad_config_dir
    return [posixpath.join(directory, name) for name in (SERVER_FILE, CLIENT_FILE)]


def local_file_problems(settings: Settings, owner: str | None = None) -> list[str]:
    """The files in `nomadConfigDir` on this machine that `up` would refuse to replace: one
    message per file that exists without this stack's marker (`owner` defaults to this
    program's project/stack). None when `replaceExistingFiles` is set: those are kept and
    restored instead. Reads the files; changes nothing."""
    if not settings.nomad_config_dir or settings.replace_existing_files:
        return []
    owner = owner or stack_owner()
    prefix = marker_prefix(owner)
    problems = []
    for path in _local_paths(settings):
        if not os.path.lexists(path):
            continue
        try:
            with open(path, "rb") as existing:
                if existing.readline().startswith(prefix.encode()):
                    continue
            why = f"does not start with this stack's marker line ({prefix} ...)"
        except OSError as error:
            why = f"cannot be read to look for this stack's marker line ({error.strerror})"
        problems.append(
            f"{CONFIG_DIR_KEY} = {settings.nomad_config_dir!r}: {path} already exists and {why},"
            f" so this stack did not write it: pulumi up would overwrite it and pulumi destroy"
            f" delete it. Move it away, choose another directory, or set {REPLACE_KEY} to"
            f" true: then pulumi up keeps it as {path}{BACKUP_SUFFIX} and pulumi destroy puts"
            " it back."
        )
    return problems


def deliver_agent_config(
    name: str,
    settings: Settings,
    component: NomadVaultSetup,
    private_key: pulumi.Output[str] | None,
) -> None:
    """Register the commands that put `component`'s agent config where `settings` say.

    `private_key` must already be a secret Output; it reaches only the SSH connections.
    """
    owner = stack_owner()
    replace = settings.replace_existing_files
    if settings.nomad_config_dir:
        contents = [component.nomad_server_config, component.nomad_client_config]
        for path, content in zip(_local_paths(settings), contents, strict=True):
            setting = f"{CONFIG_DIR_KEY} ({settings.nomad_config_dir})"
            file = DeliveredFile(path, owner, setting, replace_existing=replace)
            _local_file(f"{name}-local{path}", file, delivered_text(owner, content), component)
    previous_server: remote.Command | None = None
    for agent in settings.nomad_agents:
        is_server = agent.role == "server"
        content = component.nomad_server_config if is_server else component.nomad_client_config
        # Servers one after the other (a Raft cluster restarted all at once has no leader for a
        # while); clients in parallel.
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
        text = delivered_text(owner, content)
        command = _agent_file(name, agent, file, text, private_key, component, after)
        previous_server = command if is_server else previous_server


def _local_file(
    resource_name: str, file: DeliveredFile, content: pulumi.Output[str], parent: pulumi.Resource
) -> local.Command:
    return local.Command(
        resource_name,
        create=script([f"mkdir -p {_q(posixpath.dirname(file.path))}", *write_lines(file)]),
        delete=script(delete_lines(file)),
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
    file: DeliveredFile,
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
        create=script(write_lines(file)),
        delete=script(delete_lines(file)),
        stdin=content,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
