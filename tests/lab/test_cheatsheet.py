"""`descend cheatsheet`: a real PDF and a self-contained HTML page of every registered optimizer."""

from __future__ import annotations

import base64
import io
import re

import pytest
from PIL import Image
from pypdf import PdfReader

from descend import REGISTRY
from descend.cli import main
from descend.lab.cheatsheet import NOTATION, card, render_formula, rule_lines

FORMULA_LINES = [line for e in REGISTRY.values() for line in rule_lines(e.latex)]


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    out = tmp_path_factory.mktemp("cheatsheet")
    assert main(["cheatsheet", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registry_formula_renders_with_mathtext(name):
    lines = rule_lines(REGISTRY[name].latex)
    assert lines
    for line in lines:
        png = render_formula(line, "png")
        with Image.open(io.BytesIO(png)) as im:
            assert im.width > 40 and im.height > 10
        assert render_formula(line, "svg").lstrip().startswith(b"<?xml")


def test_rule_lines_split_steps_and_drop_the_spacing_between_them():
    assert rule_lines(r"v \leftarrow \mu v + g_t;\quad \theta \leftarrow \theta - \eta\, v") == [
        r"v \leftarrow \mu v + g_t", r"\theta \leftarrow \theta - \eta\, v"]
    assert rule_lines(r"a;\ b") == ["a", "b"]


def test_unparseable_latex_is_an_error():
    with pytest.raises(ValueError):
        render_formula(r"\frac{a}{")


def test_card_shows_the_overrides_and_the_registry_defaults():
    c = card(REGISTRY["nesterov"])
    assert c.constructor == "descend.SGD(params, momentum=0.9, nesterov=True)"
    assert "momentum=0.9" in c.defaults and "nesterov=True" in c.defaults
    assert "lr=1" in card(REGISTRY["adadelta"]).defaults


def test_pdf_is_valid_and_names_every_optimizer(sheet):
    data = (sheet / "cheatsheet.pdf").read_bytes()
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) >= 2
    text = "\n".join(page.extract_text() for page in reader.pages)
    for name, entry in REGISTRY.items():
        assert re.search(rf"^{re.escape(name)}$", text, re.MULTILINE), name
        assert entry.source.split()[0] in text
    assert "lr=0.001" in text and "momentum=0.9" in text
    # One embedded picture per distinct line of the rules (fpdf2 stores a repeated one once).
    pictures = {hash(image.data) for page in reader.pages for image in page.images}
    assert len(pictures) == len(set(FORMULA_LINES))


def test_html_is_self_contained_with_every_optimizer(sheet):
    page = (sheet / "cheatsheet.html").read_text(encoding="utf-8")
    for name, entry in REGISTRY.items():
        assert f'<h2>{name}</h2>' in page
        assert entry.intuition.replace("'", "&#x27;") in page
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert len(uris) == len(FORMULA_LINES) + len(NOTATION)
    for uri in uris:
        assert b"<svg" in base64.b64decode(uri)
    assert not re.search(r'(src|href)="(https?:|//|file:)', page)  # nothing fetched


def test_unwritable_output_folder_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["cheatsheet", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err
    assert "cannot write to the output folder" in err and len(err.strip().splitlines()) == 1
