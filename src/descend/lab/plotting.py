"""Plot style shared by the lab's figures: one color per optimizer everywhere, one way to save."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: the lab runs headless

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# The seed optimizers keep the same color in every figure of a report (tab10, in seed order).
_PALETTE = plt.get_cmap("tab10").colors
_SEED_ORDER = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop-nesterov",
               "adadelta", "adam", "adamw")


def optimizer_colors(labels: list[str]) -> list[tuple[float, float, float]]:
    """One color per run. Labels may carry hyperparameters (``adam:lr=0.1``): a seed optimizer
    keeps its own color unless two runs share an optimizer, then colors go by position."""
    names = [label.partition(":")[0] for label in labels]
    if len(set(names)) == len(names) and all(n in _SEED_ORDER for n in names):
        return [_PALETTE[_SEED_ORDER.index(n) % len(_PALETTE)] for n in names]
    return [_PALETTE[i % len(_PALETTE)] for i in range(len(labels))]


def save(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Writes ``fig`` to ``path`` (creating its folder) and closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
