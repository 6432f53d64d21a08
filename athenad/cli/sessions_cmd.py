"""``athenactl sessions ...``, ``athenactl backup`` and ``athenactl restore``.

JSON output (``--json``), stable keys:

* a session: ``id, name, tags, git_branch, cwd, created_at, updated_at,
  message_count, size, mtime_ns, imported_from``
* a message: ``type ("message"), seq, role, timestamp, content, checksum``
  (+ ``metadata`` when set), the same keys as a line of the session file
* ``list``: ``[session, ...]`` most recently active first
* ``show``, ``continue``, ``resume``: ``{"session": session, "messages": [message, ...]}``
* ``new``: ``{"id"}``; ``add``: a message; ``import``: ``{"id", "imported_from"}``;
  ``import-claude``: ``{"files": [{"file", "status" (created, updated, unchanged),
  "id", "claude_session_id", "messages", "raw_events", "tokens_in", "tokens_out"}],
  "created", "updated", "unchanged", "messages", "raw_events", "errors": [{"file",
  "error"}]}``;
  ``reindex``: ``{"sessions"}``; ``rm``: ``{"id", "removed"}``
* ``backup``: ``{"path", "database", "files"}``; ``restore``: the same plus
  ``previous_saved_to``

The read-only commands (list, show, continue, resume, export, reindex, rm) refuse a
home without ``.athena/``; new, add, import and import-claude create it. Output cut short by the
reader (``| head``) ends the command quietly with exit code 141, like SIGPIPE.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from athenad.cli.common import fail, handle_errors, home_option, json_option, print_json
from athenad.cli.common import resolve_home as _resolve_home
from athenad.config import load_config
from athenad.errors import InvalidInput
from athenad.storage import backup as backup_mod
from athenad.storage import open_stores
from athenad.storage.contract import SessionStore
from athenad.storage.sessions import Message, Role, SessionInfo
from athenad.storage.sessions.transfer import FORMATS, export_session, import_session
from athenad.store.backend import SQLITE, backend_of
from athenad.util.fsutil import atomic_write
from athenad.util.logs import configure_logging

PICKER_ROWS = 20


def _manager(home: str | None, *, create: bool = False) -> SessionStore:
    """The home's sessions: files, or the tables of its PostgreSQL database.

    Unless ``create``, a home on files must already have ``.athena/``. The store is
    closed when the command ends.
    """
    resolved = _resolve_home(home)
    settings = load_config(resolved).daemon
    on_files = backend_of(settings) == SQLITE
    if on_files and not create and not resolved.state_dir.is_dir():
        raise InvalidInput(f"{resolved.root} is not an Athena home (it has no .athena/ directory).")
    stores = open_stores(resolved, settings)
    click.get_current_context().call_on_close(stores.close)
    return stores.sessions


def _pipe_safe(func: Callable[..., Any]) -> Callable[..., Any]:
    """Stop quietly (exit 141) when the reader of stdout went away, as with ``| head``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except BrokenPipeError:
            # Point stdout at /dev/null so the flush at exit does not complain again.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)

    return wrapper


def _read_utf8(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what} is not UTF-8 text (byte {exc.start} is not).") from None


class _Stderr:
    """Whatever sys.stderr is at the time of writing (it may be swapped, as in tests)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _quiet_logs() -> None:
    """Keep stdout for output: events go to stderr, warnings and worse only."""
    configure_logging(_Stderr(), level="warning", json=False)  # type: ignore[arg-type]


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


@contextlib.contextmanager
def _repair_warnings() -> Iterator[None]:
    """Show a repaired session's warning as one 'warning:' line on stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for item in caught:
        click.echo(f"warning: {item.message}", err=True)


def _session_line(info: SessionInfo) -> str:
    name = info.name or ""
    tags = f" [{', '.join(info.tags)}]" if info.tags else ""
    branch = info.git_branch or "-"
    return (
        f"{info.id}  {info.updated_at[:19]}  {branch:<16}  "
        f"{info.message_count:>5} msgs  {name}{tags}"
    )


def _label(message: Message) -> str:
    """The role, and what the message is when it is more than text (``tool_use Bash``)."""
    meta = message.metadata or {}
    kind = meta.get("kind")
    if not isinstance(kind, str) or kind == "text":
        return message.role
    tool = meta.get("tool")
    return (
        f"{message.role} ({kind} {tool})" if isinstance(tool, str) else f"{message.role} ({kind})"
    )


def _print_messages(messages: list[Message]) -> None:
    for message in messages:
        click.echo(f"[{message.seq}] {_label(message)}  {message.timestamp}")
        for line in message.content.split("\n"):
            click.echo(f"    {line}")


def _show(manager: SessionStore, session_id: str, last: int | None, as_json: bool) -> None:
    with _repair_warnings():
        messages = manager.get_messages(session_id)
    info = manager.get_session(session_id)
    if last is not None:
        messages = messages[-last:] if last > 0 else []
    if as_json:
        print_json({"session": info, "messages": messages})
        return
    click.echo(f"session   {info.id}")
    click.echo(f"name      {info.name or '-'}")
    click.echo(f"branch    {info.git_branch or '-'}")
    click.echo(f"tags      {', '.join(info.tags) or '-'}")
    click.echo(f"created   {info.created_at}")
    click.echo(f"updated   {info.updated_at}")
    click.echo(f"messages  {info.message_count}")
    if info.imported_from:
        click.echo(f"imported  from {info.imported_from}")
    if messages:
        click.echo("")
        _print_messages(messages)


@click.group("sessions")
def sessions_group() -> None:
    """Conversation sessions: JSON Lines files under .athena/sessions/ (tables on PostgreSQL)."""
    _quiet_logs()


@sessions_group.command("list")
@click.option("--branch", "branch", default=None, help="Only sessions of this git branch.")
@json_option
@home_option
@handle_errors
@_pipe_safe
def list_cmd(branch: str | None, as_json: bool, home: str | None) -> None:
    """List sessions, most recently active first."""
    sessions = _manager(home).list_sessions(git_branch=branch)
    if as_json:
        print_json(sessions)
        return
    if not sessions:
        click.echo("no sessions." if branch is None else f"no sessions on branch {branch}.")
    for info in sessions:
        click.echo(_session_line(info))


@sessions_group.command("show")
@click.argument("session_id")
@click.option("--last", type=click.IntRange(min=0), default=None, help="Only the last N messages.")
@json_option
@home_option
@handle_errors
@_pipe_safe
def show_cmd(session_id: str, last: int | None, as_json: bool, home: str | None) -> None:
    """Show a session's details and messages."""
    _show(_manager(home), session_id, last, as_json)


@sessions_group.command("new")
@click.option("--name", default=None, help="A name for the session.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--branch", default=None, help="Git branch to record (default: the current one).")
@json_option
@home_option
@handle_errors
@_pipe_safe
def new_cmd(
    name: str | None, tags: tuple[str, ...], branch: str | None, as_json: bool, home: str | None
) -> None:
    """Create a session and print its id."""
    session_id = _manager(home, create=True).create_session(name=name, tags=tags, git_branch=branch)
    print_json({"id": session_id}) if as_json else click.echo(session_id)


@sessions_group.command("add")
@click.argument("session_id")
@click.option(
    "--role",
    required=True,
    type=click.Choice([r.value for r in Role], case_sensitive=False),
    help="Who says it.",
)
@click.argument("text")
@json_option
@home_option
@handle_errors
@_pipe_safe
def add_cmd(session_id: str, role: str, text: str, as_json: bool, home: str | None) -> None:
    """Append a message (TEXT, or - to read it from stdin)."""
    if text == "-":
        content = _read_utf8(sys.stdin.buffer.read(), "the message on stdin")
    else:
        content = text
    message = _manager(home, create=True).add_message(session_id, role, content)
    print_json(message) if as_json else click.echo(str(message.seq))


@sessions_group.command("continue")
@click.option("--branch", default=None, help="Branch to look on (default: the current one).")
@click.option("--last", type=click.IntRange(min=0), default=10, show_default=True)
@json_option
@home_option
@handle_errors
@_pipe_safe
def continue_cmd(branch: str | None, last: int, as_json: bool, home: str | None) -> None:
    """Show the most recent session on the current git branch."""
    manager = _manager(home)
    branch = branch or manager.current_branch()
    # Outside a git repository (no branch) the most recent session of any branch.
    session_id = manager.resume_most_recent_session(git_branch=branch)
    if session_id is None:
        fail(f"no session to continue{f' on branch {branch}' if branch else ''}.")
    assert session_id is not None
    _show(manager, session_id, last, as_json)


def _matches(info: SessionInfo, query: str) -> bool:
    fields = [info.id, info.name or "", info.git_branch or "", *info.tags]
    return any(query in value.lower() for value in fields)


def _pick(manager: SessionStore) -> str:
    sessions = manager.list_sessions()
    if not sessions:
        fail("there are no sessions to resume.")
    query = ""
    while True:
        shown = [s for s in sessions if _matches(s, query)][:PICKER_ROWS]
        if not shown:
            click.echo(f"no session matches {query!r}.")
        for number, info in enumerate(shown, start=1):
            click.echo(f"{number:>3}  {_session_line(info)}")
        answer = click.prompt(
            "Number to resume, text to search, empty to cancel", default="", show_default=False
        ).strip()
        if not answer:
            fail("no session chosen.")
        if answer.isdigit() and 1 <= int(answer) <= len(shown):
            return shown[int(answer) - 1].id
        query = answer.lower()


@sessions_group.command("resume")
@click.argument("session_id", required=False)
@click.option("--last", type=click.IntRange(min=0), default=10, show_default=True)
@json_option
@home_option
@handle_errors
@_pipe_safe
def resume_cmd(session_id: str | None, last: int, as_json: bool, home: str | None) -> None:
    """Show a session to resume; without ID, pick one interactively."""
    manager = _manager(home)
    if session_id is None:
        if not _interactive():
            fail("no session id given and no terminal for the picker; pass an ID.", 2)
        session_id = _pick(manager)
    _show(manager, session_id, last, as_json)


@sessions_group.command("export")
@click.argument("session_id")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None)
@click.option("--force", is_flag=True, help="Replace OUTPUT if it exists.")
@home_option
@handle_errors
@_pipe_safe
def export_cmd(
    session_id: str, fmt: str, output: str | None, force: bool, home: str | None
) -> None:
    """Export a session as Markdown, JSON or JSON Lines (to stdout, or -o FILE)."""
    manager = _manager(home)
    target = _export_target(output, _resolve_home(home).state_dir, force) if output else None
    with _repair_warnings():
        text = export_session(manager, session_id, fmt)
    if target is None:
        click.echo(text, nl=False)
    else:
        atomic_write(target, text.encode("utf-8"), mode=None)  # the user's own file


def _export_target(output: str, state_dir: Path, force: bool) -> Path:
    """Where an export may go: never into Athena's own files, never over a file unasked."""
    target = Path(output).expanduser().resolve()
    state = state_dir.resolve()
    if target == state or state in target.parents or ".athena" in target.parts:
        raise InvalidInput(
            f"{output} is inside Athena's state directory (.athena/); export to a file outside it."
        )
    if target.is_dir():
        raise InvalidInput(f"{output} is a directory; give a file name.")
    if target.exists() and not force:
        raise InvalidInput(f"{output} exists; pass --force to replace it.")
    if not target.parent.is_dir():
        raise InvalidInput(f"the directory {target.parent} does not exist.")
    return target


@sessions_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@json_option
@home_option
@handle_errors
@_pipe_safe
def import_cmd(file: str, as_json: bool, home: str | None) -> None:
    """Import a session exported as md, json or jsonl."""
    data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    manager = _manager(home, create=True)
    session_id = import_session(manager, data, source=file)
    info = manager.get_session(session_id)
    if as_json:
        print_json({"id": session_id, "imported_from": info.imported_from})
    elif info.imported_from:
        click.echo(f"{session_id} (imported from {info.imported_from})")
    else:
        click.echo(session_id)


@sessions_group.command("import-claude")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@json_option
@home_option
@handle_errors
@_pipe_safe
def import_claude_cmd(paths: tuple[str, ...], as_json: bool, home: str | None) -> None:
    """Import Claude Code transcripts: .jsonl files, or folders of them (recursively).

    Importing a file again leaves its session as it is, or rewrites it (same id) when
    the conversation went on. Each file's problem is reported on its own; the exit
    code is 1 when nothing could be imported.
    """
    from athenad.storage.sessions.claude_import import import_claude

    report = import_claude(_manager(home, create=True), list(paths))
    if as_json:
        print_json(report.summary())
    else:
        for done in report.files:
            raw = f", {done.raw_events} kept raw" if done.raw_events else ""
            click.echo(f"{done.status:<9}  {done.id}  {done.messages} messages{raw}  {done.file}")
    for problem in report.errors:
        click.echo(f"error: {problem['error']}", err=True)
    if not report.files:
        sys.exit(1)


@sessions_group.command("reindex")
@json_option
@home_option
@handle_errors
@_pipe_safe
def reindex_cmd(as_json: bool, home: str | None) -> None:
    """Rebuild index.json from the session files (on PostgreSQL: count the sessions)."""
    count = _manager(home).reindex()
    print_json({"sessions": count}) if as_json else click.echo(f"indexed {count} sessions.")


@sessions_group.command("rm")
@click.argument("session_id")
@json_option
@home_option
@handle_errors
@_pipe_safe
def rm_cmd(session_id: str, as_json: bool, home: str | None) -> None:
    """Delete a session (its file and sidecars, or its rows)."""
    _manager(home).delete_session(session_id)
    print_json({"id": session_id, "removed": True}) if as_json else click.echo(
        f"removed {session_id}."
    )


@click.command("backup")
@click.argument("dest", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace DEST if it exists.")
@json_option
@home_option
@handle_errors
@_pipe_safe
def backup_command(dest: str, force: bool, as_json: bool, home: str | None) -> None:
    """Write athena.db (a consistent snapshot) and .athena/ into one archive at DEST."""
    _quiet_logs()
    if not dest.strip():
        fail("backup needs a file name for the archive.")
    if Path(dest).exists() and not force:
        fail(f"{dest} already exists; pass --force to replace it.")
    result = backup_mod.backup(_resolve_home(home), dest)
    if as_json:
        print_json(result)
    else:
        click.echo(f"backup written to {result['path']} ({result['files']} files).")


@click.command("restore")
@click.argument("src", type=click.Path(exists=True, dir_okay=False))
@json_option
@home_option
@handle_errors
@_pipe_safe
def restore_command(src: str, as_json: bool, home: str | None) -> None:
    """Restore athena.db and .athena/ from an archive (the daemon must be stopped)."""
    _quiet_logs()
    result = backup_mod.restore(_resolve_home(home), src)
    if as_json:
        print_json(result)
        return
    click.echo(f"restored from {result['path']}.")
    if result["previous_saved_to"]:
        click.echo(f"the replaced files were moved to {result['previous_saved_to']}.")


__all__ = ["backup_command", "restore_command", "sessions_group"]
