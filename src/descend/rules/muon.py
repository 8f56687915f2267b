"""Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"): momentum
whose update matrix is orthogonalized by a Newton-Schulz iteration before it is applied."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from descend.distributed import is_sharded, on_whole_tensor


def muon(
    p: Tensor, g: Tensor, *, momentum_buffer: Tensor, step: float,
    lr: float, weight_decay: float, momentum: float, nesterov: bool,
    ns_coefficients: tuple[float, float, float], eps: float, ns_steps: int,
    adjust_lr_fn: str | None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Muon, as torch.optim.Muon computes it (torch 2.13, ``torch/optim/_muon.py``).

    B     <- mu*B + (1-mu)*g                       (torch's lerp)
    U     <- g + mu*(B - g) if nesterov else B
    O     <- NS_k^(a,b,c)(U)                       (bfloat16, as torch)
    theta <- theta*(1 - lr*lambda) - lr*s*O,    s = sqrt(max(1, A/B)) ("original"), or
             0.2*sqrt(max(A, B)) ("match_rms_adamw"), for theta of shape (A, B)
    """
    buffer = momentum_buffer.lerp(g, 1 - momentum)
    update = g.lerp(buffer, momentum) if nesterov else buffer
    if is_sharded(update):  # FSDP2: orthogonalize the whole matrix, keep this rank's rows
        ortho = on_whole_tensor(update, newton_schulz, ns_coefficients, ns_steps, eps)
    else:
        ortho = newton_schulz(update, ns_coefficients, ns_steps, eps)
    p = p * (1 - lr * weight_decay)
    return torch.add(p, ortho, alpha=-lr * lr_scale(adjust_lr_fn, p.shape)), {
        "momentum_buffer": buffer}


def newton_schulz(m: Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float) -> Tensor:
    """The quintic Newton-Schulz iteration that maps m = U S V^T to about U V^T (its singular
    values end near 1, between about 0.5 and 1.5), in bfloat16 as torch and Keller Jordan's
    reference run it:

    X <- m / max(||m||_F, eps)   (transposed to be wide)
    X <- a X + (b A + c A^2) X,  A = X X^T,   ``steps`` times
    """
    a, b, c = coefficients
    x = m.bfloat16()
    tall = m.size(0) > m.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if tall else x


def lr_scale(adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """How Muon scales lr for a matrix of ``shape`` (A, B), so that rectangular matrices get
    updates of comparable RMS: sqrt(max(1, A/B)) (Keller Jordan's "original"), 0.2*sqrt(max(A, B))
    (Moonshot's "match_rms_adamw", which reuses AdamW's lr and weight decay)."""
    rows, cols = shape[:2]
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return math.sqrt(max(1, rows / cols)) if cols else 1.0  # (an empty matrix: no update)
