"""``mnist1d``: generated 1-D digits (Greydanus 2020), a 40-100-100-10 MLP as in the paper."""

from __future__ import annotations

import torch.nn.functional as F

from descend.lab.data.mnist1d import make_dataset
from descend.lab.data.splits import stratified_split
from descend.lab.tasks._models import mlp
from descend.lab.tasks.base import Splits, Task


def load(seed: int) -> Splits:
    x, y = make_dataset()
    return stratified_split(x, y, (3500, 500, 1000), seed=0)


TASK = Task(
    name="mnist1d",
    description="MNIST-1D (generated, 40 points), MLP 40-100-100-10, cross-entropy",
    load=load,
    build_model=lambda seed: mlp(40, 100, 100, 10, seed=seed),
    loss=F.cross_entropy,
    epochs=20,
    batch_size=100,
    lr_grid=(1e-3, 1e-2, 1e-1),
    target_accuracy=0.5,
)
