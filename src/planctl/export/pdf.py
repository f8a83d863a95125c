"""PDF reports of sessions: an agenda with invoicing totals, or a monthly calendar.

The sessions are streamed once from :func:`iter_sessions`; totals per client and
per topic are accumulated on the way. Rows are drawn with fpdf2's low-level
``text()`` at fixed column widths (its ``table()`` is far too slow for ten
thousand rows), long text is cut with an ellipsis, and every page carries the
title, the period, the generation time and "Página X de Y".
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from fpdf import FPDF

from planctl.calendar.sessions import SessionFilter, SessionView, iter_sessions
from planctl.calendar.zones import zone_info
from planctl.errors import UsageError
from planctl.export.fonts import ReportFont, find_font_files
from planctl.text import CENT, format_count, format_euros
from planctl.text import format_decimal as format_number

VIEWS = ("list", "month")
TITLES = {"list": "Informe de sesiones", "month": "Calendario de sesiones"}
ZERO = Decimal(0)

MESES = (
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
)
DIAS = ("Lunes", "Martes", "Miércoles", "Jueves", "Viernes", "Sábado", "Domingo")
DIAS_CORTOS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
ESTADOS = {
    "propuesta": "Propuesta",
    "programada": "Programada",
    "reprogramada": "Reprogramada",
    "cancelada": "Cancelada",
}
MODALIDADES = {"presencial": "Presencial", "online": "Online", "mixta": "Mixta"}

# Page geometry in mm (A4 landscape).
MARGIN = 10.0
PAGE_WIDTH = 297.0
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
CONTENT_TOP = 27.0
CONTENT_BOTTOM = 195.0
FOOTER_Y = 199.0

Color = tuple[int, int, int]
HEADER_FILL: Color = (61, 90, 128)
WHITE: Color = (255, 255, 255)
BLACK: Color = (33, 33, 33)
GREY: Color = (150, 150, 150)
MUTED: Color = (130, 130, 130)
STRIPE: Color = (242, 244, 247)
OUTSIDE: Color = (238, 238, 238)
RULE: Color = (190, 190, 190)
HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
TILDE = "\u0303"  # of ñ, kept so that ñ sorts after every n

AGENDA_COLUMNS = (
    ("Fecha", 28.0),
    ("Horario", 23.0),
    ("Cliente", 55.0),
    ("Formación", 66.0),
    ("Modalidad", 21.0),
    ("Lugar", 59.0),
    ("Estado", 25.0),
)
WHOLE_COLUMNS = (0, 1)  # Fecha, Horario: shown whole, never with an ellipsis
AGENDA_SIZE = 8.0
ROW_HEIGHT = 5.2
HEADER_HEIGHT = 6.5
SUMMARY_COLUMNS = (("", 157.0), ("Sesiones", 30.0), ("Horas", 40.0), ("Importe", 50.0))
CELL_SIZE = 6.5
LINE_HEIGHT = 3.2  # one session in a day cell
ENTRY_TOP = 4.6  # first session line, below the day number


@dataclass(frozen=True)
class ReportSummary:
    """What a report contains: sessions listed (cancelled too), pages, and the billable totals."""

    sessions: int
    pages: int
    hours: Decimal  # total hours taught (non-cancelled sessions)
    amount: Decimal  # total fee = sum(hours × precio_hora) over non-cancelled sessions


@dataclass
class Tally:
    """Sessions, minutes and fee of a group of taught (non-cancelled) sessions.

    Exact to the end: whole minutes, and the fee as the sum of minutes ×
    precio_hora (a Decimal), divided by 60 only when shown and rounded once,
    half-up, to the cent (:func:`format_number`).
    """

    sessions: int = 0
    minutes: int = 0
    priced_minutes: Decimal = ZERO  # sum of minutes × precio_hora

    def add(self, session: SessionView) -> None:
        minutes = session.minutes
        self.sessions += 1
        self.minutes += minutes
        self.priced_minutes += minutes * (session.precio_hora or ZERO)

    @property
    def hours(self) -> Decimal:
        return Decimal(self.minutes) / 60

    @property
    def amount(self) -> Decimal:
        return self.priced_minutes / 60


@dataclass
class Totals:
    """Everything the summary needs, accumulated while the sessions stream by."""

    listed: int = 0
    cancelled: int = 0
    unpriced: int = 0
    overall: Tally = field(default_factory=Tally)
    by_client: dict[int, tuple[str, Tally]] = field(default_factory=dict)
    by_topic: dict[str, Tally] = field(default_factory=dict)

    def add(self, session: SessionView) -> None:
        self.listed += 1
        if session.estado == "cancelada":
            self.cancelled += 1
            return
        if session.precio_hora is None:
            self.unpriced += 1
        self.overall.add(session)
        _, client = self.by_client.setdefault(session.cliente_id, (session.cliente, Tally()))
        client.add(session)
        self.by_topic.setdefault(session.tema, Tally()).add(session)

    def clients(self) -> list[tuple[str, Tally]]:
        return sorted(self.by_client.values(), key=lambda item: spanish_order(item[0]))

    def topics(self) -> list[tuple[str, Tally]]:
        return sorted(self.by_topic.items(), key=lambda item: spanish_order(item[0]))


class ReportPDF(FPDF):
    """An A4 landscape document whose pages all carry the report's header and footer."""

    def __init__(self, title: str, subtitle: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self.report_title = title
        self.report_subtitle = subtitle
        self.report_font = ReportFont(self, find_font_files())
        self.on_new_page: Callable[[], None] | None = None
        self._encoded: dict[int, dict[str, str]] = {}
        self._colors: dict[Color, Any] = {}
        self._color_ops: dict[int, str] = {}
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(False)
        self.alias_nb_pages()

    def header(self) -> None:
        font = self.report_font
        self.set_text_color(*BLACK)
        self.set_xy(MARGIN, MARGIN)
        font.use(14, bold=True)
        self.cell(CONTENT_WIDTH, 7, font.clean(self.report_title))
        self.set_xy(MARGIN, MARGIN + 7)
        font.use(8.5)
        self.cell(CONTENT_WIDTH, 5, font.fit(self.report_subtitle, CONTENT_WIDTH, 8.5))
        self.set_draw_color(*RULE)
        self.line(MARGIN, MARGIN + 13, MARGIN + CONTENT_WIDTH, MARGIN + 13)
        self.set_y(CONTENT_TOP)
        if self.on_new_page is not None:
            self.on_new_page()

    def footer(self) -> None:
        self.set_text_color(*MUTED)
        self.report_font.use(8)
        self.set_xy(MARGIN, FOOTER_Y)
        self.cell(CONTENT_WIDTH, 5, f"Página {self.page_no()} de {{nb}}", align="C")

    def use_text_color(self, rgb: Color) -> None:
        """``set_text_color(*rgb)``, its colour object made once per colour."""
        color = self._colors.get(rgb)
        if color is None:
            self.set_text_color(*rgb)
            self._colors[rgb] = self.text_color
        elif self.text_color is not color:
            self.text_color = color

    def text_row(self, y: float, cells: Sequence[tuple[float, str, float]]) -> None:
        """Draw (x, clean text, size) cells on the baseline *y* as ONE text object in the
        current font and colour: what :meth:`FPDF.text` writes per cell, once per row.

        Each cell moves from the previous one with a relative ``Td``; a cell at another
        size sets it with ``Tf`` inside a ``q … Q`` pair, so the state fpdf2 tracks is
        unchanged afterwards. An encoded string is kept per font (its glyphs are in
        the font's subset from the first use on).
        """
        font = self.current_font
        assert font is not None
        if not self.current_font_is_set_on_page:
            self._out(self._set_font_for_page(font, self.font_size_pt))
        encoded = self._encoded.setdefault(font.i, {})
        k, base = self.k, self.font_size_pt
        parts = ["q"]
        if self.fill_color != self.text_color:
            assert self.text_color is not None
            operator = self._color_ops.get(id(self.text_color))
            if operator is None or self.text_color not in self._colors.values():
                operator = self.text_color.serialize().lower()
                if self.text_color in self._colors.values():
                    self._color_ops[id(self.text_color)] = operator
            parts.append(operator)
        parts.append("BT")
        previous, size = 0.0, base
        for x, text, cell_size in cells:
            if not text:
                continue
            if cell_size != size:
                parts.append(f"/F{font.i} {cell_size:.2f} Tf")
                size = cell_size
            if previous == 0.0:
                parts.append(f"{x * k:.2f} {(self.h - y) * k:.2f} Td")
            else:
                parts.append(f"{(x - previous) * k:.2f} 0 Td")
            previous = x
            code = encoded.get(text)
            if code is None:  # normalize_text: a core font's own encoding, as text() does
                code = encoded[text] = font.encode_text(self.normalize_text(text))
            parts.append(code)
        parts.append("ET Q")
        self._out(" ".join(parts))

    def ensure_room(self, height: float) -> None:
        """Start a new page unless *height* mm still fit on this one."""
        if self.get_y() + height > CONTENT_BOTTOM:
            self.add_page()


def write_report(
    connection: Any,
    out: BinaryIO,
    *,
    since: dt.date,
    until: dt.date,
    view: str = "list",
    timezone: str = "Europe/Madrid",
    generated_at: dt.datetime | None = None,
    filters: SessionFilter | None = None,
) -> ReportSummary:
    """Write a PDF report of the sessions from *since* to *until* (inclusive) to *out*.

    ``list`` is an agenda followed by hours and fees per client and per topic;
    ``month`` is one calendar page per month. The same *generated_at* gives
    byte-identical output.
    """
    _check_request(since, until, view)
    generated = _generation_time(generated_at, zone_info(timezone))
    filters = replace(filters or SessionFilter(), since=since, until=until)
    pdf = ReportPDF(TITLES[view], _subtitle(since, until, generated, timezone, filters))
    pdf.set_creation_date(generated)
    pdf.set_title(f"{TITLES[view]} {_date(since)} – {_date(until)}")
    pdf.set_author("planctl")
    pdf.set_creator("planctl")
    pdf.set_lang("es")
    totals = Totals()
    sessions = iter_sessions(connection, filters)
    if view == "list":
        _write_agenda(pdf, sessions, totals)
        _write_summary(pdf, totals)
    else:
        _write_calendar(pdf, sessions, totals, since, until)
    out.write(bytes(pdf.output()))
    return ReportSummary(
        sessions=totals.listed,
        pages=pdf.pages_count,
        hours=totals.overall.hours.quantize(CENT, ROUND_HALF_UP),
        amount=totals.overall.amount.quantize(CENT, ROUND_HALF_UP),
    )


#: The month view draws one page per month, sessions or not: 10 years at most.
MAX_MONTH_PAGES = 120


def _check_request(since: dt.date, until: dt.date, view: str) -> None:
    if since > until:
        raise UsageError(
            f"the report period starts after it ends ({since.isoformat()} > {until.isoformat()})",
            "pass a --since on or before --until",
        )
    if view not in VIEWS:
        raise UsageError(f"unknown report view '{view}'", f"use one of {', '.join(VIEWS)}")
    months = (until.year - since.year) * 12 + until.month - since.month + 1
    if view == "month" and months > MAX_MONTH_PAGES:
        raise UsageError(
            f"a month view of {format_count(months)} months "
            f"({since.isoformat()} to {until.isoformat()}) "
            f"is over the limit of {MAX_MONTH_PAGES} months",
            "narrow --since/--until, or use --view list for a long period",
        )
    if view == "month" and until >= dt.date(dt.MAXYEAR, 12, 1):
        raise UsageError(
            f"a month view cannot draw December {dt.MAXYEAR}: its last week runs past the "
            "last date a calendar can hold",
            f"end the period by {dt.MAXYEAR}-11-30, or use --view list",
        )


def _generation_time(generated_at: dt.datetime | None, zone: ZoneInfo) -> dt.datetime:
    """*generated_at* (naive means local to *zone*) or now, in *zone*, to the second."""
    if generated_at is None:
        moment = dt.datetime.now(zone)
    elif generated_at.tzinfo is None:
        moment = generated_at.replace(tzinfo=zone)
    else:
        moment = generated_at.astimezone(zone)
    return moment.replace(microsecond=0)


def _subtitle(
    since: dt.date, until: dt.date, generated: dt.datetime, timezone: str, filters: SessionFilter
) -> str:
    parts = [
        f"Periodo: {_date(since)} – {_date(until)}",
        f"Generado el {_date(generated.date())} a las {generated:%H:%M} ({timezone})",
    ]
    if filters.client is not None:
        parts.append(f"Cliente: {filters.client}")
    if filters.statuses:
        parts.append("Estados: " + ", ".join(ESTADOS.get(s, s) for s in filters.statuses))
    if not filters.include_cancelled:
        parts.append("Sin sesiones canceladas")
    return "   ·   ".join(parts)


# The agenda (list view).


def _write_agenda(pdf: ReportPDF, sessions: Iterable[SessionView], totals: Totals) -> None:
    pdf.on_new_page = lambda: _agenda_header(pdf)
    pdf.add_page()
    for session in sessions:
        totals.add(session)
        pdf.ensure_room(ROW_HEIGHT)
        _agenda_row(pdf, session, stripe=totals.listed % 2 == 0)
    if totals.listed == 0:
        pdf.report_font.use(AGENDA_SIZE)
        pdf.set_text_color(*MUTED)
        pdf.text(MARGIN + 1, pdf.get_y() + 4, "No hay sesiones en este periodo.")
    pdf.on_new_page = None


def _header_row(pdf: ReportPDF, columns: Iterable[tuple[str, float]], right_from: int) -> None:
    """A filled row of bold column titles; columns from *right_from* on are right-aligned.

    One filled rectangle and one text object, placed as ``cell`` places them
    (``c_margin`` from the edge, the baseline 0.3 font sizes below the middle).
    """
    font = pdf.report_font
    font.use(AGENDA_SIZE, bold=True)
    pdf.set_fill_color(*HEADER_FILL)
    pdf.set_text_color(*WHITE)
    y = pdf.get_y()
    cells, x = [], MARGIN
    for index, (title, width) in enumerate(columns):
        text = font.clean(title)
        left = x + pdf.c_margin
        if index >= right_from:
            left = x + width - pdf.c_margin - font.width(text, AGENDA_SIZE, bold=True)
        cells.append((left, text, AGENDA_SIZE))
        x += width
    pdf.rect(MARGIN, y, x - MARGIN, HEADER_HEIGHT, style="F")
    pdf.text_row(y + 0.5 * HEADER_HEIGHT + 0.3 * pdf.font_size, cells)
    pdf.set_xy(MARGIN, y + HEADER_HEIGHT)


def _agenda_header(pdf: ReportPDF) -> None:
    _header_row(pdf, AGENDA_COLUMNS, right_from=len(AGENDA_COLUMNS))


def _agenda_cells(session: SessionView) -> tuple[str, ...]:
    place = session.direccion or session.enlace_vc or "—"
    modalidad = session.modalidad or ""
    return (
        f"{DIAS_CORTOS[session.fecha.weekday()]} {_date(session.fecha)}",
        f"{session.hora_inicio:%H:%M}–{session.hora_fin:%H:%M}",
        session.cliente,
        session.formacion,
        MODALIDADES.get(modalidad, modalidad),
        place,
        ESTADOS.get(session.estado, session.estado),
    )


def _agenda_row(pdf: ReportPDF, session: SessionView, *, stripe: bool) -> None:
    font, y = pdf.report_font, pdf.get_y()
    if stripe:
        pdf.set_fill_color(*STRIPE)
        pdf.rect(MARGIN, y, CONTENT_WIDTH, ROW_HEIGHT, style="F")
    if pdf.font_size_pt != AGENDA_SIZE or pdf.font_style:
        font.use(AGENDA_SIZE)
    pdf.use_text_color(MUTED if session.estado == "cancelada" else BLACK)
    cells = []
    x = MARGIN
    for index, (value, (_, width)) in enumerate(
        zip(_agenda_cells(session), AGENDA_COLUMNS, strict=True)
    ):
        if index in WHOLE_COLUMNS:  # a date or a time is never cut: smaller type instead
            size = font.size_to_fit(value, width - 2, AGENDA_SIZE)
            cells.append((x + 1, font.clean(value), size))
        else:
            cells.append((x + 1, font.fit(value, width - 2, AGENDA_SIZE), AGENDA_SIZE))
        x += width
    pdf.text_row(y + 3.6, cells)
    pdf.set_y(y + ROW_HEIGHT)


# The invoicing summary (list view).


def _write_summary(pdf: ReportPDF, totals: Totals) -> None:
    pdf.add_page()
    font = pdf.report_font
    pdf.set_text_color(*BLACK)
    font.use(12, bold=True)
    pdf.text(MARGIN, pdf.get_y() + 4, "Resumen para facturación")
    font.use(8.5)
    pdf.text(
        MARGIN,
        pdf.get_y() + 9,
        "Horas impartidas e importe (horas × precio/hora) de las sesiones no canceladas.",
    )
    pdf.set_y(pdf.get_y() + 13)
    _summary_table(pdf, "Cliente", totals.clients(), totals.overall)
    _summary_table(pdf, "Tema", totals.topics(), totals.overall)
    _summary_notes(pdf, totals)


def _summary_table(
    pdf: ReportPDF, title: str, groups: list[tuple[str, Tally]], overall: Tally
) -> None:
    columns = ((title, SUMMARY_COLUMNS[0][1]), *SUMMARY_COLUMNS[1:])
    pdf.ensure_room(HEADER_HEIGHT + 3 * ROW_HEIGHT)
    _header_row(pdf, columns, right_from=1)
    pdf.on_new_page = lambda: _header_row(pdf, columns, right_from=1)
    for index, (name, tally) in enumerate(groups):
        pdf.ensure_room(ROW_HEIGHT)
        _summary_row(pdf, name, tally, stripe=index % 2 == 1)
    pdf.ensure_room(ROW_HEIGHT)
    _summary_row(pdf, "Total", overall, bold=True)
    pdf.on_new_page = None
    pdf.set_y(pdf.get_y() + 6)


def _summary_row(
    pdf: ReportPDF, name: str, tally: Tally, *, stripe: bool = False, bold: bool = False
) -> None:
    font, y = pdf.report_font, pdf.get_y()
    if stripe or bold:
        pdf.set_fill_color(*(RULE if bold else STRIPE))
        pdf.rect(MARGIN, y, CONTENT_WIDTH, ROW_HEIGHT, style="F")
    font.use(AGENDA_SIZE, bold=bold)
    pdf.set_text_color(*BLACK)
    values = (format_count(tally.sessions), format_number(tally.hours), format_euros(tally.amount))
    pdf.text(MARGIN + 1, y + 3.6, font.fit(name, SUMMARY_COLUMNS[0][1] - 2, AGENDA_SIZE, bold))
    right = MARGIN + SUMMARY_COLUMNS[0][1]
    for value, (_, width) in zip(values, SUMMARY_COLUMNS[1:], strict=True):
        right += width
        pdf.text(right - 1 - font.width(value, AGENDA_SIZE, bold), y + 3.6, value)
    pdf.set_y(y + ROW_HEIGHT)


def _summary_notes(pdf: ReportPDF, totals: Totals) -> None:
    notes = [
        f"Sesiones en el informe: {format_count(totals.listed)};"
        f" canceladas (no computan): {format_count(totals.cancelled)}.",
    ]
    if totals.unpriced:
        notes.append(
            "Sesiones sin precio por hora (suman horas, no importe): "
            f"{format_count(totals.unpriced)}."
        )
    pdf.report_font.use(AGENDA_SIZE)
    pdf.set_text_color(*MUTED)
    for note in notes:
        pdf.ensure_room(ROW_HEIGHT)
        pdf.text(MARGIN, pdf.get_y() + 3.6, note)
        pdf.set_y(pdf.get_y() + ROW_HEIGHT)


# The calendar (month view).


@dataclass(frozen=True)
class CalendarEntry:
    start: dt.time
    client: str
    color: Color
    cancelled: bool


@dataclass
class DayCell:
    """What one day cell shows: the first entries that fit, and how many there are."""

    entries: list[CalendarEntry] = field(default_factory=list)
    total: int = 0


def _months(since: dt.date, until: dt.date) -> Iterator[tuple[int, int]]:
    year, month = since.year, since.month
    while (year, month) <= (until.year, until.month):
        yield year, month
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _write_calendar(
    pdf: ReportPDF,
    sessions: Iterable[SessionView],
    totals: Totals,
    since: dt.date,
    until: dt.date,
) -> None:
    by_month = itertools.groupby(sessions, key=lambda s: (s.fecha.year, s.fecha.month))
    pending = next(by_month, None)
    for year, month in _months(since, until):
        weeks = calendar.Calendar(firstweekday=0).monthdatescalendar(year, month)
        grid = CalendarGrid(weeks)
        days: dict[dt.date, DayCell] = {}
        month_tally, cancelled = Tally(), 0
        if pending is not None and pending[0] == (year, month):
            for session in pending[1]:
                totals.add(session)
                if session.estado == "cancelada":
                    cancelled += 1
                else:
                    month_tally.add(session)
                _place(days.setdefault(session.fecha, DayCell()), session, grid.capacity)
            pending = next(by_month, None)
        pdf.add_page()
        _month_page(pdf, grid, year, month, days, (since, until))
        _month_totals(pdf, month_tally, cancelled)


def _place(cell: DayCell, session: SessionView, capacity: int) -> None:
    cell.total += 1
    if len(cell.entries) < capacity:
        cancelled = session.estado == "cancelada"
        color = GREY if cancelled else client_color(session.cliente_color)
        cell.entries.append(CalendarEntry(session.hora_inicio, session.cliente, color, cancelled))


@dataclass(frozen=True)
class CalendarGrid:
    """Geometry of one month's grid: Monday-first weeks of 7 day cells."""

    weeks: list[list[dt.date]]
    top: float = CONTENT_TOP + 8
    bottom: float = CONTENT_BOTTOM - 6
    head: float = 6.0
    day_width: float = CONTENT_WIDTH / 7

    @property
    def row_height(self) -> float:
        return (self.bottom - self.top - self.head) / len(self.weeks)

    @property
    def capacity(self) -> int:
        """Entry lines a day cell holds (below its day number)."""
        return max(1, int((self.row_height - ENTRY_TOP - 0.2) // LINE_HEIGHT))


def _month_page(
    pdf: ReportPDF,
    grid: CalendarGrid,
    year: int,
    month: int,
    days: dict[dt.date, DayCell],
    period: tuple[dt.date, dt.date],
) -> None:
    font = pdf.report_font
    pdf.set_text_color(*BLACK)
    font.use(13, bold=True)
    pdf.text(MARGIN, CONTENT_TOP + 4.5, f"{MESES[month - 1].capitalize()} {year}")
    pdf.set_xy(MARGIN, grid.top)
    _header_row(pdf, [(day, grid.day_width) for day in DIAS], right_from=7)
    pdf.set_draw_color(*RULE)
    for row, week in enumerate(grid.weeks):
        y = grid.top + grid.head + row * grid.row_height
        for column, day in enumerate(week):
            x = MARGIN + column * grid.day_width
            inside = day.month == month and period[0] <= day <= period[1]
            _day_cell(pdf, grid, x, y, day, inside, days.get(day))


def _day_cell(
    pdf: ReportPDF,
    grid: CalendarGrid,
    x: float,
    y: float,
    day: dt.date,
    inside: bool,
    cell: DayCell | None,
) -> None:
    font = pdf.report_font
    if not inside:
        pdf.set_fill_color(*OUTSIDE)
    pdf.rect(x, y, grid.day_width, grid.row_height, style="D" if inside else "DF")
    font.use(7, bold=True)
    pdf.set_text_color(*(BLACK if inside else GREY))
    pdf.text(x + 1.2, y + 3.4, str(day.day))
    if cell is None:
        return
    shown = cell.entries
    if cell.total > grid.capacity:
        shown = cell.entries[: grid.capacity - 1]
    for line, entry in enumerate(shown):
        _calendar_entry(pdf, entry, x, y + ENTRY_TOP + line * LINE_HEIGHT, grid.day_width)
    if len(shown) < cell.total:
        font.use(CELL_SIZE, bold=True)
        pdf.set_text_color(*MUTED)
        more_y = y + ENTRY_TOP + len(shown) * LINE_HEIGHT
        pdf.text(x + 2.4, more_y + 2.3, f"+{cell.total - len(shown)} más")


def _calendar_entry(pdf: ReportPDF, entry: CalendarEntry, x: float, y: float, width: float) -> None:
    font = pdf.report_font
    pdf.set_fill_color(*lighten(entry.color))
    pdf.rect(x + 0.6, y, width - 1.2, LINE_HEIGHT - 0.35, style="F")
    pdf.set_fill_color(*entry.color)
    pdf.rect(x + 0.6, y, 1.2, LINE_HEIGHT - 0.35, style="F")
    font.use(CELL_SIZE)
    pdf.set_text_color(*(MUTED if entry.cancelled else BLACK))
    label = f"{'× ' if entry.cancelled else ''}{entry.start:%H:%M} {entry.client}"
    pdf.text(x + 2.4, y + 2.2, font.fit(label, width - 3.4, CELL_SIZE))


def _month_totals(pdf: ReportPDF, tally: Tally, cancelled: int) -> None:
    pdf.report_font.use(AGENDA_SIZE)
    pdf.set_text_color(*BLACK)
    pdf.text(
        MARGIN,
        CONTENT_BOTTOM - 1,
        f"Sesiones impartidas: {tally.sessions}   ·   canceladas: {cancelled}   ·   "
        f"horas: {format_number(tally.hours)}   ·   importe: {format_euros(tally.amount)}",
    )


# Formatting.


def client_color(color_hex: str | None) -> Color:
    """The client's ``#rrggbb`` colour as RGB; grey when missing or malformed."""
    if color_hex is None or not HEX_COLOR.fullmatch(color_hex):
        return GREY
    value = int(color_hex[1:], 16)
    return (value >> 16 & 0xFF, value >> 8 & 0xFF, value & 0xFF)


def lighten(color: Color, keep: float = 0.25) -> Color:
    """*color* mixed with white, keeping *keep* of it: a fill text stays readable on."""
    red, green, blue = (round(255 - (255 - c) * keep) for c in color)
    return (red, green, blue)


def spanish_order(name: str) -> str:
    """Sort key ignoring case and accents, with ñ right after n (Ñandú before Óptica)."""
    decomposed = unicodedata.normalize("NFD", name.casefold())
    return "".join(c for c in decomposed if c == TILDE or not unicodedata.combining(c))


def _date(day: dt.date) -> str:
    return f"{day.day:02d}/{day.month:02d}/{day.year:04d}"
