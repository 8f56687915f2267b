"""Adamax (Kingma and Ba 2015, section 7.1): Adam with the infinity norm."""

from __future__ import annotations

import torch
from torch import Tensor

from descend.rules.common import regularized_gradient


def adamax(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_inf: Tensor, step: float,
    lr: float, betas: tuple[float, float], eps: float, weight_decay: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Adamax: the second moment replaced by an exponentially weighted infinity norm.

    m <- beta1*m + (1-beta1)*g
    u <- max(beta2*u, |g| + eps)
    theta <- theta - lr/(1-beta1^t) * m/u
    """
    beta1, beta2 = betas
    g = regularized_gradient(g, p, weight_decay, maximize)
    m = beta1 * exp_avg + (1 - beta1) * g
    u = torch.maximum(beta2 * exp_inf, g.abs() + eps)
    clr = lr / (1 - beta1**step)
    return p - clr * (m / u), {"exp_avg": m, "exp_inf": u}
