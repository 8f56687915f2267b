"""Adafactor (Shazeer and Stern 2018, "Adafactor: Adaptive Learning Rates with Sublinear Memory
Cost"): a second moment kept as row and column factors, and steps relative to the parameters'
scale."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


def adafactor(
    p: Tensor, g: Tensor, *, step: float, lr: float, beta2_decay: float,
    eps: tuple[float | None, float], d: float, weight_decay: float, maximize: bool,
    row_var: Tensor | None = None, col_var: Tensor | None = None,
    variance: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Adafactor, as torch.optim.Adafactor computes it (torch 2.13, ``torch/optim/_adafactor.py``;
    it uses lr as the cap of the relative step and for decoupled weight decay, and eps1 inside
    the variance estimate, unlike the paper). A matrix (or the last two dimensions of a tensor)
    keeps row and column means of g^2, a vector its full ``variance``:

    beta2_hat = 1 - t^tau;   rho = min(lr, 1/sqrt(t));   a = max(eps2, RMS(theta)) * rho
    theta <- theta * (1 - lr*lambda)
    R <- lerp(R, mean_cols(g^2), t^tau);   C <- lerp(C, mean_rows(g^2), t^tau)
    V  = R C / max(mean(R), eps1)          (vectors: V <- lerp(V, g^2, t^tau))
    U  = g / sqrt(max(V, eps1^2));         theta <- theta - a * U / max(1, RMS(U)/d)
    eps1 = None is the machine epsilon of the parameter's dtype.
    """
    if not p.numel():  # nothing to update (torch divides by the zero size)
        kept = {"row_var": row_var, "col_var": col_var, "variance": variance}
        return p, {name: b for name, b in kept.items() if b is not None}
    if maximize:
        g = -g
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = torch.finfo(p.dtype).eps
    weight = step**beta2_decay  # 1 - beta2_hat
    rho = min(lr, 1 / step**0.5)
    alpha = max(eps2, p.norm(2).item() / p.numel() ** 0.5) * rho
    if weight_decay != 0:
        p = p * (1 - lr * weight_decay)
    if variance is None:  # factored: row and column means of g^2
        row_var = row_var.lerp(torch.norm(g, dim=-1, keepdim=True).square() / g.size(-1), weight)
        col_var = col_var.lerp(torch.norm(g, dim=-2, keepdim=True).square() / g.size(-2), weight)
        estimate = (row_var @ col_var) / row_var.mean(dim=-2, keepdim=True).clamp(min=eps1)
        new_state = {"row_var": row_var, "col_var": col_var}
    else:
        estimate = variance = variance.lerp(g * g, weight)
        new_state = {"variance": variance}
    update = estimate.clamp(min=eps1 * eps1).rsqrt() * g
    denom = max(1.0, update.norm(2).item() / (update.numel() ** 0.5 * d))
    return torch.add(p, update, alpha=-alpha / denom), new_state


def row_shape(p: Tensor, group: Mapping[str, Any]) -> tuple[int, ...] | None:
    """``row_var``'s shape: the parameter's, its last dimension 1; matrices and up only."""
    return (*p.shape[:-1], 1) if p.dim() > 1 else None


def col_shape(p: Tensor, group: Mapping[str, Any]) -> tuple[int, ...] | None:
    """``col_var``'s shape: the parameter's, its second-to-last dimension 1."""
    return (*p.shape[:-2], 1, p.shape[-1]) if p.dim() > 1 else None


def vector_shape(p: Tensor, group: Mapping[str, Any]) -> tuple[int, ...] | None:
    """``variance``'s shape: the parameter's, for vectors and scalars only."""
    return tuple(p.shape) if p.dim() <= 1 else None
