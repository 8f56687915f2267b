"""``quadratic``: DeepOBS's noisy quadratic (Schneider, Balles and Hennig 2019, "DeepOBS",
problem ``quadratic_deep``).

The loss of one sample x ~ N(0, I_100) is ``0.5 (theta - x)^T H (theta - x)`` with
``H = Q diag(lambda) Q^T``: 90 eigenvalues from U(0, 1), 10 from U(30, 60) (the spectrum
reported for deep networks, Chaudhari et al. 2017), Q a uniformly random rotation. The problem
(H and the data) is fixed; theta starts at all ones, as in DeepOBS. The expected loss is minimal
at theta = 0; gradient descent on it is stable for lr < 2 / lambda_max (about 0.033).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

from descend.lab.data.splits import to_split
from descend.lab.tasks._models import mean_loss
from descend.lab.tasks.base import Splits, Task

DIM = 100
PROBLEM_SEED = 42
SIZES = (1000, 1000, 1000)  # train / val / test samples


@lru_cache(maxsize=1)
def hessian() -> Tensor:
    """``Q diag(lambda) Q^T`` (float64) for the fixed problem seed."""
    rng = np.random.default_rng(PROBLEM_SEED)
    eigenvalues = np.concatenate([rng.uniform(0, 1, 90), rng.uniform(30, 60, 10)])
    # Haar-random orthogonal matrix: QR of a Gaussian matrix with the signs of R's diagonal
    # moved into Q (Mezzadri 2007).
    q, r = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    q *= np.sign(np.diag(r))
    return torch.from_numpy(q @ np.diag(eigenvalues) @ q.T)


@lru_cache(maxsize=1)
def load(seed: int = 0) -> Splits:
    rng = np.random.default_rng(PROBLEM_SEED + 1)
    parts = [rng.standard_normal((n, DIM)) for n in SIZES]
    return Splits(*(to_split(x, np.zeros(len(x), dtype=np.float32)) for x in parts))


class NoisyQuadratic(nn.Module):
    """``forward(x)`` is the per-sample loss ``0.5 (theta - x)^T H (theta - x)``."""

    def __init__(self, h: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.ones(len(h)))
        self.register_buffer("hessian", h.float())

    def forward(self, x: Tensor) -> Tensor:
        q = self.theta - x
        return 0.5 * ((q @ self.hessian) * q).sum(-1)


TASK = Task(
    name="quadratic",
    description="DeepOBS noisy quadratic, 100-D, eigenvalues U(0,1) x90 and U(30,60) x10",
    load=lambda seed: load(),
    build_model=lambda seed: NoisyQuadratic(hessian()),
    loss=mean_loss,
    classification=False,
    epochs=20,
    batch_size=128,
    lr_grid=(1e-3, 1e-2, 3e-2),
)
