"""Pieces shared by several rules."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from descend.engines.ir import round_float32


def regularized_gradient(g: Tensor, p: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    """g <- (-1 if maximize) * g + lambda * theta: the L2 penalty folded into the gradient.

    This is how torch.optim applies ``weight_decay`` in every optimizer except AdamW.
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g


def weight_decayed(p: Tensor, g: Tensor, lr: float, weight_decay: float, decoupled: bool,
                   maximize: bool) -> tuple[Tensor, Tensor]:
    """(theta, g) after weight decay: decoupled, theta <- theta * (1 - lr*lambda) (AdamW's
    form); or as an L2 penalty in the gradient (``regularized_gradient``)."""
    if not decoupled:
        return p, regularized_gradient(g, p, weight_decay, maximize)
    if maximize:
        g = -g
    if weight_decay != 0:
        p = p * (1 - lr * weight_decay)
    return p, g


def at_least(x: Any, low: float) -> Any:
    """max(x, low) of a number, a tensor (under torch.compile) or a traced value."""
    return max(x, low) if isinstance(x, Real) else x.clamp(min=low)


def log(x: Any) -> Any:
    """ln x of a number (math.log), or of a tensor or traced value (its ``.log()``: a scalar
    that depends on the step is a tensor under torch.compile and a graph node when traced)."""
    return math.log(x) if isinstance(x, Real) else x.log()


def exp(x: Any) -> Any:
    """e^x, as ``log``."""
    return math.exp(x) if isinstance(x, Real) else x.exp()


def in_scalar_dtype(x: Any) -> Any:
    """``x`` as torch's per-tensor state tensors hold it (NAdam's ``mu_product``): rounded to
    float32, torch's scalar dtype unless the default dtype is float64. A tensor (under
    torch.compile) is already held in that dtype."""
    if isinstance(x, Tensor) or torch.get_default_dtype() == torch.float64:
        return x
    if isinstance(x, Real):
        return round_float32(x)
    return x.trace.node("float32", x)


def norm(t: Tensor) -> Tensor:
    """The L2 norm of a whole tensor, a 0-d tensor: a reduction, outside the traced
    backends' elementwise vocabulary (a rule that calls it runs on the reference backend)."""
    return torch.linalg.vector_norm(t)
