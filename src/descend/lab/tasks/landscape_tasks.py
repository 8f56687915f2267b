"""The 2-D landscapes of ``descend.lab.landscapes`` as tasks (``bowl``, ``rosenbrock``, ...),
so ``descend compare --task rosenbrock`` trains on them like on any other task.

The model holds the point (x, y), starting at the landscape's start; the data is one dummy
example, so one epoch is one optimizer step on the landscape's value at the point.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from descend.lab.tasks._models import mean_loss
from descend.lab.tasks.base import Split, Splits, Task

try:  # the landscapes module is optional for discovery: without it there are no such tasks
    from descend.lab.landscapes import LANDSCAPES, Landscape
except ImportError:  # pragma: no cover - only while the landscapes module is absent
    LANDSCAPES, Landscape = {}, None


class PointOnLandscape(nn.Module):
    """A point ``xy`` on ``fn``; ``forward(x)`` is ``fn(xy)`` for every row of the batch."""

    def __init__(self, fn, start: tuple[float, float]) -> None:
        super().__init__()
        self.fn = fn
        self.xy = nn.Parameter(torch.tensor(start, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.xy).expand(len(x))


def _one_dummy_example() -> Split:
    return Split(torch.zeros(1, 1), torch.zeros(1))


def landscape_task(landscape: Landscape) -> Task:
    dummy = Splits(_one_dummy_example(), _one_dummy_example(), _one_dummy_example())
    return Task(
        name=landscape.name,
        description=f"2-D landscape: {landscape.description}",
        load=lambda seed: dummy,
        build_model=lambda seed: PointOnLandscape(landscape.fn, landscape.start),
        loss=mean_loss,
        classification=False,
        epochs=landscape.steps,
        batch_size=1,
        lr_grid=(1e-3, 1e-2, 1e-1),
    )


TASKS = tuple(landscape_task(landscape) for landscape in LANDSCAPES.values())
