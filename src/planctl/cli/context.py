"""Per-invocation state shared by the commands: settings, consoles, verbosity."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planctl.errors import UsageError
from planctl.hooks import Hooks

if TYPE_CHECKING:
    import logging

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from planctl.config import Settings


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


@cache
def out_console() -> Console:
    from rich.console import Console

    return Console()


def narrow_table(title: str) -> Table:
    """A table that stays readable in 80 columns and in a pipe (Rich's width there is
    ``$COLUMNS`` or 80): no outer borders, two spaces between columns. Its columns
    should be ``no_wrap`` with one flexible column that elides (``overflow="ellipsis"``)."""
    from rich import box
    from rich.table import Table

    return Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )


@dataclass
class State:
    verbose: bool = False
    quiet: bool = False
    debug: bool = False
    _settings: Settings | None = field(default=None, repr=False)
    hooks: Hooks = field(default_factory=Hooks)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from planctl.config import load_settings

            self._settings = load_settings()
        return self._settings

    def service_logger(self, service: str, *, scrub_secrets: bool = True) -> logging.Logger:
        """Attach the service's log file (in the configured log dir) and return its logger.

        URL passwords are always masked; *scrub_secrets* also replaces every known
        password where it stands as a word of its own."""
        from planctl.errors import ConfigError
        from planctl.logs import service_logger

        settings = self.settings
        try:
            secrets = settings.secrets if scrub_secrets else ()
            return service_logger(
                service, settings.log_dir, secrets=secrets, timezone=settings.timezone
            )
        except OSError as error:
            where = error.filename or settings.log_dir
            raise ConfigError(
                f"cannot write log file '{where}' ({settings.source('PLANCTL_LOG_DIR')}): "
                f"{error.strerror or error}",
                "point PLANCTL_LOG_DIR at a writable directory",
            ) from error

    def setup_console_logging(self) -> Callable[[], None] | None:
        """-v shows INFO lines on stderr, --debug DEBUG lines; otherwise nothing.

        Returns the function that detaches the handler again (the CLI calls it
        when the command ends, so in-process callers do not inherit it).
        """
        if not (self.verbose or self.debug):
            return None
        import logging

        from rich.logging import RichHandler

        from planctl.logs import MaskingFilter

        logger = logging.getLogger("planctl")
        handler = RichHandler(
            console=err_console(),
            show_path=False,
            rich_tracebacks=True,
            log_time_format=self._log_time,
        )
        handler.setLevel(logging.DEBUG if self.debug else logging.INFO)
        handler.addFilter(MaskingFilter())
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        return lambda: logger.removeHandler(handler)

    def _log_time(self, moment: dt.datetime) -> Text:
        """A console log line's time (Rich hands it naive, in the system's zone); in the
        system's zone still, with its offset, before the settings are read."""
        from rich.text import Text

        from planctl.text import local_moment

        moment = moment.astimezone()
        if self._settings is None:
            return Text(f"{moment:%H:%M:%S %z}")
        return Text(local_moment(moment, self._settings.timezone, seconds=True)[11:])

    def say(self, message: str) -> None:
        """A human-facing status line on stdout, silenced by --quiet."""
        if not self.quiet:
            out_console().print(message, highlight=False, soft_wrap=True)


# --- helpers every command group shares --------------------------------------------------------


def _given(ctx: Any) -> list[Any]:
    """The parameters of *ctx*'s command that were written on the command line."""
    return [
        p
        for p in ctx.command.params
        if getattr(ctx.get_parameter_source(p.name or ""), "name", "") == "COMMANDLINE"
    ]


def route_group_options(ctx: Any) -> None:
    """``planctl GROUP [OPTIONS] SUB``: an option written before the sub-command is handed
    to it when it takes an option of the same name (as a default: the same option written
    after the sub-command wins); any other would be silently dropped, so it is refused
    (exit 2) naming where it goes instead.

    The hand-over is Click's ``default_map``, read when the sub-command's context is made
    (after this group callback), so no sub-command needs code of its own for it.
    """
    group, sub = ctx.command.name, ctx.invoked_subcommand or ""
    command = ctx.command.get_command(ctx, sub)
    takes = {q.name for q in getattr(command, "params", ())}
    handed: dict[str, object] = {}
    for param in _given(ctx):
        if param.name in takes:
            handed[param.name] = ctx.params[param.name]
            continue
        flag = max(param.opts, key=len)
        raise UsageError(
            f"{flag} is an option of 'planctl {group}' itself, not of 'planctl {group} {sub}'",
            f"run 'planctl {group} {flag} …' on its own; "
            f"'planctl {group} {sub} --help' lists what {sub} takes",
        )
    if handed:
        ctx.default_map = {**(ctx.default_map or {}), sub: handed}


def print_json(data: object) -> None:
    """*data* as indented JSON on stdout (``--json`` of every command), UTF-8 as is."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def state_of(ctx: Any) -> State:
    """The invocation's :class:`State` (set by the root callback)."""
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def can_prompt() -> bool:
    """Whether a confirmation question can be answered (cron and CI have no terminal)."""
    return sys.stdin.isatty()


def parse_date(value: str | None, option: str) -> dt.date | None:
    """``YYYY-MM-DD`` for *option*, or a UsageError (exit 2) naming it."""

    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as error:
        raise UsageError(f"invalid date '{value}' for {option}", "use YYYY-MM-DD") from error


def parse_period(since: str | None, until: str | None) -> tuple[dt.date | None, dt.date | None]:
    """--since/--until as dates; a period that starts after it ends is refused the same
    way by every command."""

    first, last = parse_date(since, "--since"), parse_date(until, "--until")
    if first is not None and last is not None and first > last:
        raise UsageError(
            f"--since {first.isoformat()} is after --until {last.isoformat()}",
            "give a --since on or before --until",
        )
    return first, last


def seconds(option: str, minimum: float = 0.0) -> Callable[[Any], float]:
    """The parser (``typer.Option(parser=…)``) of every seconds option of planctl: a
    finite number of seconds, at least *minimum*.

    ``nan`` and ``inf`` parse as floats but are no duration (``nan`` compares false with
    every bound, so a range check alone lets it through). A bad value is one line, exit 2,
    naming *option*: a :class:`UsageError`, raised while the command's options are parsed,
    inside planctl's one error boundary.
    """

    def parse(value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise UsageError(
                f"{option} takes a number of seconds, not '{value}'", "e.g. 30 or 2.5"
            ) from error
        if not math.isfinite(number):
            raise UsageError(f"{option} must be a finite number of seconds, not '{value}'")
        if number < minimum:
            raise UsageError(f"{option} must be at least {minimum:g}, got {number:g}")
        return number

    parse.__name__ = "seconds"  # the metavar in --help: SECONDS
    return parse


def path(option: str) -> Callable[[Any], Path]:
    """The parser (``typer.Option(parser=…)``) of a path option: an empty value (``--dir
    ''``, a variable that was not set) would be the working directory, a NUL byte no path
    at all; both are one line, exit 2, naming *option*."""

    def parse(value: Any) -> Path:
        if isinstance(value, Path):
            return value
        text = str(value)
        if not text.strip():
            raise UsageError(f"{option} is empty", f"give a path, or leave {option} out")
        if "\0" in text:
            raise UsageError(f"{option} holds a NUL byte", "give a plain path")
        return Path(text)

    parse.__name__ = "path"  # the metavar in --help: PATH
    return parse
