from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.nadam import nadam
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class NAdam(Optimizer):
    """NAdam. Same signature and defaults as ``torch.optim.NAdam``; ``decoupled_weight_decay``
    makes it NAdamW, as in torch."""

    rule = staticmethod(nadam)
    state_schema = (Buffer("mu_product", initial=1.0, per="tensor"), Buffer("exp_avg"),
                    Buffer("exp_avg_sq"))
    listings = (Listing(
        "nadam", "Adam that looks ahead: the step uses the momentum it is about to have "
        "(Nesterov), with the momentum itself warmed up over the first few thousand steps.",
        r"\theta \leftarrow \theta - \eta\,\frac{\frac{1-\mu_t}{1-\prod_{i\leq t}\mu_i}\,g_t"
        r" + \frac{\mu_{t+1}}{1-\prod_{i\leq t+1}\mu_i}\,m_t}{\sqrt{v_t/(1-\beta_2^t)}+\epsilon}",
        "Dozat 2016"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "eps": NONNEGATIVE, "weight_decay": NONNEGATIVE,
              "momentum_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
        momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *,
        foreach: bool | None = None, maximize: bool = False, capturable: bool = False,
        differentiable: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)
