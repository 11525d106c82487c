"""The delivered agent config files: the shell scripts that write and remove them, and the
checks of files on this machine. Pure apart from reading local files; the commands that run
the scripts are agent_config.py's (pulumi-command, imported only when delivery is configured).

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

Whose file it is: every delivered file starts with a marker line naming this stack
("<organization>/<project>/<stack>", `marker_line`); the rendered outputs do not carry it. A
file at the target that does not start with this stack's marker was not written by it:
- `pulumi up` refuses to touch it (the command fails before changing anything, naming the file,
  the setting that points at it and `replaceExistingFiles`), unless the cluster's
  `replaceExistingFiles` is true: then the original is kept, as
  `<path>.before-nomad-vault-setup` (`cp -p`: mode and owner kept), and ours written. Only
  while that name is free: a foreign file when something is kept there already (an earlier
  original, say, and now a hand edit of ours) is refused too, naming both, so that neither is
  lost;
- `pulumi destroy` removes only a file that still carries our marker, and then puts the kept
  original back; a file someone replaced by hand since is left alone (said on stderr).
Only regular files are read, written or put back: a symbolic link (it could lead
anywhere), a FIFO (reading it blocks) or a device at the target is refused by `up` and left by
`destroy`, and so is anything but a regular file at the backup's name.
Files in `nomadConfigDir` on this machine are also checked while the program runs, before any
resource is registered (`local_file_problems`, for the program's preflight), so `preview`
already reports them. Remote agents are checked only by the command itself, on the agent, when
it writes: the program never connects to an agent on its own.

A reload that fails is retried: before writing, the command creates `<path>.reload-pending`
beside the file (no `.hcl` suffix, so Nomad never loads it) and removes it only after the
reload command succeeded. The next run reloads whenever that file is there, even when the text
is unchanged, so `up` keeps failing until the agent has really been reloaded. The reload
command runs as `sh -c '<command>'`: its own syntax (a stray `)` or quote) cannot change the
script around it, whose steps stay as written.
"""

import errno
import os
import posixpath
import shlex
import stat
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from .config import ClusterSettings
from .config.schema import AGENT_FILE_NAMES
from .ownership import marker_line, marker_prefix, stack_owner

SERVER_FILE, CLIENT_FILE = AGENT_FILE_NAMES
# World-readable: the text holds no secret (it is the plain stack output), and an agent may run
# as a user other than the SSH user who writes it (Nomad servers often run as `nomad`), which a
# 0640 file owned by root could lock out of its own config at the next restart. Restrict
# readers with the directory's permissions instead.
FILE_MODE = "0644"
# Beside the target; neither ends in .hcl, so Nomad (which loads every *.hcl of its config
# directory) never reads them.
BACKUP_SUFFIX = ".before-nomad-vault-setup"
PENDING_SUFFIX = ".reload-pending"
# How much of an existing local file the preflight reads: the marker line is far shorter.
FIRST_LINE_LIMIT = 4096
REPLACE_KEY = "nomad-vault-setup:replaceExistingFiles"
CONFIG_DIR_KEY = "nomad-vault-setup:nomadConfigDir"


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


def _say(message: str) -> str:
    return f"printf '%s\\n' {_q(message)} >&2"


def _exists(path: str) -> str:
    """True for anything at `path`: `-e` alone misses a dangling symlink."""
    return f"{{ [ -L {_q(path)} ] || [ -e {_q(path)} ]; }}"


def _not_regular(path: str) -> str:
    """True for what must be neither read nor replaced: a symlink (`-f` would follow it) or
    anything else that is not a regular file (a FIFO's `head` blocks, a device's never ends)."""
    return f"{{ [ -L {_q(path)} ] || [ ! -f {_q(path)} ]; }}"


def _first_line_case(file: DeliveredFile, ours: str, foreign: str, irregular: str) -> list[str]:
    """Run `ours` or `foreign` depending on whether the existing target starts with the marker
    of `file.owner`, or `irregular` (without reading it) when it is not a regular file;
    nothing when there is no target."""
    target = _q(file.path)
    return [
        f"if {_exists(file.path)}; then",
        f"  if {_not_regular(file.path)}; then {irregular}; else",
        f'    case "$(head -n 1 {target} 2>/dev/null || :)" in',
        f"      {_q(marker_prefix(file.owner))}*) {ours} ;;",
        f"      *) {foreign} ;;",
        "    esac",
        "  fi",
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


def not_regular(file: DeliveredFile) -> str:
    """Why `up` leaves a symlink, FIFO, device or directory at the target alone."""
    return (
        f"nomad-vault-setup: refusing to write {file.shown}: it is a symbolic link or not a"
        " regular file, and this stack reads and replaces only regular files (a link could lead"
        f" anywhere); nothing was changed. Remove it, or change {file.setting}."
    )


def backup_taken(file: DeliveredFile) -> str:
    """Why `up` leaves a foreign file alone when the backup's name is taken already."""
    return (
        f"nomad-vault-setup: refusing to replace {file.shown}: its first line is not the marker"
        f" of stack {file.owner}, so this stack did not write it, and {file.backup} already"
        " exists (a file kept by an earlier replacement, or something else), so keeping this one"
        " there would lose the other; nothing was changed. Compare the two and move away the one"
        f" to keep (or delete the one no longer needed): without {file.backup}, pulumi up keeps"
        f" {file.path} there; without {file.path}, pulumi up writes it anew and pulumi destroy"
        f" puts {file.backup} back."
    )


def _reload(command: str) -> str:
    """The reload command run by its own `sh -c`, quoted as one word: its syntax cannot break
    the script's (an unbalanced `)` or quote is that `sh`'s syntax error, so the command fails
    without running), an `exit` or `cd` in it stays inside, and `set -e` stops the script when
    it fails as a whole (it ignores a failure on the left of `&&`, as in
    `test -e x && systemctl ...`, when that list is a line of the script itself). `--`: a
    command starting with `-` is not an option of `sh`."""
    return f"sh -c -- {_q(command)}"


def write_lines(file: DeliveredFile) -> list[str]:
    """Write stdin to `file.path` atomically: into a temp file beside it, then renamed over it,
    so an agent (re)starting meanwhile never reads half a file. The temp name does not end in
    .hcl, so Nomad, which loads every *.hcl of its config directory, never reads it either.

    A target that does not start with this stack's marker is refused before anything changes,
    or (with `replace_existing`) kept as `file.backup` before ours replaces it, unless something
    is at `file.backup` already: then it is refused too. A target that is not a regular file
    (a symlink included) is always refused, unread.

    When the file already holds exactly this text and no reload is pending, the script stops
    there: nothing is written and the reload is skipped. So a change that re-runs the command
    without changing the text (a rotated SSH key, another user or host key) restarts no agent.
    With a `reload_command`, a pending-reload file exists from before the write until the
    reload succeeded, so a failed reload runs again on the next run, text unchanged or not."""
    target = _q(file.path)
    foreign = "foreign=1" if file.replace_existing else f"{_say(refusal(file))}; exit 1"
    irregular = f"{_say(not_regular(file))}; exit 1"
    lines = ["foreign=", *_first_line_case(file, ":", foreign, irregular)]
    if file.replace_existing:
        lines += [
            f'if [ -n "$foreign" ] && {_exists(file.backup)}; then',
            f"  {_say(backup_taken(file))}; exit 1",
            "fi",
        ]
    lines.append(f"tmp=$(mktemp {target}.XXXXXX)")
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
        'if [ -n "$foreign" ]; then',
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
        f"  rm -f {pending}",  # a symlink there would make `>` write through it
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
    reload, and the pending-reload file goes too. Only a regular file is removed, or put
    back: anything else at either name is left as it is (said on stderr)."""
    kept = (
        f"nomad-vault-setup: left {file.shown} as it is: it no longer starts with the marker"
        f" line of stack {file.owner}, so someone replaced it after pulumi up wrote it."
    )
    irregular = (
        f"nomad-vault-setup: left {file.shown} as it is: it is a symbolic link or not a regular"
        " file, so this stack did not write it."
    )
    kept_backup = f"nomad-vault-setup: the file it had replaced is still at {file.backup}."
    odd_backup = (
        f"nomad-vault-setup: left {file.backup} as it is: it is a symbolic link or not a regular"
        f" file, so it was not put back at {file.path}."
    )
    backup = _q(file.backup)
    lines = [
        "kept=",
        *_first_line_case(
            file, f"rm -f {_q(file.path)}", f"kept=1; {_say(kept)}", f"kept=1; {_say(irregular)}"
        ),
        f"if {_exists(file.backup)}; then",
        f'  if [ -n "$kept" ]; then {_say(kept_backup)}',
        f"  elif {_not_regular(file.backup)}; then {_say(odd_backup)}",
        f"  else mv -f {backup} {_q(file.path)}",
        "  fi",
        "fi",
    ]
    if file.reload_command:
        lines += [_reload(file.reload_command), f"rm -f {_q(file.pending)}"]
    return lines


def delivered_text(owner: str, content: pulumi.Input[str]) -> pulumi.Output[str]:
    """What lands in the file: the marker line, then the rendered output unchanged."""
    return pulumi.Output.concat(marker_line(owner), "\n", content)


def local_paths(settings: ClusterSettings) -> list[str]:
    """The two files `nomadConfigDir` receives, server's first."""
    directory = settings.nomad_config_dir
    return [posixpath.join(directory, name) for name in (SERVER_FILE, CLIENT_FILE)]


def _first_line(path: str) -> bytes:
    """The first line of the regular file at `path`, read only up to FIRST_LINE_LIMIT bytes.
    Opened without following a symlink and without blocking (a FIFO put there since the
    caller's `lstat` opens at once), then refused by `fstat` unless it is a regular file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return os.read(fd, FIRST_LINE_LIMIT).split(b"\n", 1)[0]
    finally:
        os.close(fd)


def local_file_problems(settings: ClusterSettings, owner: str | None = None) -> list[str]:
    """The files in `nomadConfigDir` on this machine that `up` would refuse to replace, one
    message each (`owner` defaults to this program's stack, `stack_owner()`): anything there
    that is not a regular file (a symlink included: it is not followed); a file that cannot be
    read; a file without this stack's marker, unless `replaceExistingFiles` is set, and even
    then when its backup's name is taken already. Reads at most the first FIRST_LINE_LIMIT
    bytes of a regular file, so neither a FIFO nor a device can stall the preview; changes
    nothing."""
    if not settings.nomad_config_dir:
        return []
    owner = owner or stack_owner()
    prefix = marker_prefix(owner)
    replace = settings.replace_existing_files
    problems = []
    for path in local_paths(settings):
        backup = path + BACKUP_SUFFIX
        said = f"{CONFIG_DIR_KEY} = {settings.nomad_config_dir!r}: {path}"
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                problems.append(
                    f"{said} is not a regular file (a symbolic link, directory, FIFO or device):"
                    " pulumi up reads and replaces only regular files, so it would refuse it."
                    " Remove it, or choose another directory."
                )
                continue
            if _first_line(path).startswith(prefix.encode()):
                continue
            why = f"does not start with this stack's marker line ({prefix} ...)"
        except FileNotFoundError:
            continue
        except OSError as error:
            why = f"cannot be read to look for this stack's marker line ({error.strerror})"
            if replace:  # `up` would fail to copy it, half-way
                problems.append(
                    f"{said} already exists and {why}, so pulumi up could not keep a copy of"
                    " it before replacing it. Make it readable, move it away, or choose another"
                    " directory."
                )
                continue
        if not replace:
            problems.append(
                f"{said} already exists and {why}, so this stack did not write it: pulumi up"
                f" would overwrite it and pulumi destroy delete it. Move it away, choose another"
                f" directory, or set {REPLACE_KEY} to true: then pulumi up keeps it as {backup}"
                " and pulumi destroy puts it back."
            )
        elif os.path.lexists(backup):
            problems.append(
                f"{said} already exists and {why}, so this stack did not write it, and {backup}"
                " exists too (kept by an earlier replacement, or something else): keeping"
                f" {path} there would lose the other, so pulumi up would refuse. Compare the two"
                " and move away the one to keep (or delete the one no longer needed)."
            )
    return problems


def local_write_script(file: DeliveredFile) -> str:
    """The script writing a file on this machine (its directory made first)."""
    return script([f"mkdir -p {_q(posixpath.dirname(file.path))}", *write_lines(file)])
