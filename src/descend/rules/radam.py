"""RAdam (Liu et al. 2020): Adam whose adaptive step is switched on once its variance is
tractable, and rectified until the variance estimate has settled."""

from __future__ import annotations

import torch
from torch import Tensor

from descend.rules.common import weight_decayed


def radam(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor, step: float,
    lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
    decoupled_weight_decay: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """RAdam, as torch.optim.RAdam computes it.

    m <- beta1*m + (1-beta1)*g;   v <- beta2*v + (1-beta2)*g^2
    rho_inf = 2/(1-beta2) - 1;    rho_t = rho_inf - 2 t beta2^t / (1-beta2^t)
    if rho_t > 5:  r_t = sqrt((rho_t-4)(rho_t-2) rho_inf / ((rho_inf-4)(rho_inf-2) rho_t))
                   theta <- theta - lr * m/(1-beta1^t) * sqrt(1-beta2^t)/(sqrt(v)+eps) * r_t
    else:          theta <- theta - lr * m/(1-beta1^t)        (SGD with momentum)
    Decoupled weight decay (RAdamW) shrinks theta by (1 - lr*lambda) first.
    """
    beta1, beta2 = betas
    p, g = weight_decayed(p, g, lr, weight_decay, decoupled_weight_decay, maximize)
    m = beta1 * exp_avg + (1 - beta1) * g
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    new_state = {"exp_avg": m, "exp_avg_sq": v}
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    m_hat = m / bias_correction1
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2

    def adaptive():
        return (bias_correction2**0.5) / (v.sqrt() + eps)

    def rect():  # NaN while rho_t < 4: only used where rho_t > 5
        return ((rho_t - 4) * (rho_t - 2) * rho_inf
                / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5

    if isinstance(step, Tensor):  # under torch.compile: select, not branch, on the step count
        return p - m_hat * lr * torch.where(rho_t > 5.0, adaptive() * rect(), 1.0), new_state
    if rho_t > 5.0:
        return p - m_hat * lr * adaptive() * rect(), new_state
    return p - m_hat * lr, new_state
