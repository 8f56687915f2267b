"""Write the optimizer cheat sheet, a PDF and an HTML page, from the registry (descend cheatsheet).

For every registered optimizer: its update rule (the registry's LaTeX, rendered with
matplotlib's mathtext), how to create it, its default hyperparameters, a one-line intuition and
the paper it comes from. The HTML page is self-contained (formulas embedded as SVG data URIs).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from descend.lab.files import write_text_atomic
from descend.registry import REGISTRY, Entry

# (LaTeX for the HTML page, plain text for the PDF, meaning)
NOTATION = [
    (r"\theta", "θ", "the parameters"), (r"g_t", "g_t", "the gradient at step t"),
    (r"\eta", "η", "the learning rate (lr)"), (r"\mu", "μ", "momentum"),
    (r"\alpha,\ \rho,\ \beta_1,\ \beta_2", "α, ρ, β1, β2", "decay rates of running averages"),
    (r"\epsilon", "ε", "a small constant against division by zero (eps)"),
    (r"\lambda", "λ", "weight decay"),
]
NOTATION_TEXT = ";  ".join(f"{text}: {meaning}" for _, text, meaning in NOTATION)


@dataclass(frozen=True)
class Card:
    """What the cheat sheet shows for one optimizer."""

    name: str
    constructor: str
    latex: str
    defaults: str
    intuition: str
    source: str


def card(entry: Entry) -> Card:
    extra = "".join(f", {k}={v!r}" for k, v in entry.overrides.items())
    defaults = ", ".join(f"{k}={_show(v)}" for k, v in entry.defaults().items())
    return Card(entry.name, f"descend.{entry.cls.__name__}(params{extra})", entry.latex,
                defaults, entry.intuition, entry.source)


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def rule_lines(latex: str) -> list[str]:
    """The registry writes a rule's steps separated by ``;``: one line per step, so that long
    rules stack instead of shrinking."""
    lines = [part.strip() for part in latex.split(";")]
    for spacing in (r"\quad", r"\,", "\\ "):
        lines = [line.removeprefix(spacing).strip() for line in lines]
    return [line for line in lines if line]


def render_formula(latex: str, fmt: str = "png", dpi: int = 200, fontsize: int = 13) -> bytes:
    """``latex`` rendered by matplotlib's mathtext (a subset of LaTeX) as PNG or SVG bytes.
    Raises ValueError when mathtext cannot parse it."""
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    mathtext.math_to_image(f"${latex}$", buffer, prop=FontProperties(size=fontsize), dpi=dpi,
                           format=fmt, color="#1b2a3a")
    return buffer.getvalue()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("."),
                        help="folder for cheatsheet.pdf and cheatsheet.html (default: .)")


def run(args: argparse.Namespace) -> int:
    from descend.lab.cheatsheet_pdf import write_pdf
    from descend.lab.files import check_writable

    out = check_writable(args.out)
    cards = [card(e) for e in REGISTRY.values()]
    written = [write_html(cards, out / "cheatsheet.html"), write_pdf(cards, out / "cheatsheet.pdf")]
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


# ---- HTML ---------------------------------------------------------------------------------

def _svg_uri(latex: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(render_formula(latex, "svg")).decode()


def _card_html(c: Card) -> str:
    e = html.escape
    return f"""
<section class="card" id="{e(c.name)}">
  <h2>{e(c.name)}</h2>
  <p class="intuition">{e(c.intuition)}</p>
  <div class="rule">{"".join(
      f'<img src="{_svg_uri(line)}" alt="{e(line)}">' for line in rule_lines(c.latex))}</div>
  <dl>
    <dt>create</dt><dd><code>{e(c.constructor)}</code>
      or <code>descend.create("{e(c.name)}", params)</code></dd>
    <dt>defaults</dt><dd><code>{e(c.defaults)}</code></dd>
    <dt>source</dt><dd>{e(c.source)}</dd>
  </dl>
</section>"""


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b2a3a;
       background: #f4f6f9; margin: 0; padding: 2rem; }
main { max-width: 64rem; margin: auto; }
h1 { margin: 0 0 .3rem; } .lead { color: #4a5a6a; margin-top: 0; }
.notation { display: flex; flex-wrap: wrap; gap: .4rem 1.4rem; background: #fff;
            border-radius: 8px; padding: .8rem 1rem; margin-bottom: 1.2rem; }
.notation span { display: inline-flex; align-items: center; gap: .4rem; color: #4a5a6a; }
.notation img { height: 1.1rem; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(28rem, 1fr)); gap: 1rem; }
.card { background: #fff; border-radius: 8px; padding: 1rem 1.2rem;
        box-shadow: 0 1px 3px rgba(0,0,0,.12); overflow-x: auto; }
.card h2 { margin: 0 0 .2rem; font-size: 1.25rem; color: #1f5fa6; }
.intuition { margin: 0 0 .8rem; font-style: italic; color: #4a5a6a; }
.rule { margin: .4rem 0 .8rem; }
.rule img { display: block; max-width: 100%; margin: 0 0 .35rem; }
dl { display: grid; grid-template-columns: 5.5rem 1fr; gap: .25rem .6rem; margin: 0;
     font-size: .9rem; }
dt { color: #7a8a9a; } dd { margin: 0; } code { font-size: .85rem; word-break: break-word; }
"""


def write_html(cards: list[Card], path: Path) -> Path:
    notation = "".join(
        f'<span><img src="{_svg_uri(symbol)}" alt="{html.escape(text)}">'
        f"{html.escape(meaning)}</span>" for symbol, text, meaning in NOTATION)
    body = "".join(_card_html(c) for c in cards)
    return write_text_atomic(path, f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>descend optimizer cheat sheet</title><style>{_CSS}</style></head>
<body><main>
<h1>descend optimizer cheat sheet</h1>
<p class="lead">Every registered optimizer: its update rule at step t, how to create it, its
defaults, and where it comes from. Generated from <code>descend.REGISTRY</code>.</p>
<div class="notation">{notation}</div>
<div class="grid">{body}
</div></main></body></html>
""")
