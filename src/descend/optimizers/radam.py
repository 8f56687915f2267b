from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.radam import radam
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class RAdam(Optimizer):
    """RAdam. Same signature and defaults as ``torch.optim.RAdam``; ``decoupled_weight_decay``
    makes it RAdamW, as in torch."""

    rule = staticmethod(radam)
    state_schema = (Buffer("exp_avg"), Buffer("exp_avg_sq"))
    listings = (Listing(
        "radam", "Adam without a warm-up to tune: momentum SGD for the first steps, where the "
        "second moment is too young to trust, then Adam scaled by a rectifier that grows to 1.",
        r"\theta \leftarrow \theta - \eta\,\hat m\, r_t\,\frac{\sqrt{1-\beta_2^t}}{\sqrt{v}"
        r"+\epsilon}\ \mathrm{if}\ \rho_t = \rho_\infty - \frac{2t\beta_2^t}{1-\beta_2^t} > 5,"
        r"\ \mathrm{else}\ \theta - \eta\,\hat m", "Liu et al. 2020"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "eps": NONNEGATIVE, "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
        decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
        maximize: bool = False, capturable: bool = False, differentiable: bool = False,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)
