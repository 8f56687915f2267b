"""The cheat sheet as a PDF (fpdf2): one block per optimizer, formulas as embedded PNG images.

Text is set in DejaVu Sans, which ships with matplotlib and covers the Greek letters.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

from descend.lab.cheatsheet import NOTATION_TEXT, Card, render_formula, rule_lines
from descend.lab.files import write_bytes_atomic

_DPI = 300
_BLUE, _GREY, _INK = (31, 95, 166), (110, 125, 140), (27, 42, 58)


def _fonts(pdf: FPDF) -> None:
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for style, file in (("", "DejaVuSans"), ("B", "DejaVuSans-Bold"),
                        ("I", "DejaVuSans-Oblique")):
        pdf.add_font("DejaVu", style, str(ttf / f"{file}.ttf"))
    pdf.add_font("DejaVuMono", "", str(ttf / "DejaVuSansMono.ttf"))


def _formula(latex: str, max_width: float) -> tuple[io.BytesIO, float, float]:
    """The formula as PNG bytes with its printed width and height in mm (shrunk to fit)."""
    png = render_formula(latex, "png", dpi=_DPI)
    width_px, height_px = Image.open(io.BytesIO(png)).size
    width, height = width_px / _DPI * 25.4, height_px / _DPI * 25.4
    scale = min(1.0, max_width / width)
    return io.BytesIO(png), width * scale, height * scale


def _line(pdf: FPDF, text: str, font: str, style: str, size: float, color: tuple[int, ...],
          height: float) -> None:
    pdf.set_font(font, style, size)
    pdf.set_text_color(*color)
    pdf.multi_cell(0, height, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _field(pdf: FPDF, label: str, value: str) -> None:
    """``label`` in a narrow grey column, ``value`` wrapping in the column beside it."""
    pdf.set_font("DejaVu", "", 8.5)
    pdf.set_text_color(*_GREY)
    pdf.cell(18, 4.4, label)
    pdf.set_font("DejaVuMono", "", 8.2)
    pdf.set_text_color(*_INK)
    pdf.multi_cell(0, 4.4, value, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _card(pdf: FPDF, card: Card) -> None:
    formulas = [_formula(line, pdf.epw - 6) for line in rule_lines(card.latex)]
    if pdf.get_y() + sum(f[2] + 1 for f in formulas) + 40 > pdf.page_break_trigger:
        pdf.add_page()  # keep a card on one page
    _line(pdf, card.name, "DejaVu", "B", 14, _BLUE, 7)
    _line(pdf, card.intuition, "DejaVu", "I", 9.5, _GREY, 4.8)
    pdf.ln(1.5)
    for image, width, height in formulas:
        pdf.image(image, x=pdf.l_margin + 3, w=width, h=height)
        pdf.ln(1)
    pdf.ln(0.5)
    _field(pdf, "create", f'{card.constructor}  or  descend.create("{card.name}", params)')
    _field(pdf, "defaults", card.defaults)
    _field(pdf, "source", card.source)
    pdf.ln(2)
    pdf.set_draw_color(210, 218, 226)
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + pdf.epw, pdf.get_y())
    pdf.ln(3)


def write_pdf(cards: list[Card], path: Path) -> Path:
    pdf = FPDF(format="A4")
    pdf.set_title("descend optimizer cheat sheet")
    pdf.set_author("descend")
    pdf.set_margins(16, 14, 16)
    pdf.set_auto_page_break(True, margin=14)
    _fonts(pdf)
    pdf.add_page()
    _line(pdf, "descend optimizer cheat sheet", "DejaVu", "B", 20, _INK, 10)
    _line(pdf, "Every registered optimizer: its update rule at step t, how to create it, its "
          "defaults, and where it comes from.", "DejaVu", "", 10, _GREY, 5)
    pdf.ln(1)
    _line(pdf, NOTATION_TEXT, "DejaVu", "", 9, _INK, 4.8)
    pdf.ln(3)
    for card in cards:
        _card(pdf, card)
    return write_bytes_atomic(path, bytes(pdf.output()))
