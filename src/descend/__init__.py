"""descend: first-order optimizers for deep learning on PyTorch.

``import descend as optim`` is a drop-in for the torch.optim optimizers it implements.
"""

from descend import optimizers
from descend.optimizer import Optimizer
from descend.optimizers import *  # noqa: F403  every optimizer class (optimizers.__all__)
from descend.registry import REGISTRY, available, create

__all__ = [*optimizers.__all__, "Optimizer", "REGISTRY", "available", "create"]
__version__ = "0.1.0"
