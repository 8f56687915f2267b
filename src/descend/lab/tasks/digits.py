"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images), a 64-64-10 MLP."""

from __future__ import annotations

from functools import lru_cache

import torch.nn.functional as F

from descend.lab.data.splits import stratified_split
from descend.lab.tasks._models import mlp
from descend.lab.tasks.base import Splits, Task


@lru_cache(maxsize=1)
def load(seed: int = 0) -> Splits:
    """Pixels 0-16 scaled to [0, 1]; a fixed stratified 1197 / 300 / 300 split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return stratified_split(digits.data / 16.0, digits.target, (1197, 300, 300), seed=0)


TASK = Task(
    name="digits",
    description="scikit-learn 8x8 digits, MLP 64-64-10, cross-entropy",
    load=lambda seed: load(),
    build_model=lambda seed: mlp(64, 64, 10, seed=seed),
    loss=F.cross_entropy,
    epochs=5,
    batch_size=32,
    lr_grid=(1e-3, 1e-2, 1e-1),
    target_accuracy=0.9,
)
