"""What a task is: data with a train / validation / test split, a model, a loss.

A task is a small declarative object. Adding one is one new file in ``descend/lab/tasks/`` that
defines ``TASK = Task(...)``; it is found by name automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn


@dataclass(frozen=True)
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split


@dataclass(frozen=True)
class Task:
    """``load(seed)`` gives the data (deterministic for a seed), ``build_model(seed)`` a freshly
    initialized model, ``loss(model(x), y)`` a scalar mean loss over the batch.

    ``classification`` says whether accuracy (argmax of the output vs y) is meaningful.
    The defaults are what ``descend compare`` uses when the user does not say.
    """

    name: str
    description: str
    load: Callable[[int], Splits]
    build_model: Callable[[int], nn.Module]
    loss: Callable[[Tensor, Tensor], Tensor]
    classification: bool = True
    epochs: int = 3
    batch_size: int = 64
    lr_grid: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
    target_accuracy: float | None = None
