"""What a task is: data with a train / validation / test split, a model, a loss.

A task is a small declarative object. Adding one is one new file in ``descend/lab/tasks/`` that
defines ``TASK = Task(...)``; it is found by name automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

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

    Data from a folder (``--data-dir``): a task that can read its data from files sets
    ``load_dir(folder) -> Splits``; ``task.with_data_dir(folder)`` is then the same task whose
    ``load`` reads that folder (errors about the folder are raised at the first ``load``).
    The data and its split are fixed (they define the problem); ``seed`` varies the model's
    initialization and the order of the minibatches, and the data only where the task says so.
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
    load_dir: Callable[[str], Splits] | None = None
    data_dir: str | None = None

    def with_data_dir(self, data_dir: str | None) -> Task:
        """This task reading its data from ``data_dir`` (None: the default data)."""
        if data_dir is None:
            return self
        if self.load_dir is None:
            raise ValueError(f"task {self.name!r} does not read data from a folder; drop "
                             "--data-dir (it is for tasks such as mnist)")
        load_dir, folder = self.load_dir, str(data_dir)
        return replace(self, load=lambda seed: load_dir(folder), data_dir=folder)
