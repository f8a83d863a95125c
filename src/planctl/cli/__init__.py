"""The ``planctl`` command line: global options, error handling, sub-commands.

Commands are thin: parse, call one library function, render with Rich. Heavy
libraries are imported inside the commands, so ``planctl --help`` stays fast.
All expected errors become one line on stderr and an exit code here, in
:meth:`PlanctlGroup.invoke`, and nowhere else.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from inspect import getdoc
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from planctl import __version__
from planctl.cli import signals
from planctl.cli.context import Hooks, State, err_console
from planctl.errors import ExitCode, PlanctlError


class PlanctlGroup(TyperGroup):
    """planctl's root: a lazy group (Click's "lazily loading subcommands" pattern) that
    builds a command only when it is invoked, and maps planctl's errors to a one-line
    message and an exit code, in one place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Every way Click and Typer reach a sub-command (get_command, "did you mean",
        # completion) reads this mapping: its names are known, its commands built on use.
        self.commands = LazyCommands()  # type: ignore[assignment]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The listing of ``planctl --help``, from each command's help text alone: building
        every command's parameters would cost more than the rest of the start-up."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, TyperCommand(name, help=listed_help(name)).get_short_help_str(limit))
            for name in COMMANDS
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: Any) -> Any:
        # Each typer.Exit below is raised ``from None``: it carries only the exit code, the
        # error is already reported (report_error prints its traceback under --debug) and
        # Click never shows an Exit's context, so chaining would add nothing.
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


def report_error(ctx: Any, error: PlanctlError, *, debug: bool | None = None) -> None:
    """planctl's one error formatter: ``error: message — hint`` on stderr, after the
    traceback (with its chained causes) under ``--debug``. *debug* defaults to the
    invocation's ``--debug``; outside a command (*ctx* None) the caller says."""
    if debug is None:
        state = ctx.obj if ctx is not None and isinstance(ctx.obj, State) else None
        debug = state is not None and state.debug
    if debug:
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


#: planctl's commands in the order ``--help`` lists them: the module that defines each
#: (a ``db-*`` function in planctl.cli.db.COMMANDS, or the group's ``app``).
COMMANDS: dict[str, str] = {
    **dict.fromkeys(
        ["db-upgrade", "db-downgrade", "db-current", "db-history", "db-check", "db-revision",
         "db-stamp", "db-seed", "db-info"],
        "planctl.cli.db",
    ),
    "backup": "planctl.cli.backup",
    "export": "planctl.cli.export",
    "sync": "planctl.cli.sync",
}  # fmt: skip


class LazyCommands(Mapping[str, Any]):
    """planctl's commands by name, each built on first use (:func:`build_command`)."""

    def __getitem__(self, name: str) -> Any:
        if name not in COMMANDS:
            raise KeyError(name)
        return build_command(name)

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


@cache
def build_command(name: str) -> Any:
    """The Click command *name*, built by Typer's public ``typer.main.get_command`` from
    its module's Typer app (a ``db-*`` command: a one-command app of its own)."""
    module = importlib.import_module(COMMANDS[name])
    if hasattr(module, "app"):
        command = typer.main.get_command(module.app)
    else:
        single = typer.Typer(rich_markup_mode=None)
        module.register(single, only=name)
        command = typer.main.get_command(single)
    command.name = name
    return command


def listed_help(name: str) -> str:
    """*name*'s help text without building its parameters: the ``db-*`` function's
    docstring, or the group's ``typer.Typer(help=…)``."""
    module = importlib.import_module(COMMANDS[name])
    if hasattr(module, "app"):
        return str(module.app.info.help or "")
    return getdoc(module.COMMANDS[name]) or ""


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
        try:
            app(args=args)
        finally:  # what is still buffered meets a closed pipe here, not in Python's exit
            sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(signals.quiet_broken_pipe())
    except SystemExit as exit_:
        # Rich (Console.on_broken_pipe) and Click (help, --version) end a closed pipe with
        # exit 1 while handling the BrokenPipeError: the same closed pipe, the same 141.
        if isinstance(exit_.__context__, BrokenPipeError):
            sys.exit(signals.quiet_broken_pipe())
        raise
    except PlanctlError as error:  # raised outside a command (e.g. while parsing options)
        report_error(None, error, debug="--debug" in args[: _end_of_options(args)])
        sys.exit(int(error.exit_code))
    except Exception as error:  # a bug: no code expected it (the in-process API re-raises)
        bug = PlanctlError(
            f"internal error: {type(error).__name__}: {error}".splitlines()[0],
            "a bug in planctl: run again with --debug for the traceback and report it",
        )
        report_error(None, bug, debug="--debug" in args[: _end_of_options(args)])
        sys.exit(int(ExitCode.INTERNAL))


def _end_of_options(args: list[str]) -> int:
    return args.index("--") if "--" in args else len(args)


__all__ = ["ExitCode", "app", "main"]
