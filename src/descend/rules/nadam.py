"""NAdam (Dozat 2016): Adam with Nesterov momentum, and the momentum warmed up by a schedule."""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import in_scalar_dtype, weight_decayed


def nadam(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor, mu_product: float,
    step: float, lr: float, betas: tuple[float, float], eps: float, weight_decay: float,
    momentum_decay: float, decoupled_weight_decay: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """NAdam, as torch.optim.NAdam computes it.

    mu_t = beta1 * (1 - 0.5 * 0.96^(t psi))          (psi: momentum_decay)
    m <- beta1*m + (1-beta1)*g;   v <- beta2*v + (1-beta2)*g^2
    theta <- theta - lr * [(1-mu_t)/(1-prod_{i<=t} mu_i) g + mu_{t+1}/(1-prod_{i<=t+1} mu_i) m]
                    / (sqrt(v/(1-beta2^t)) + eps)
    Decoupled weight decay (NAdamW) shrinks theta by (1 - lr*lambda) first.
    """
    beta1, beta2 = betas
    p, g = weight_decayed(p, g, lr, weight_decay, decoupled_weight_decay, maximize)
    mu = beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    # torch keeps the product in a float32 tensor: each factor and product is rounded there
    mu_product = in_scalar_dtype(mu_product * in_scalar_dtype(mu))
    m = beta1 * exp_avg + (1 - beta1) * g
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    denom = (v / (1 - beta2**step)).sqrt() + eps
    p = p - lr * (1 - mu) / (1 - mu_product) * g / denom
    p = p - lr * mu_next / (1 - mu_product * mu_next) * m / denom
    return p, {"exp_avg": m, "exp_avg_sq": v, "mu_product": mu_product}
