"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms")."""

from __future__ import annotations

from torch import Tensor


def lion(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, step: float,
    lr: float, betas: tuple[float, float], weight_decay: float, decoupled_weight_decay: bool,
    init_lr: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Lion: the sign of an interpolation of momentum and gradient, a step of size lr on every
    coordinate; the momentum itself decays at a second rate.

    theta <- theta * (1 - lr*lambda)          (lambda / lr_0 with decoupled_weight_decay)
    theta <- theta - lr * sign(beta1*m + (1-beta1)*g)
    m     <- beta2*m + (1-beta2)*g
    """
    beta1, beta2 = betas
    if decoupled_weight_decay:  # lion-pytorch: the decay is relative to the initial lr
        weight_decay = weight_decay / init_lr
    p = p * (1 - lr * weight_decay)
    update = (beta1 * exp_avg + (1 - beta1) * g).sign()
    return p - lr * update, {"exp_avg": beta2 * exp_avg + (1 - beta2) * g}
