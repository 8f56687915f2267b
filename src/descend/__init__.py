"""descend: first-order optimizers for deep learning on PyTorch.

``import descend as optim`` is a drop-in for the torch.optim optimizers it implements.
"""

from torch.optim import LBFGS, SparseAdam, lr_scheduler, swa_utils

from descend import optimizers
from descend.optimizer import Optimizer
from descend.optimizers import *  # noqa: F403  every optimizer class (optimizers.__all__)
from descend.registry import REGISTRY, available, create

# torch's own: LBFGS (a quasi-Newton method with line search and a closure) and SparseAdam (lazy
# updates of sparse rows) are not elementwise first-order rules; lr_scheduler and swa_utils so
# that ``optim.lr_scheduler.StepLR`` works after ``import descend as optim``.
__all__ = [*optimizers.__all__, "LBFGS", "SparseAdam", "lr_scheduler", "swa_utils", "Optimizer",
           "REGISTRY", "available", "create"]
__version__ = "0.1.0"
