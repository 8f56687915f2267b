"""LARS (You, Gitman and Ginsburg 2017, "Large Batch Training of Convolutional Networks"), as
pytorch-optimizer 4.1.0 computes it."""

from __future__ import annotations

import torch
from torch import Tensor

from descend.rules.common import norm


def lars(
    p: Tensor, g: Tensor, *, momentum_buffer: Tensor | None = None, step: float, lr: float,
    weight_decay: float, momentum: float, dampening: float, trust_coefficient: float,
    nesterov: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SGD with momentum on a gradient rescaled, tensor by tensor, to a fixed fraction of the
    parameter's norm (matrices and larger; vectors and scalars take plain SGD steps).

    g <- (-1 if maximize) g
    where p has 2+ dims:  g <- (g + lambda p) * eta |p| / (|g| + lambda |p|)   (1 where a norm is 0)
    b <- mu b + (1 - dampening) g ;  g <- g + mu b (nesterov) or b
    theta <- theta - lr g
    """
    if maximize:
        g = -g
    ratio = trust_ratio(p, g, weight_decay, trust_coefficient)  # (a reduction: not traced)
    if p.ndim > 1:
        g = (g + weight_decay * p) * ratio
    buffers = {}
    if momentum > 0:
        b = buffers["momentum_buffer"] = momentum * momentum_buffer + (1 - dampening) * g
        g = g + momentum * b if nesterov else b
    return p - lr * g, buffers


def trust_ratio(p: Tensor, g: Tensor, weight_decay: float, trust_coefficient: float) -> Tensor:
    """eta |p| / (|g| + lambda |p|), or 1 where |p| or that denominator is 0."""
    p_norm = norm(p)
    denominator = norm(g) + weight_decay * p_norm
    ratio = torch.where(denominator > 0, trust_coefficient * p_norm / denominator, 1.0)
    return torch.where(p_norm > 0, ratio, 1.0)
