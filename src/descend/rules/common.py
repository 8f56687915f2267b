"""Pieces shared by several rules."""

from __future__ import annotations

from torch import Tensor


def regularized_gradient(g: Tensor, p: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    """g <- (-1 if maximize) * g + lambda * theta: the L2 penalty folded into the gradient.

    This is how torch.optim applies ``weight_decay`` in every optimizer except AdamW.
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g
