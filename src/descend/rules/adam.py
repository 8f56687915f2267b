"""Adam (Kingma and Ba 2015; seeds 000 and 002), AMSGrad (Reddi et al. 2018) and AdamW
(Loshchilov and Hutter 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from descend.rules.common import regularized_gradient


def adam(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None = None, step: float,
    lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
    amsgrad: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Adam: momentum on the gradient, RMSprop on its scale, both bias-corrected.

    m <- beta1*m + (1-beta1)*g
    v <- beta2*v + (1-beta2)*g^2
    v_max <- max(v_max, v)                                   (AMSGrad only; else v_max = v)
    theta <- theta - lr * (m/(1-beta1^t)) / (sqrt(v_max/(1-beta2^t)) + eps)
    """
    beta1, beta2 = betas
    g = regularized_gradient(g, p, weight_decay, maximize)
    m = beta1 * exp_avg + (1 - beta1) * g
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    new_state = {"exp_avg": m, "exp_avg_sq": v}
    if amsgrad:
        v = torch.maximum(max_exp_avg_sq, v)
        new_state["max_exp_avg_sq"] = v
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    return p - lr * m_hat / (v_hat.sqrt() + eps), new_state


def adamw(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None = None, step: float,
    lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
    amsgrad: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """AdamW: Adam with decoupled weight decay.

    theta <- theta * (1 - lr*lambda), then the Adam step without an L2 term.
    """
    return adam(
        p * (1 - lr * weight_decay), g, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
        max_exp_avg_sq=max_exp_avg_sq, step=step, lr=lr, betas=betas, eps=eps,
        weight_decay=0, amsgrad=amsgrad, maximize=maximize,
    )
