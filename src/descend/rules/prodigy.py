"""Prodigy (Mishchenko and Defazio 2024, "Prodigy: An Expeditiously Adaptive Parameter-Free
Learner"), as prodigyopt 1.1.2 computes it.

Adam whose step size is d * lr, where d estimates the distance to the solution from how far
the parameters have moved along the gradients: d = d_coef * sum_t <g_t, x_0 - x_t> dlr_t /
|s|_1, with s an EMA of the weighted gradients. The sums run over every tensor of every group,
so d is computed once per step (``Prodigy.step_scalars``); the rule gets it as numbers.
"""

from __future__ import annotations

from torch import Tensor


def prodigy(
    p: Tensor, g: Tensor, *, s: Tensor, p0: Tensor, exp_avg_sq: Tensor,
    exp_avg: Tensor | None = None, step: float, betas: tuple[float, float], beta3: float,
    eps: float, weight_decay: float, decouple: bool, active: bool, d_before: float,
    d_after: float, s_scale: float, step_size: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """One tensor's Prodigy step, with the step's d (before and after its update), the step
    size dlr = d * lr * bias correction (``step_size``: 0 at a step where no gradient has
    moved s), s's weight (d/d0 * dlr, or d/d0 * d with safeguard_warmup), and whether the
    group's statistics move (``active``: its lr > 0).

    g <- g + lambda * theta                  (unless decouple)
    m <- beta1 m + d (1-beta1) g ;  v <- beta2 v + d^2 (1-beta2) g^2 ;  s <- beta3 s + w g
                                             (where the group's lr > 0)
    theta <- theta (1 - lambda dlr)          (decouple)
    theta <- theta - dlr * m / (sqrt(v) + d eps)   (d: the new d; beta1 = 0: d g for m)
    """
    beta1, beta2 = betas
    if weight_decay != 0 and not decouple:
        g = g + weight_decay * p
    if active:  # prodigyopt leaves a group at lr 0 out of the statistics (it still steps)
        exp_avg_sq = beta2 * exp_avg_sq + d_before * d_before * (1 - beta2) * g * g
        s = beta3 * s + s_scale * g
        if exp_avg is not None:
            exp_avg = beta1 * exp_avg + d_before * (1 - beta1) * g
    buffers = {"s": s, "p0": p0, "exp_avg_sq": exp_avg_sq}
    if exp_avg is not None:
        buffers["exp_avg"] = exp_avg
    denom = exp_avg_sq.sqrt() + d_after * eps
    if weight_decay != 0 and decouple:
        p = p - weight_decay * step_size * p
    update = exp_avg if exp_avg is not None else d_after * g
    return p - step_size * (update / denom), buffers
