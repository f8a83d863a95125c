"""The typeface of the PDF reports, and text made safe and measured for it.

DejaVu Sans (regular and bold) is embedded when found: first the system's copy
(Debian's fonts-dejavu-core), then the TTFs shipped by the PyPI package
``rinoh-typeface-dejavusans`` if it is installed. Without either, reports fall
back to the PDF core font Helvetica in Windows-1252 (accents, ñ and € still
work). Either way a character the font cannot draw becomes ``?``: it is never
dropped silently and never crashes the report.
"""

from __future__ import annotations

import importlib.util
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import CoreFont, TTFFont

SYSTEM_FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/TTF"),  # Arch
    Path("/usr/local/share/fonts"),
    Path("/Library/Fonts"),  # macOS, when installed by hand
)
FONT_PACKAGE = "rinoh_typeface_dejavusans"
REGULAR_FILE = "DejaVuSans.ttf"
BOLD_FILE = "DejaVuSans-Bold.ttf"
EMBEDDED_FAMILY = "DejaVuSans"
CORE_FAMILY = "helvetica"
CORE_ENCODING = "windows-1252"  # fpdf2 declares core fonts as WinAnsiEncoding
REPLACEMENT = "?"
ELLIPSIS = "…"


@dataclass(frozen=True)
class FontFiles:
    """A regular and a bold TrueType file of one family."""

    regular: Path
    bold: Path


def _package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def find_font_files(
    dirs: Sequence[Path] = SYSTEM_FONT_DIRS, package: str | None = FONT_PACKAGE
) -> FontFiles | None:
    """DejaVu Sans from the first of *dirs* that has both files, else from *package*."""
    candidates = list(dirs)
    if package is not None:
        package_dir = _package_dir(package)
        if package_dir is not None:
            candidates.append(package_dir)
    for directory in candidates:
        regular, bold = directory / REGULAR_FILE, directory / BOLD_FILE
        if regular.is_file() and bold.is_file():
            return FontFiles(regular, bold)
    return None


class ReportFont:
    """The font installed in one document: cleans, measures and truncates text for it."""

    def __init__(self, pdf: FPDF, files: FontFiles | None) -> None:
        self.pdf = pdf
        self.embedded = files is not None
        if files is not None:
            pdf.add_font(EMBEDDED_FAMILY, "", str(files.regular))
            pdf.add_font(EMBEDDED_FAMILY, "B", str(files.bold))
            self.family = EMBEDDED_FAMILY
        else:
            pdf.core_fonts_encoding = CORE_ENCODING
            self.family = CORE_FAMILY
        self.use(10, bold=True)  # core fonts only exist in fpdf2 once selected
        self.use(10)
        self._widths: dict[tuple[str, str], float] = {}
        self._safe: dict[str, str] = {}
        self._fitted: dict[tuple[str, float, float, bool], str] = {}
        self._sizes: dict[tuple[str, float, float, bool], float] = {}
        self._cleaned: dict[str, str] = {}

    def use(self, size: float, bold: bool = False) -> None:
        """Select the family at *size* points (bold or regular)."""
        self.pdf.set_font(self.family, "B" if bold else "", size)

    @property
    def name(self) -> str:
        return "DejaVu Sans" if self.embedded else "Helvetica"

    def _fpdf_font(self, style: str) -> CoreFont | TTFFont:
        return self.pdf.fonts[self.family.lower() + style]

    def _drawable(self, char: str) -> bool:
        if self.embedded:
            fonts = [self._fpdf_font(style) for style in ("", "B")]
            return all(isinstance(f, TTFFont) and ord(char) in f.cmap for f in fonts)
        try:
            char.encode(CORE_ENCODING)
        except UnicodeEncodeError:
            return False
        return True

    def _safe_char(self, char: str) -> str:
        safe = self._safe.get(char)
        if safe is None:
            if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
                safe = " "
            elif unicodedata.category(char) in ("Cf", "Mn") and not self._drawable(char):
                safe = ""  # joiners, variation selectors, stray accents: invisible anyway
            else:
                safe = char if self._drawable(char) else REPLACEMENT
            self._safe[char] = safe
        return safe

    def clean(self, text: str | None) -> str:
        """*text* on one line, composed, with every character the font lacks as ``?``."""
        if not text:
            return ""
        found = self._cleaned.get(text)
        if found is None:
            found = self._cleaned[text] = self._clean(text)
        return found

    def _clean(self, text: str) -> str:
        text = unicodedata.normalize("NFC", text)
        if text.isascii() and text.isprintable():
            return text
        return " ".join("".join(self._safe_char(c) for c in text).split())

    def _char_width(self, char: str, style: str) -> float:
        """Width of *char* in thousandths of the font size."""
        key = (char, style)
        width = self._widths.get(key)
        if width is None:
            font = self._fpdf_font(style)
            if isinstance(font, TTFFont):
                width = float(font.cw[ord(char)])
            else:
                width = float(font.cw[char.encode(CORE_ENCODING).decode("latin-1")])
            self._widths[key] = width
        return width

    def width(self, text: str, size: float, bold: bool = False) -> float:
        """Width in mm of already-clean *text* at *size* points."""
        style = "B" if bold else ""
        units = sum(self._char_width(c, style) for c in text)
        return units * size / 1000 / self.pdf.k

    def size_to_fit(
        self, text: str, width: float, size: float, bold: bool = False, smallest: float = 4.0
    ) -> float:
        """The largest size up to *size* (in 0.25 pt steps) at which *text* fits *width* whole."""
        key = (text, width, size, bold)
        found = self._sizes.get(key)
        if found is not None:
            return found
        clean = self.clean(text)
        start = size
        while size > smallest and self.width(clean, size, bold) > width:
            size -= 0.25
        self._sizes[(text, width, start, bold)] = size
        return size

    def fit(self, text: str, width: float, size: float, bold: bool = False) -> str:
        """Clean *text*, cut with an ellipsis so it is at most *width* mm wide."""
        key = (text, width, size, bold)
        fitted = self._fitted.get(key)
        if fitted is None:
            fitted = self._fitted[key] = self._fit(self.clean(text), width, size, bold)
        return fitted

    def _fit(self, text: str, width: float, size: float, bold: bool) -> str:
        style = "B" if bold else ""
        limit = width * self.pdf.k * 1000 / size
        total = 0.0
        widths = []
        for char in text:
            total += self._char_width(char, style)
            widths.append(total)
        if total <= limit:
            return text
        room = limit - self._char_width(ELLIPSIS, style)
        keep = 0
        while keep < len(widths) and widths[keep] <= room:
            keep += 1
        return text[:keep].rstrip() + ELLIPSIS
