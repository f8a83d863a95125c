"""What reaches the data stream, and how every command ends when its reader goes away.

Real planctl processes where the process matters: ``-o /dev/stdout`` and its aliases
carry the data alone (no status line), every command that prints exits 141 without a
word when its standard output is a closed pipe, and the CLI prints money as the PDF does.
planctl's own log files are refused as outputs (argument checking: in-process).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from .conftest import Cli, EnvFor
from .helpers import run_planctl

PERIOD = ("--since", "2026-01-01", "--until", "2027-12-31")

#: Every command that prints on standard output, in an order that keeps the database usable.
PRINTING_COMMANDS: list[tuple[str, ...]] = [
    ("--help",),
    ("--version",),
    ("db-upgrade",),
    ("db-current",),
    ("db-history",),
    ("db-check",),
    ("db-info",),
    ("db-stamp", "head"),
    ("backup",),
    ("backup", "list"),
    ("backup", "status"),
    ("backup", "verify"),
    ("backup", "prune", "--keep-last", "1"),
    ("export", "--help"),
    ("export", "csv", "sesiones"),
    ("export", "ical", "--include-cancelled"),
    ("export", "pdf", *PERIOD, "-o", "-"),
    ("sync", "check"),
    ("sync", "--dry-run"),
    ("sync", "status"),
    ("sync", "remote", "list"),
    ("db-downgrade", "--yes"),
    ("db-upgrade",),
    ("db-seed", "--force"),
]


def _closed_pipe_run(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run planctl with its standard output a pipe whose reader is already gone."""
    process = subprocess.Popen(
        [sys.executable, "-m", "planctl", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # long before the interpreter has started: every write fails
    stderr = process.stderr.read().decode()
    return process.wait(timeout=120), stderr


@pytest.mark.slow
def test_every_printing_command_exits_141_in_silence_on_a_closed_pipe(
    seeded_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    env = env_for(seeded_url)
    outcomes = {}
    for args in PRINTING_COMMANDS:
        outcomes[" ".join(args)] = _closed_pipe_run(args, env, tmp_path)
    assert {cmd: out for cmd, out in outcomes.items() if out != (141, "")} == {}


@pytest.mark.parametrize("kind", ["csv", "ical", "pdf"])
def test_standard_output_by_any_name_carries_the_data_alone(
    seeded_url: str, env_for: EnvFor, tmp_path: Path, kind: str
) -> None:
    command = {
        "csv": ("export", "csv", "temas"),
        "ical": ("export", "ical"),
        "pdf": ("export", "pdf", *PERIOD, "--generated-at", "2026-11-22T10:00:00+01:00"),
    }[kind]
    env = env_for(seeded_url)
    reference = tmp_path / f"reference.{kind}"
    done = run_planctl(*command, "-o", str(reference), env=env)
    assert done.returncode == 0 and done.stdout.startswith("Wrote "), done.stderr
    for target in ("-", "/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"):
        streamed = subprocess.run(
            [sys.executable, "-m", "planctl", *command, "-o", target],
            env=env,
            capture_output=True,
            timeout=120,
        )
        assert streamed.returncode == 0, streamed.stderr
        assert streamed.stdout == reference.read_bytes(), target  # nothing but the data
        assert streamed.stderr == b""


def test_a_path_that_is_standard_output_gets_no_status_line(
    seeded_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    """The file fd 1 already is, named again with -o: data only, no status line."""
    env = env_for(seeded_url)
    shared = tmp_path / "shared.csv"
    with shared.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-m", "planctl", "export", "csv", "temas", "-o", "/proc/self/fd/1"],
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    assert done.returncode == 0 and done.stderr == b""
    lines = shared.read_bytes().split(b"\r\n")
    assert lines[0].startswith(b"id,nombre") and b"Wrote" not in shared.read_bytes()
    script = f"{sys.executable} -m planctl export csv temas -o /dev/fd/9 9>&1"
    done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, timeout=120)
    assert done.returncode == 0 and b"Wrote" not in done.stdout and done.stderr == b""
    # a real file that is not standard output still gets its line
    other = run_planctl("export", "csv", "temas", "-o", str(tmp_path / "other.csv"), env=env)
    assert other.stdout.startswith("Wrote 8 rows of temas")


@pytest.mark.parametrize("name", ["exportacion.log", "backup.log", "sincronizacion.log.2"])
def test_planctl_log_files_are_refused_as_outputs(
    seeded_url: str, cli: Cli, tmp_path: Path, name: str
) -> None:
    """A refused path is argument checking: in-process (``cli`` logs to tmp_path/logs)."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / name
    log.write_text("2026-11-22 10:00:00.000 +0100 | INFO | planctl.export | kept\n")
    before = log.read_bytes()
    link = tmp_path / "innocent.csv"
    link.symlink_to(log)
    for target in (str(log), str(link), f"{logs}/../logs/{name}"):
        done = cli("export", "csv", "temas", "-o", target, url=seeded_url)
        assert done.exit_code == 1 and "must not overwrite" in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1 and done.stdout == ""
    assert log.read_bytes() == before


def test_the_cli_prints_money_and_counts_as_the_pdf_does(
    seeded_url: str, env_for: EnvFor, tmp_path: Path
) -> None:
    pdf = tmp_path / "informe.pdf"
    done = run_planctl("export", "pdf", *PERIOD, "-o", str(pdf), env=env_for(seeded_url))
    assert done.returncode == 0, done.stderr
    said = re.fullmatch(
        r"Wrote .*: ([\d.]+) sessions?, \d+ pages?, ([\d.]+,\d\d) h, ([\d.]+,\d\d €)\.\n",
        done.stdout,
    )
    assert said is not None, done.stdout
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    sessions, hours, euros = said.groups()
    assert euros in text and hours in text and sessions in text
