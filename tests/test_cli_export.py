"""``planctl export ical|pdf`` through the command line (the libraries have their own tests)."""

from __future__ import annotations

from pathlib import Path

import icalendar
from pypdf import PdfReader
from sqlalchemy import text

from planctl.db.engine import connect
from planctl.logs import close_service_loggers

from .conftest import Cli
from .helpers import target_of


def test_ical_to_stdout_and_file(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    run = cli("export", "ical", "--since", "2026-11-01", "--until", "2026-11-30", url=seeded_url)
    assert run.exit_code == 0, run.stderr
    calendar = icalendar.Calendar.from_ical(run.stdout)
    events = list(calendar.walk("VEVENT"))
    assert events and all(str(e["STATUS"]) != "CANCELLED" for e in events)
    assert all(
        "2026-11-01" <= e.decoded("DTSTART").date().isoformat() <= "2026-11-30" for e in events
    )

    target = tmp_path / "s.ics"
    run = cli("export", "ical", "--include-cancelled", "-o", str(target), url=seeded_url)
    assert run.exit_code == 0, run.stderr
    everything = list(icalendar.Calendar.from_ical(target.read_bytes()).walk("VEVENT"))
    assert len(everything) == 320
    assert {str(e["STATUS"]) for e in everything} == {"TENTATIVE", "CONFIRMED", "CANCELLED"}
    close_service_loggers()
    assert "as iCalendar to" in (tmp_path / "logs" / "exportacion.log").read_text(encoding="utf-8")


def test_ical_filters_by_client_and_status(seeded_url: str, cli: Cli) -> None:
    run = cli(
        "export",
        "ical",
        "--client",
        "ñandú consultores, s.a.",
        "--status",
        "propuesta",
        url=seeded_url,
    )
    assert run.exit_code == 0, run.stderr
    events = list(icalendar.Calendar.from_ical(run.stdout).walk("VEVENT"))
    assert events
    assert all("Ñandú Consultores" in str(e["SUMMARY"]) for e in events)
    assert {str(e["STATUS"]) for e in events} == {"TENTATIVE"}


def test_ical_errors(seeded_url: str, cli: Cli) -> None:
    run = cli("export", "ical", "--client", "Nandu Consultores", url=seeded_url)
    assert run.exit_code == 2
    assert "unknown client 'Nandu Consultores'" in run.stderr and "did you mean" in run.stderr
    assert run.stdout == ""
    run = cli("export", "ical", "--status", "terminada", url=seeded_url)
    assert run.exit_code == 2 and "unknown session status 'terminada'" in run.stderr


#: Every date a --since/--until can name.
ALL_TIME = ("--since", "0001-01-01", "--until", "9999-12-31")


def test_an_unbounded_month_view_is_refused_up_front(
    seeded_url: str, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "siglos.pdf"
    run = cli("export", "pdf", "--view", "month", *ALL_TIME, "-o", str(out), url=seeded_url)
    assert run.exit_code == 2
    assert "a month view of 119.988 months" in run.stderr and "limit of 120 months" in run.stderr
    assert "--view list" in run.stderr and not out.exists()
    # the list view of the same period is cheap: one line per session, not per month
    run = cli("export", "pdf", *ALL_TIME, "-o", str(out), url=seeded_url)
    assert run.exit_code == 0, run.stderr
    assert out.read_bytes().startswith(b"%PDF")


def test_the_ends_of_the_calendar_are_exported_not_a_traceback(
    seeded_url: str, cli: Cli, tmp_path: Path
) -> None:
    """Sessions dated 0001-01-01 and 9999-12-31 (another program wrote them), and periods
    at both ends of what a date can hold."""
    with connect(target_of(seeded_url)) as connection:
        connection.execute(text("UPDATE sesiones SET fecha = '9999-12-31' WHERE id = 1"))
        connection.execute(text("UPDATE sesiones SET fecha = '0001-01-01' WHERE id = 2"))
    out = tmp_path / "all.ics"
    run = cli("export", "ical", "-o", str(out), url=seeded_url)
    assert run.exit_code == 0, run.stderr
    events = icalendar.Calendar.from_ical(out.read_bytes()).walk("VEVENT")
    starts = {e.decoded("dtstart").date().isoformat() for e in events}
    assert {"9999-12-31", "0001-01-01"} <= starts
    assert b"DTSTART;TZID=Europe/Madrid:00010101T" in out.read_bytes()  # four-digit year
    for since, until in (("9999-12-31", "9999-12-31"), ("0001-01-01", "0001-01-02")):
        empty = tmp_path / f"{since}.ics"
        run = cli(
            "export", "ical", "--since", since, "--until", until, "-o", str(empty), url=seeded_url
        )
        assert run.exit_code == 0, run.stderr
        assert icalendar.Calendar.from_ical(empty.read_bytes()).walk("VTIMEZONE")
    listing = tmp_path / "list.pdf"
    run = cli(
        "export", "pdf", *ALL_TIME, "-o", str(listing), url=seeded_url
    )  # sessions at both ends
    assert run.exit_code == 0, run.stderr
    december = tmp_path / "december.pdf"
    run = cli(
        "export",
        "pdf",
        "--view",
        "month",
        "--since",
        "9999-12-01",
        "--until",
        "9999-12-31",
        "-o",
        str(december),
        url=seeded_url,
    )
    assert run.exit_code == 2 and "cannot draw December 9999" in run.stderr
    assert not december.exists() and "Traceback" not in run.stderr


def test_pdf_list_and_month(seeded_url: str, cli: Cli, tmp_path: Path) -> None:
    target = tmp_path / "informe.pdf"
    args = (
        "export",
        "pdf",
        "--since",
        "2026-10-01",
        "--until",
        "2026-12-31",
        "-o",
        str(target),
        "--generated-at",
        "2026-11-22T10:00:00+01:00",
    )
    run = cli(*args, url=seeded_url)
    assert run.exit_code == 0, run.stderr
    reader = PdfReader(target)
    pages = len(reader.pages)
    assert f"Página {pages} de {pages}" in (reader.pages[-1].extract_text() or "")
    assert "Resumen para facturación" in "".join(p.extract_text() or "" for p in reader.pages)
    first = target.read_bytes()
    assert cli(*args, url=seeded_url).exit_code == 0
    assert target.read_bytes() == first  # reproducible

    month = tmp_path / "mes.pdf"
    run = cli(
        "export",
        "pdf",
        "--view",
        "month",
        "--since",
        "2026-10-01",
        "--until",
        "2026-12-31",
        "-o",
        str(month),
        url=seeded_url,
    )
    assert run.exit_code == 0, run.stderr
    assert len(PdfReader(month).pages) == 3


def test_pdf_default_name_and_errors(seeded_url: str, cli: Cli, workdir: Path) -> None:
    run = cli("export", "pdf", "--since", "2026-11-01", "--until", "2026-11-30", url=seeded_url)
    assert run.exit_code == 0, run.stderr
    assert (workdir / "sesiones-2026-11-01_2026-11-30.pdf").exists()
    run = cli("export", "pdf", "--since", "2026-12-01", "--until", "2026-11-01", url=seeded_url)
    assert run.exit_code == 2 and run.stderr.startswith("error: ")
    run = cli(
        "export",
        "pdf",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-30",
        "--view",
        "week",
        "-o",
        str(workdir / "x.pdf"),
        url=seeded_url,
    )
    assert run.exit_code == 2
    assert not (workdir / "x.pdf").exists()
    assert not [p for p in workdir.iterdir() if p.name.startswith(".x.pdf")]
    run = cli("export", "pdf", "--until", "2026-11-30", url=seeded_url)
    assert run.exit_code == 2
