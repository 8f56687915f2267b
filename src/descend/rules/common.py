"""Pieces shared by several rules."""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import torch
from torch import Tensor


def regularized_gradient(g: Tensor, p: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    """g <- (-1 if maximize) * g + lambda * theta: the L2 penalty folded into the gradient.

    This is how torch.optim applies ``weight_decay`` in every optimizer except AdamW.
    """
    if maximize:
        g = -g
    if weight_decay != 0:
        g = g + weight_decay * p
    return g


def log(x: Any) -> Any:
    """ln x of a number (math.log), or of a tensor or traced value (its ``.log()``: a scalar
    that depends on the step is a tensor under torch.compile and a graph node when traced)."""
    return math.log(x) if isinstance(x, Real) else x.log()


def exp(x: Any) -> Any:
    """e^x, as ``log``."""
    return math.exp(x) if isinstance(x, Real) else x.exp()


def norm(t: Tensor) -> Tensor:
    """The L2 norm of a whole tensor, a 0-d tensor: a reduction, outside the traced
    backends' elementwise vocabulary (a rule that calls it runs on the reference backend)."""
    return torch.linalg.vector_norm(t)
