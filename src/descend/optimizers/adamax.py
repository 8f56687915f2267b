from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.adamax import adamax
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class Adamax(Optimizer):
    """Adamax. Same signature and defaults as ``torch.optim.Adamax``."""

    rule = staticmethod(adamax)
    state_schema = (Buffer("exp_avg"), Buffer("exp_inf"))
    listings = (Listing(
        "adamax", "Adam whose scale is the largest recent gradient (an infinity norm), not an "
        "RMS: no square root, and one huge gradient is forgotten at rate beta2.",
        r"m \leftarrow \beta_1 m + (1-\beta_1) g_t;\ u \leftarrow \max(\beta_2 u, |g_t|+"
        r"\epsilon);\ \theta \leftarrow \theta - \frac{\eta}{1-\beta_1^t}\,\frac{m}{u}",
        "Kingma and Ba 2015, section 7.1"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "eps": NONNEGATIVE, "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
        foreach: bool | None = None, *, maximize: bool = False, differentiable: bool = False,
        capturable: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)
