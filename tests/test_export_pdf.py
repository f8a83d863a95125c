"""PDF reports: real PDFs read back with pypdf, totals checked against SQL, on both engines."""

from __future__ import annotations

import datetime as dt
import io
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import create_engine, insert, select
from sqlalchemy.engine import Connection

from planctl.calendar.sessions import SessionFilter
from planctl.db.engine import connect
from planctl.db.schema import metadata
from planctl.errors import ConfigError, UsageError
from planctl.export import pdf as pdf_module
from planctl.export.fonts import FontFiles, ReportFont, find_font_files
from planctl.export.pdf import ReportSummary, client_color, format_euros, write_report

from .conftest import skip_or_fail
from .helpers import target_of

CENT = Decimal("0.01")
GENERATED = dt.datetime(2026, 11, 22, 12, 30)
SINCE, UNTIL = dt.date(2026, 10, 1), dt.date(2026, 12, 31)
AGENDA_HEADER = "Fecha Horario Cliente Formación Modalidad Lugar Estado"
ROW = re.compile(
    r"^(?:lun|mar|mié|jue|vie|sáb|dom) (\d\d/\d\d/\d{4}) (\d\d:\d\d)–(\d\d:\d\d) (.*)$"
)
EXOTIC = "Sushi 寿司 🦄 Bar, S.L."  # neither DejaVu Sans nor Helvetica has these
EXOTIC_SHOWN = "Sushi ?? ? Bar, S.L."
BUSY_DAY = dt.date(2026, 10, 15)
MESES = ["Octubre 2026", "Noviembre 2026", "Diciembre 2026"]


@dataclass(frozen=True)
class Expected:
    """A session as the test reads it straight from the tables."""

    fecha: dt.date
    start: dt.time
    end: dt.time
    estado: str
    precio: Decimal | None
    client: str
    topic: str

    @property
    def hours(self) -> Decimal:
        minutes = (self.end.hour * 60 + self.end.minute) - (
            self.start.hour * 60 + self.start.minute
        )
        return Decimal(minutes) / Decimal(60)

    @property
    def amount(self) -> Decimal:
        return self.hours * (self.precio or Decimal(0))

    @property
    def taught(self) -> bool:
        return self.estado != "cancelada"


@dataclass
class Report:
    summary: ReportSummary
    data: bytes
    pages: list[list[str]]  # each page's lines, whitespace collapsed

    @property
    def text(self) -> str:
        return "\n".join(line for page in self.pages for line in page)


def spanish(value: Decimal) -> str:
    text = f"{value.quantize(CENT, ROUND_HALF_UP):,.2f}"
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def expected_sessions(url: str, since: dt.date, until: dt.date) -> list[Expected]:
    t = metadata.tables
    s, c, cl, f, te = (
        t["sesiones"],
        t["contrataciones"],
        t["clientes"],
        t["formaciones"],
        t["temas"],
    )
    query = (
        select(s.c.fecha, s.c.hora_inicio, s.c.hora_fin, s.c.estado, c.c.precio_hora, cl.c.empresa)
        .add_columns(te.c.nombre)
        .select_from(
            s.join(c, s.c.contratacion_id == c.c.id)
            .join(cl, c.c.cliente_id == cl.c.id)
            .join(f, c.c.formacion_id == f.c.id)
            .join(te, f.c.tema_id == te.c.id)
        )
        .where(s.c.fecha.between(since, until))
        .order_by(s.c.fecha, s.c.hora_inicio, s.c.id)
    )
    with connect(target_of(url)) as connection:
        return [Expected(*row) for row in connection.execute(query)]


def render(url: str, **options: Any) -> Report:
    options = {"since": SINCE, "until": UNTIL, "generated_at": GENERATED, **options}
    out = io.BytesIO()
    with connect(target_of(url)) as connection:
        summary = write_report(connection, out, **options)
    data = out.getvalue()
    pages = [
        [" ".join(line.split()) for line in page.extract_text().splitlines() if line.strip()]
        for page in PdfReader(io.BytesIO(data)).pages
    ]
    return Report(summary, data, pages)


def totals_by(sessions: list[Expected], key: str) -> dict[str, tuple[int, Decimal, Decimal]]:
    groups: dict[str, list[Expected]] = defaultdict(list)
    for session in sessions:
        if session.taught:
            groups[getattr(session, key)].append(session)
    return {
        name: (
            len(group),
            sum((s.hours for s in group), Decimal(0)),
            sum((s.amount for s in group), Decimal(0)),
        )
        for name, group in groups.items()
    }


@pytest.fixture
def exotic_url(seeded_url: str) -> str:
    """The demo data plus a client whose name the font cannot fully draw, with a busy day."""
    t = metadata.tables
    with connect(target_of(seeded_url)) as connection:
        client = connection.execute(
            insert(t["clientes"])
            .values(empresa=EXOTIC, color_hex="#zzzzzz")
            .returning(t["clientes"].c.id)
        ).scalar_one()
        contract = connection.execute(
            insert(t["contrataciones"])
            .values(
                cliente_id=client,
                formacion_id=1,
                expediente="EXP-EXOTIC",
                precio_hora=Decimal("40.00"),
                modalidad="presencial",
                estado="confirmado",
                prioridad="media",
            )
            .returning(t["contrataciones"].c.id)
        ).scalar_one()
        connection.execute(
            insert(t["sesiones"]),
            [
                {
                    "contratacion_id": contract,
                    "fecha": BUSY_DAY,
                    "hora_inicio": dt.time(8 + hour, 0),
                    "hora_fin": dt.time(9 + hour, 0),
                    "estado": "cancelada" if hour == 0 else "programada",
                }
                for hour in range(10)
            ],
        )
    return seeded_url


@pytest.fixture(params=["dejavu", "helvetica"])
def font(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each report font: the embedded DejaVu Sans, and the core-font fallback without it."""
    if request.param == "dejavu" and find_font_files() is None:
        skip_or_fail(
            "DejaVu Sans is not installed (Debian: fonts-dejavu-core; .ci/run installs it)"
        )
    if request.param == "helvetica":
        monkeypatch.setattr(pdf_module, "find_font_files", lambda: None)
    yield request.param


def test_agenda_lists_every_session_of_the_period_in_order(seeded_url: str) -> None:
    expected = expected_sessions(seeded_url, SINCE, UNTIL)
    report = render(seeded_url)
    rows = [match for line in report.text.splitlines() if (match := ROW.match(line))]
    assert [(m[1], m[2], m[3]) for m in rows] == [
        (f"{e.fecha:%d/%m/%Y}", f"{e.start:%H:%M}", f"{e.end:%H:%M}") for e in expected
    ]
    for match, session in zip(rows, expected, strict=True):
        assert match[4].startswith(session.client + " ")
        assert match[4].endswith("Cancelada") == (session.estado == "cancelada")
    assert report.summary.sessions == len(expected) > 30
    assert "30/09/2026" not in report.text and "01/01/2027" not in report.text


def test_summary_totals_match_the_database(seeded_url: str) -> None:
    expected = expected_sessions(seeded_url, SINCE, UNTIL)
    report = render(seeded_url)
    summary = [line for page in report.pages if "Resumen para facturación" in page for line in page]
    for key in ("client", "topic"):
        for name, (count, hours, amount) in totals_by(expected, key).items():
            assert f"{name} {count} {spanish(hours)} {spanish(amount)} €" in summary
    taught = [e for e in expected if e.taught]
    hours = sum((e.hours for e in taught), Decimal(0))
    amount = sum((e.amount for e in taught), Decimal(0))
    total = f"Total {len(taught)} {spanish(hours)} {spanish(amount)} €"
    assert summary.count(total) == 2  # under the clients and under the topics
    assert report.summary.hours == hours.quantize(CENT, ROUND_HALF_UP)
    assert report.summary.amount == amount.quantize(CENT, ROUND_HALF_UP)
    cancelled = len(expected) - len(taught)
    assert cancelled > 0
    assert f"Sesiones en el informe: {len(expected)}; canceladas (no computan): {cancelled}." in (
        summary
    )


@pytest.mark.parametrize("view", ["list", "month"])
def test_every_page_has_title_period_generation_time_and_page_x_of_y(
    seeded_url: str, view: str
) -> None:
    report = render(seeded_url, view=view)
    title = "Informe de sesiones" if view == "list" else "Calendario de sesiones"
    count = len(report.pages)
    assert count == report.summary.pages > 1
    for number, page in enumerate(report.pages, start=1):
        assert page[0] == title
        assert page[1].startswith("Periodo: 01/10/2026 – 31/12/2026 · Generado el 22/11/2026")
        assert "a las 12:30 (Europe/Madrid)" in page[1]
        assert f"Página {number} de {count}" in page


def test_agenda_header_row_repeats_on_every_agenda_page(seeded_url: str) -> None:
    report = render(seeded_url, since=dt.date(2026, 9, 1), until=dt.date(2027, 5, 31))
    agenda = [page for page in report.pages if "Resumen para facturación" not in page]
    assert len(agenda) > 5
    for page in agenda:
        assert page[2] == AGENDA_HEADER
        assert ROW.match(page[3])


def calendar_lines(page: list[str]) -> list[str]:
    """The session lines ("[× ]HH:MM Client…") and "+N más" lines of a month page, in order."""
    return [line for line in page if re.match(r"^(× )?\d\d:\d\d |^\+\d+ más$", line)]


def assert_month_shows(page: list[str], sessions: list[Expected]) -> None:
    """Each day shows its sessions in order, the overflow counted as "+N más"."""
    lines = iter(calendar_lines(page))
    for _, day in itertools.groupby(sessions, key=lambda e: e.fecha):
        day_sessions = list(day)
        for index, session in enumerate(day_sessions):
            line = next(lines)
            if line.startswith("+"):
                assert line == f"+{len(day_sessions) - index} más"
                break
            mark = "" if session.taught else "× "
            name = EXOTIC_SHOWN if session.client == EXOTIC else session.client
            assert line.startswith(f"{mark}{session.start:%H:%M} {name[:8]}")
    assert next(lines, None) is None


def test_month_view_has_one_page_per_month_with_its_sessions(seeded_url: str) -> None:
    expected = expected_sessions(seeded_url, SINCE, UNTIL)
    report = render(seeded_url, view="month")
    assert len(report.pages) == 3
    for page, heading, month in zip(report.pages, MESES, (10, 11, 12), strict=True):
        assert page[2] == heading
        assert page[3] == "Lunes Martes Miércoles Jueves Viernes Sábado Domingo"
        sessions = [e for e in expected if e.fecha.month == month]
        assert_month_shows(page, sessions)
        taught = [e for e in sessions if e.taught]
        hours = sum((e.hours for e in taught), Decimal(0))
        amount = sum((e.amount for e in taught), Decimal(0))
        assert (
            f"Sesiones impartidas: {len(taught)} · canceladas: {len(sessions) - len(taught)} · "
            f"horas: {spanish(hours)} · importe: {spanish(amount)} €"
        ) in page


def test_month_view_covers_partial_and_empty_months(migrated_url: str) -> None:
    report = render(
        migrated_url, view="month", since=dt.date(2026, 11, 20), until=dt.date(2027, 2, 3)
    )
    assert [page[2] for page in report.pages] == [
        "Noviembre 2026",
        "Diciembre 2026",
        "Enero 2027",
        "Febrero 2027",
    ]
    assert report.summary == ReportSummary(sessions=0, pages=4, hours=Decimal(0), amount=Decimal(0))


def test_empty_period_gives_an_agenda_saying_so_and_zero_totals(migrated_url: str) -> None:
    report = render(migrated_url)
    assert "No hay sesiones en este periodo." in report.pages[0]
    assert report.text.count("Total 0 0,00 0,00 €") == 2


def test_accents_ene_and_euro_survive_extraction(seeded_url: str, font: str) -> None:
    report = render(seeded_url, since=dt.date(2026, 9, 1), until=dt.date(2027, 5, 31))
    for name in (
        "Ñandú Consultores, S.A.",
        "Logística Íñiguez e Hijos, S.A.",
        'Seguros La Coruña "Mutua"',
        "Café Olé; Hostelería S.L.",
    ):
        assert name in report.text
    assert "Resumen para facturación" in report.text
    assert re.search(r" \d{1,3}(\.\d{3})*,\d\d €", report.text)


def test_characters_the_font_lacks_become_question_marks(exotic_url: str, font: str) -> None:
    report = render(exotic_url)
    assert EXOTIC_SHOWN in report.text
    assert "寿" not in report.text and "🦄" not in report.text
    assert f"{EXOTIC_SHOWN} 9 9,00 360,00 €" in report.text  # cancelled hour not billed
    calendar = render(exotic_url, view="month")
    october = "\n".join(calendar.pages[0])
    assert "Sushi ?? ?" in october


def test_an_overflowing_day_cell_says_how_many_more(exotic_url: str) -> None:
    october = expected_sessions(exotic_url, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    busy_day = sum(1 for e in october if e.fecha == BUSY_DAY)
    page = render(exotic_url, view="month").pages[0]
    more = [int(m[1]) for line in page if (m := re.fullmatch(r"\+(\d+) más", line))]
    assert len(more) == 1 and 2 <= more[0] < busy_day
    assert_month_shows(page, october)


def test_same_generated_at_gives_identical_bytes(seeded_url: str) -> None:
    first, second = render(seeded_url), render(seeded_url)
    assert first.data == second.data
    reader = PdfReader(io.BytesIO(first.data))
    assert reader.metadata is not None
    created = reader.metadata.creation_date
    assert created is not None
    assert created.replace(tzinfo=None) == GENERATED
    later = render(seeded_url, generated_at=GENERATED + dt.timedelta(minutes=1))
    assert later.data != first.data


def test_client_filter_limits_rows_and_is_named_in_the_header(seeded_url: str) -> None:
    report = render(seeded_url, filters=SessionFilter(client="Academia Cervantes"))
    rows = [m[4] for line in report.text.splitlines() if (m := ROW.match(line))]
    assert rows and all(row.startswith("Academia Cervantes ") for row in rows)
    assert "Cliente: Academia Cervantes" in report.pages[0][1]


@pytest.fixture
def memory_connection() -> Iterator[Connection]:
    with create_engine("sqlite://").connect() as connection:
        yield connection


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"since": dt.date(2027, 1, 1), "until": dt.date(2026, 12, 31)}, "starts after it ends"),
        ({"view": "week"}, "unknown report view 'week'"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_bad_requests_raise_before_writing(
    memory_connection: Connection, options: dict[str, Any], message: str
) -> None:
    """A bad period or view is a usage error; a bad zone is the PLANCTL_TIMEZONE setting's."""
    out = io.BytesIO()
    arguments = {"since": SINCE, "until": UNTIL, **options}
    expected = ConfigError if "timezone" in options else UsageError
    with pytest.raises(expected, match=message) as raised:
        write_report(memory_connection, out, **arguments)
    assert raised.value.hint
    assert out.getvalue() == b""


@pytest.mark.parametrize(
    ("color_hex", "rgb"),
    [
        ("#1f77b4", (31, 119, 180)),
        ("#FFFFFF", (255, 255, 255)),
        (None, (150, 150, 150)),
        ("#zzzzzz", (150, 150, 150)),
        ("1f77b4", (150, 150, 150)),
    ],
)
def test_client_colors_fall_back_to_grey(color_hex: str | None, rgb: tuple[int, int, int]) -> None:
    assert client_color(color_hex) == rgb


def test_euros_use_spanish_separators() -> None:
    assert format_euros(Decimal("1234.5")) == "1.234,50 €"
    assert format_euros(Decimal("1234567.125")) == "1.234.567,13 €"
    assert format_euros(Decimal(0)) == "0,00 €"


def test_long_text_is_cut_with_an_ellipsis_to_the_width(font: str) -> None:
    from fpdf import FPDF

    files: FontFiles | None = pdf_module.find_font_files()
    report_font = ReportFont(FPDF(), files)
    text = "Consejería de Educación, Junta de Andalucía — Delegación Territorial de Córdoba"
    fitted = report_font.fit(text, 40, 8)
    assert fitted.endswith("…") and text.startswith(fitted[:-1])
    assert report_font.width(fitted, 8) <= 40
    assert report_font.fit("Café", 40, 8) == "Café"


@pytest.mark.slow
def test_ten_thousand_sessions(migrated_url: str) -> None:
    from planctl.db.seed import seed

    seed(target_of(migrated_url), scale=10_000)
    since, until = dt.date(2026, 1, 1), dt.date(2027, 12, 31)
    expected = expected_sessions(migrated_url, since, until)
    taught = [e for e in expected if e.taught]
    for view in ("list", "month"):
        out = io.BytesIO()
        with connect(target_of(migrated_url)) as connection:
            summary = write_report(
                connection, out, since=since, until=until, view=view, generated_at=GENERATED
            )
        reader = PdfReader(io.BytesIO(out.getvalue()))
        assert summary.sessions == len(expected) == 10_000
        assert summary.hours == sum((e.hours for e in taught), Decimal(0)).quantize(
            CENT, ROUND_HALF_UP
        )
        assert summary.amount == sum((e.amount for e in taught), Decimal(0)).quantize(
            CENT, ROUND_HALF_UP
        )
        assert len(reader.pages) == summary.pages
        last = reader.pages[-1].extract_text()
        assert f"Página {summary.pages} de {summary.pages}" in last
    assert summary.pages == 24  # month view: two calendar years


def priced_sessions(
    url: str, price: Decimal, days: list[dt.date], start: dt.time, end: dt.time
) -> None:
    """One client, course and contract at *price* €/h, one session per day."""
    t = metadata.tables
    with connect(target_of(url)) as connection:
        client = connection.execute(
            insert(t["clientes"]).values(empresa="Academia Exacta").returning(t["clientes"].c.id)
        ).scalar_one()
        topic = connection.execute(
            insert(t["temas"]).values(nombre="Cálculo").returning(t["temas"].c.id)
        ).scalar_one()
        course = connection.execute(
            insert(t["formaciones"])
            .values(tema_id=topic, nombre="Céntimos")
            .returning(t["formaciones"].c.id)
        ).scalar_one()
        contract = connection.execute(
            insert(t["contrataciones"])
            .values(
                cliente_id=client,
                formacion_id=course,
                expediente="EXP-CENT",
                precio_hora=price,
                estado="confirmado",
                prioridad="media",
            )
            .returning(t["contrataciones"].c.id)
        ).scalar_one()
        connection.execute(
            insert(t["sesiones"]),
            [
                {
                    "contratacion_id": contract,
                    "fecha": day,
                    "hora_inicio": start,
                    "hora_fin": end,
                    "estado": "programada",
                }
                for day in days
            ],
        )


def test_money_is_exact_to_the_cent(migrated_url: str) -> None:
    """30 sessions of 80 minutes at 72,25 €/h: 40,00 h and 2.890,00 € exactly (rounding
    each session's 1,333… h to 1,33 would give 39,90 h and 2.882,78 €)."""
    days = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(30)]
    priced_sessions(migrated_url, Decimal("72.25"), days, dt.time(9, 0), dt.time(10, 20))
    report = render(migrated_url)
    assert report.summary.hours == Decimal("40.00")
    assert report.summary.amount == Decimal("2890.00")
    for title in ("Academia Exacta", "Cálculo", "Total"):  # per client, per topic, in total
        assert f"{title} 30 40,00 2.890,00 €" in report.text
    month = render(migrated_url, view="month")
    assert "horas: 40,00 · importe: 2.890,00 €" in month.text


def test_one_session_rounds_half_up_once(migrated_url: str) -> None:
    """20 minutes at 1,35 €/h is 0,45 € exactly; 10 minutes at 0,03 €/h is 0,005 € → 0,01 €."""
    priced_sessions(
        migrated_url, Decimal("0.03"), [dt.date(2026, 10, 5)], dt.time(9), dt.time(9, 10)
    )
    report = render(migrated_url)
    assert report.summary.amount == Decimal("0.01")
    assert "Total 1 0,17 0,01 €" in report.text


def test_every_weekday_date_is_shown_whole(migrated_url: str, font: str) -> None:
    """The widest dates of every weekday ("mié 28/10/2026", "sáb 31/10/2026") are never cut."""
    days = [dt.date(2026, 10, 26) + dt.timedelta(days=i) for i in range(7)]  # Mon..Sun
    days += [dt.date(2026, 12, 30), dt.date(2026, 11, 28)]
    priced_sessions(migrated_url, Decimal("50"), days, dt.time(10, 0), dt.time(12, 0))
    report = render(migrated_url)
    rows = [line for line in report.text.splitlines() if ROW.match(line)]
    assert len(rows) == len(days)
    shown = {match.group(1) for line in rows if (match := ROW.match(line))}
    assert shown == {f"{day:%d/%m/%Y}" for day in days}
    assert "…" not in "".join(line[:15] for line in rows)
