"""descend: first-order optimizers for deep learning on PyTorch.

``import descend as optim`` is a drop-in for the torch.optim optimizers it implements.
"""

from descend.optimizer import Optimizer
from descend.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop
from descend.registry import REGISTRY, available, create

__all__ = [
    "SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW",
    "Optimizer", "REGISTRY", "available", "create",
]
__version__ = "0.1.0"
