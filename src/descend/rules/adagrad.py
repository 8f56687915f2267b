"""AdaGrad (Duchi, Hazan and Singer 2011; seeds 000 and 002)."""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import regularized_gradient


def adagrad(
    p: Tensor, g: Tensor, *, sum: Tensor, step: float,  # noqa: A002 - torch's state name
    lr: float, lr_decay: float, eps: float, weight_decay: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """AdaGrad: each coordinate's step shrinks with the sum of its squared gradients.

    eta_t <- lr / (1 + (t-1) * lr_decay)
    G <- G + g^2
    theta <- theta - eta_t * g / (sqrt(G) + eps)
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    eta = lr / (1 + (step - 1) * lr_decay)
    accumulated = sum + g * g
    return p - eta * g / (accumulated.sqrt() + eps), {"sum": accumulated}
