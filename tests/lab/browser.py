"""Opening a report in a real browser for the tests: Debian's chromium driven by Playwright."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def browse(html: Path, width: int = 1280):
    """Opens ``html`` in headless chromium; returns (page, console errors, outside requests,
    screenshot as an RGB array) and the objects to close."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors, outside = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: outside.append(r.url)
            if not r.url.startswith(("data:", f"file://{html}")) else None)
    page.goto(f"file://{html}", wait_until="load")
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    return page, errors, outside, shot, (browser, playwright)


def close(page, closers) -> None:
    page.close()
    for closer in closers:
        closer.close() if hasattr(closer, "close") else closer.stop()


def images(page) -> list[dict]:
    """Every image of the page: alt text, natural width, loaded, and its box on the page."""
    return page.evaluate("""[...document.images].map(i => ({alt: i.alt,
        natural: i.naturalWidth, complete: i.complete, ...i.getBoundingClientRect().toJSON()
    }))""")


def ink_and_colour(shot: np.ndarray, box: dict) -> tuple[float, float]:
    """The fractions of dark and of coloured pixels in ``box`` of the screenshot."""
    region = shot[int(box["top"]):int(box["bottom"]), int(box["left"]):int(box["right"])]
    ink = (region.min(axis=2) < 200).mean()
    colour = (region.max(axis=2).astype(int) - region.min(axis=2) > 80).mean()
    return float(ink), float(colour)
