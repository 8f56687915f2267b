"""AdEMAMix (Pagliardini, Ablin and Grangier 2024, "The AdEMAMix Optimizer: Better, Faster,
Older"), as pytorch-optimizer 4.1.0 computes it."""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import exp, log


def ademamix(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor, exp_avg_slow: Tensor,
    step: float, lr: float, betas: tuple[float, float, float], weight_decay: float,
    weight_decouple: bool, fixed_decay: bool, alpha: float, t_alpha_beta3: float | None,
    eps: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Adam plus a second, slow momentum (beta3 ~ 0.9999) that remembers old gradients.

    m1 <- beta1*m1 + (1-beta1)*g ;  m2 <- beta3_t*m2 + (1-beta3_t)*g ;  v <- beta2*v + (1-beta2)*g^2
    theta <- theta - lr * (m1/(1-beta1^t) + alpha_t*m2) / (sqrt(v)/sqrt(1-beta2^t) + eps)
    With t_alpha_beta3 = T, alpha and beta3 warm up over T steps: alpha_t = min(t alpha/T, alpha),
    beta3_t = min(exp(ln b1 ln b3 / ((1-t/T) ln b3 + (t/T) ln b1)), b3).
    Weight decay: theta <- theta (1 - lambda*lr) (weight_decouple; lambda alone with
    fixed_decay), or g <- g + lambda*theta.
    """
    beta1, beta2, beta3 = betas
    if maximize:
        g = -g
    if weight_decay != 0 and weight_decouple:
        p = p * (1 - weight_decay * (1.0 if fixed_decay else lr))
    elif weight_decay > 0:
        g = g + weight_decay * p
    alpha_t, beta3_t = alpha, beta3
    if t_alpha_beta3 is not None:
        alpha_t = min(step * alpha / t_alpha_beta3, alpha)
        ratio = step / t_alpha_beta3
        beta3_t = min(exp(log(beta1) * log(beta3)
                          / ((1 - ratio) * log(beta3) + ratio * log(beta1))), beta3)
    m = beta1 * exp_avg + (1 - beta1) * g
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    slow = beta3_t * exp_avg_slow + (1 - beta3_t) * g
    denom = v.sqrt() / (1 - beta2**step) ** 0.5 + eps
    update = m / (1 - beta1**step) + alpha_t * slow
    return p - lr * (update / denom), {"exp_avg": m, "exp_avg_sq": v, "exp_avg_slow": slow}
