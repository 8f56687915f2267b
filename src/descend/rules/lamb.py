"""LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76
minutes"), as pytorch-optimizer 4.1.0 computes it."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from descend.rules.common import norm

MAX_WEIGHT_NORM = 10.0  # pytorch-optimizer's Lamb.clamp: |theta| is clamped to it


def lamb(
    p: Tensor, g: Tensor, *, exp_avg: Tensor, exp_avg_sq: Tensor, step: float, lr: float,
    betas: tuple[float, float], weight_decay: float, weight_decouple: bool, fixed_decay: bool,
    rectify: bool, degenerated_to_sgd: bool, n_sma_threshold: float, grad_averaging: bool,
    adam: bool, pre_norm: bool, eps: float, maximize: bool, adam_debias: bool,
    grad_scale: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Adam's step rescaled, tensor by tensor, by a trust ratio |theta| / |update|.

    g <- g * min(1, max_grad_norm / |g_all|) (pre_norm);  g <- (-1 if maximize) g
    m <- beta1 m + (1 - beta1) g  (g alone without grad_averaging) ;  v <- beta2 v + (1-beta2) g^2
    theta <- theta (1 - lambda lr)           (weight_decouple; lambda alone with fixed_decay)
    u = m / (sqrt(v) + eps) (+ lambda theta without weight_decouple)
    r = min(|theta|, 10) / (|u| + eps)       (1 where a norm is 0, or with adam=True)
    theta <- theta - lr / (1 - beta1^t) * r * u
    rectify: u takes RAdam's rectified form (SGD with momentum while the variance is
    intractable: no step at all without degenerated_to_sgd), and |u| is the norm of the
    candidate theta - step * u, as pytorch-optimizer computes it.
    """
    beta1, beta2 = betas
    if pre_norm:
        g = g * grad_scale
    if maximize:
        g = -g
    m = beta1 * exp_avg + ((1 - beta1) if grad_averaging else 1.0) * g
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    buffers = {"exp_avg": m, "exp_avg_sq": v}
    if weight_decay != 0 and weight_decouple:
        p = p * (1 - weight_decay * (1.0 if fixed_decay else lr))
    step_size, n_sma = rectified_step_size(step, lr, beta2, rectify, n_sma_threshold,
                                           degenerated_to_sgd)
    if not adam_debias:
        step_size = step_size / (1 - beta1**step)
    # (before any branch: a reduction at every step, so that the traced backends always refuse
    # the rule, not only once the rectified steps begin)
    weight_norm = norm(p).clamp(min=0, max=MAX_WEIGHT_NORM)
    if rectify and step_size <= 0:
        return p, buffers
    if rectify:
        direction = m / (v.sqrt() + eps) if n_sma >= n_sma_threshold else m
        measured = p - step_size * direction  # (pytorch-optimizer's norm of the new theta)
    else:
        direction = m / (v.sqrt() + eps)
        if not weight_decouple and weight_decay > 0:
            direction = direction + weight_decay * p
        measured = direction
    ratio = 1.0 if adam else trust_ratio(weight_norm, norm(measured), eps)
    return p - (step_size * ratio) * direction, buffers


def trust_ratio(weight_norm: Tensor, update_norm: Tensor, eps: float) -> Tensor:
    """min(|theta|, 10) / (|update| + eps) (``weight_norm`` is clamped already), or 1 where
    either norm is 0 (a selection, not a branch: torch.compile keeps one graph)."""
    return torch.where((weight_norm == 0) | (update_norm == 0), 1.0,
                       weight_norm / (update_norm + eps))


def rectified_step_size(step: float, lr: float, beta2: float, rectify: bool,
                        n_sma_threshold: float, degenerated_to_sgd: bool) -> tuple[float, float]:
    """lr times RAdam's rectification r_t, and the SMA length rho_t (pytorch-optimizer's
    get_rectify_step_size): r_t = -1 (no step) while rho_t < threshold, or 1 with
    degenerated_to_sgd."""
    if not rectify:
        return lr, 0.0
    n_sma_max = 2.0 / (1.0 - beta2) - 1.0
    beta2_t = beta2**step
    n_sma = n_sma_max - 2 * step * beta2_t / (1.0 - beta2_t)
    if n_sma >= n_sma_threshold:
        rt = math.sqrt((1.0 - beta2_t) * (n_sma - 4) / (n_sma_max - 4) * (n_sma - 2) / n_sma
                       * n_sma_max / (n_sma_max - 2))
    else:
        rt = 1.0 if degenerated_to_sgd else -1.0
    return lr * rt, n_sma
