"""What every command line shares: the home option, JSON output, and clean errors."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import apsw
import click
import msgspec

from athenad.config import env_name
from athenad.errors import AthenaError, InvalidInput
from athenad.paths import HOME_ENV, Home

_json = msgspec.json.Encoder()

home_option = click.option(
    "--home",
    "home",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory holding athena.db and .athena/ (default: $ATHENA_HOME, else here).",
)


def _home_for_all_commands(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        os.environ[HOME_ENV] = value  # every subcommand resolves the home from it


group_home_option = click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    expose_value=False,
    is_eager=True,
    callback=_home_for_all_commands,
    help="Home for every command (also accepted after the command).",
)


def _database_url_for_all_commands(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> None:
    if value:
        os.environ[env_name("database_url")] = value  # the flag outranks the variable


group_database_url_option = click.option(
    "--database-url",
    default=None,
    metavar="URL",
    expose_value=False,
    is_eager=True,
    callback=_database_url_for_all_commands,
    help="postgresql://user@host:5432/db to keep the queue on a PostgreSQL server "
    "(default: $ATHENA_DATABASE_URL, then athena.toml, else SQLite in the home).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")


class FiniteFloat(click.FloatRange):
    """A float range that also refuses nan (which compares false with every bound)."""

    name = "number"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def resolve_home(home: str | None) -> Home:
    """The home from --home, ATHENA_HOME or the current directory; it must be a directory."""
    resolved = Home.resolve(home)
    if resolved.root.exists() and not resolved.root.is_dir():
        source = "--home" if home else ("ATHENA_HOME" if os.environ.get(HOME_ENV) else "the home")
        raise InvalidInput(f"{source} {resolved.root} is a file, not a directory.")
    return resolved


def print_json(value: Any) -> None:
    """Print a value as one JSON document on stdout."""
    click.echo(_json.encode(value).decode())


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear sentence to stderr and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn Athena's errors, and the system's, into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AthenaError as exc:
            fail(exc.message)
        except UnicodeEncodeError as exc:
            # Bytes that are not UTF-8 (an argument like $'\xff') reach Python as
            # surrogates, which no file or database can store.
            bad = exc.object[exc.start : exc.end]
            fail(f"{bad!r} in {exc.object[:60]!r} is not UTF-8 text.")
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, as shell tools do.
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(141)
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            fail(f"{exc.strerror or exc}{where}.")
        except apsw.Error as exc:
            fail(f"athena.db failed: {exc}.")
        except Exception as exc:
            if not type(exc).__module__.startswith("psycopg"):
                raise
            # A server error the backend did not turn into one of Athena's own.
            fail(f"PostgreSQL failed: {' '.join(str(exc).split()).rstrip('.')}.")
        except KeyboardInterrupt:
            fail("interrupted.", 130)

    return wrapper


class AthenaGroup(click.Group):
    """A command group whose usage errors are one line on stderr, like every other error.

    Commands configure no structlog: library code's warnings reach stderr through
    Python's logging (athenad.util.logs.LibraryLogger), so stdout keeps only the
    command's output; ``athenad start --foreground`` sets up JSON lines for itself.

    ``lazy_commands`` (``{name: ("module:attribute", summary)}``) are commands whose
    module is imported only when they are run or their own help is asked for; the
    group's ``--help`` lists them with the summary. A dotted attribute names a
    subcommand of a group (``sessions_group.continue``).
    """

    def __init__(
        self, *args: Any, lazy_commands: dict[str, tuple[str, str]] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy_commands:
            command = load_command(self.lazy_commands[cmd_name][0])
            self.add_command(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own, with the summary of a command not loaded yet taken from the table.
        rows: list[tuple[str, str | None]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:
                rows.append((name, self.lazy_commands[name][1]))
            elif not command.hidden:
                rows.append((name, None))
        if not rows:
            return
        limit = formatter.width - 6 - max(len(name) for name, _summary in rows)
        lines = []
        for name, summary in rows:
            # A stand-in command cuts the summary short exactly as the real one would.
            command = self.commands[name] if summary is None else click.Command(name, help=summary)
            lines.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(lines)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.ClickException as exc:
            fail(exc.format_message().rstrip("."), exc.exit_code)
        except click.exceptions.Abort:
            fail("aborted.", 1)
        sys.exit(result if isinstance(result, int) else 0)


def load_command(target: str) -> click.Command:
    """The command ``"module:attribute"`` names (``group.sub`` for a group's subcommand)."""
    import importlib

    module, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module)
    for part in attribute.split("."):
        found = found.commands[part] if isinstance(found, click.Group) else getattr(found, part)
    if not isinstance(found, click.Command):
        raise TypeError(f"{target} is not a click command")
    return found
