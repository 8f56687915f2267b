"""Plot style shared by the lab's figures: one color per optimizer everywhere, one way to save."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the lab runs headless

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from descend.lab.files import write_bytes_atomic  # noqa: E402
from descend.lab.spec import SEED_OPTIMIZERS  # noqa: E402

# The lab's matplotlib style (plt.rc_context(STYLE)): no top or right spines, a light grid.
STYLE = {
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.3, "grid.linewidth": 0.6, "axes.titlesize": 11, "axes.labelsize": 10,
    "legend.fontsize": 8.5, "legend.frameon": False, "font.size": 10,
    "mathtext.fontset": "cm",
}

# The seed optimizers keep the same color in every figure of a report (tab10, in seed order).
_PALETTE = plt.get_cmap("tab10").colors
_SEED_ORDER = (*SEED_OPTIMIZERS, "adamw")


def colour(index: int) -> tuple[float, float, float]:
    """The ``index``-th color of the lab's palette (tab10)."""
    return _PALETTE[index % len(_PALETTE)]


def optimizer_colors(labels: list[str]) -> list[tuple[float, float, float]]:
    """One color per run. Labels may carry hyperparameters (``adam:lr=0.1``): a seed optimizer
    keeps its own color unless two runs share an optimizer, then colors go by position."""
    names = [label.partition(":")[0] for label in labels]
    if len(set(names)) == len(names) and all(n in _SEED_ORDER for n in names):
        return [colour(_SEED_ORDER.index(n)) for n in names]
    return [colour(i) for i in range(len(labels))]


def png_bytes(fig: Figure, dpi: int = 110, **savefig: object) -> bytes:
    """``fig`` as PNG bytes; closes it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, **savefig)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Writes ``fig`` to ``path`` atomically (creating its folder) and closes it."""
    return write_bytes_atomic(path, png_bytes(fig, dpi=dpi, bbox_inches="tight"))
