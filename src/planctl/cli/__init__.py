"""The ``planctl`` command line: global options, error handling, sub-commands.

Commands are thin: parse, call one library function, render with Rich. Heavy
libraries are imported inside the commands, so ``planctl --help`` stays fast.
All expected errors become one line on stderr and an exit code here, in
:meth:`PlanctlGroup.invoke`, and nowhere else.
"""

from __future__ import annotations

import copy
import sys
from inspect import getdoc
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from planctl import __version__
from planctl.cli import signals
from planctl.cli.context import Hooks, State, err_console
from planctl.errors import ExitCode, PlanctlError


class PlanctlGroup(TyperGroup):
    """Maps planctl's errors to a one-line message and an exit code, in one place."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (| head): not an error
            raise typer.Exit(signals.quiet_broken_pipe()) from None
        except PlanctlError as error:
            report_error(ctx, error)
            raise typer.Exit(int(error.exit_code)) from None
        except OSError as error:  # an unexpected I/O failure: still one line, no traceback
            where = f" ({error.filename})" if error.filename else ""
            report_error(
                ctx,
                PlanctlError(
                    f"{error.strerror or error}{where}",
                    "check the path, its permissions and free space",
                ),
            )
            raise typer.Exit(int(ExitCode.FAILED)) from None
        except Exception as error:
            if not _is_driver_error(error):
                raise  # a bug: the traceback is the report
            report_error(ctx, _database_error(ctx, error))
            raise typer.Exit(int(ExitCode.FAILED)) from None
        except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM, SIGHUP (cli/signals.py)
            err_console().print(f"[red]interrupted[/red] ({str(interrupt) or 'SIGINT'})")
            raise typer.Exit(signals.exit_code(interrupt)) from None


def _is_driver_error(error: BaseException) -> bool:
    """A database driver's error that no library function translated (one line, exit 1)."""
    module = type(error).__module__ or ""
    return module.split(".")[0] in ("psycopg", "sqlite3", "sqlalchemy", "_sqlite3")


def _database_error(ctx: Any, error: Exception) -> PlanctlError:
    from planctl.db.engine import describe_db_error

    state = ctx.obj if isinstance(ctx.obj, State) else None
    url = state.settings.database_url if state is not None and state._settings else ""
    return describe_db_error(error, url)


def report_error(ctx: Any, error: PlanctlError) -> None:
    state = ctx.obj if isinstance(ctx.obj, State) else None
    if state is not None and state.debug:
        err_console().print_exception()
    from rich.markup import escape

    # escaped: a message may quote text with brackets (a blocker's query, a file name)
    message = f"[bold red]error:[/bold red] {escape(error.message)}"
    if error.hint:
        message += f" [dim]— {escape(error.hint)}[/dim]"
    err_console().print(message, highlight=False, soft_wrap=True)


app = typer.Typer(
    cls=PlanctlGroup,
    name="planctl",
    help="Data-management toolkit for a training planner's database: "
    "migrations, exports, calendar sync and backups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain Click help: Typer's Rich help formatter alone costs ~80 ms of imports.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"planctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show what is being done (log lines on stderr).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only errors and requested output.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Debug logging and full tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Data-management toolkit for a training planner's database."""
    # Drivers log their own warnings (psycopg: "error ignored terminating Pipeline" after a
    # failed statement); planctl reports the error itself, once: never Python's last-resort
    # stderr handler.
    import logging

    # Library warnings (SQLAlchemy's SAWarning…) would print a source path and line: they
    # are not the user's business once settings are checked.
    logging.captureWarnings(True)
    for name in ("psycopg", "py.warnings"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    hooks = ctx.obj if isinstance(ctx.obj, Hooks) else Hooks()
    ctx.obj = State(verbose=verbose, quiet=quiet, debug=debug, hooks=hooks)
    detach = ctx.obj.setup_console_logging()
    if detach is not None:
        ctx.call_on_close(detach)


from planctl.cli import db as _db  # noqa: E402  (registers the db-* commands)

_db.register(app)

from planctl.cli import backup as _backup  # noqa: E402

app.add_typer(_backup.app, name="backup", rich_help_panel="Backups")

from planctl.cli import export as _export  # noqa: E402

app.add_typer(_export.app, name="export", rich_help_panel="Exports")

from planctl.cli import sync as _sync  # noqa: E402

app.add_typer(_sync.app, name="sync", rich_help_panel="Calendar sync")


def command_line(args: list[str]) -> typer.Typer:
    """The app to run for *args*: only the commands they name are built.

    Typer builds every command's parameters from its signature before it runs
    anything; the whole tree costs about 0.1 s, a third of a small export.
    Shell completion runs ``planctl`` with no arguments (the words are in
    ``COMP_WORDS``), so it always gets the whole tree.
    """
    # No arguments at all: a bare `planctl` (its help) or a shell's completion request,
    # whose words are in COMP_WORDS, not argv: the whole tree.
    if not args:
        return app
    return _pruned(app, {arg for arg in args if not arg.startswith("-")})


def _pruned(source: typer.Typer, words: set[str]) -> typer.Typer:
    """*source* with the commands named in *words* as they are, every other one listed
    by its name and help only (a stand-in with no parameters).

    Click runs a command only when an argument is its name, so a stand-in never
    runs; the listing keeps ``--help`` and Click's "did you mean" as they were.
    """
    pruned = copy.copy(source)
    pruned.registered_commands = [
        command if _name(command) in words else _stand_in(_name(command), command.help, command)
        for command in source.registered_commands
    ]
    pruned.registered_groups = []
    for group in source.registered_groups:
        if group.name in words:
            named = copy.copy(group)
            named.typer_instance = _pruned(group.typer_instance, words)  # type: ignore[arg-type]
            pruned.registered_groups.append(named)
        else:
            help_text = typer.main.solve_typer_info_help(group)
            pruned.registered_commands.append(_stand_in(str(group.name), help_text, group))
    return pruned


def _name(command: typer.models.CommandInfo) -> str:
    return command.name or typer.main.get_command_name(command.callback.__name__)  # type: ignore[union-attr]


def _stand_in(name: str, help_text: str | None, source: Any) -> typer.models.CommandInfo:
    """A command of the listing alone: *name*, the help it shows, never invoked."""
    if help_text is None and isinstance(source, typer.models.CommandInfo):
        help_text = getdoc(source.callback)
    return typer.models.CommandInfo(
        name=name, help=help_text, hidden=source.hidden is True, callback=_listed_only
    )


def _listed_only() -> None:
    """Stands for a command that *args* did not name (see :func:`_pruned`)."""


#: planctl's own options, which may also be written after the command (cron lines read
#: ``planctl backup --keep 5 -q`` as naturally as ``planctl -q backup --keep 5``).
GLOBAL_FLAGS = frozenset({"-v", "--verbose", "-q", "--quiet", "--debug"})


def hoist_global_flags(args: list[str]) -> list[str]:
    """*args* with the global flags found after the command moved before it (never past
    a ``--``, after which everything is an argument)."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
    return [*flags, *rest, *args[end:]]


def main() -> None:
    """Console-script entry point."""
    signals.install_handlers()
    args = hoist_global_flags(sys.argv[1:])
    try:
        command_line(args)(args=args)
    except BrokenPipeError:
        sys.exit(signals.quiet_broken_pipe())
    except PlanctlError as error:  # raised outside a command (e.g. in a callback)
        err_console().print(f"[bold red]error:[/bold red] {error}", highlight=False)
        sys.exit(int(error.exit_code))


__all__ = ["ExitCode", "app", "main"]
