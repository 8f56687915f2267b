from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.asgd import asgd
from descend.state import Buffer
from descend.validation import NONNEGATIVE


class ASGD(Optimizer):
    """Averaged SGD. Same signature and defaults as ``torch.optim.ASGD``: the average of the
    iterates since step ``t0`` is in ``state[p]["ax"]``."""

    rule = staticmethod(asgd)
    state_schema = (Buffer("eta", initial="lr", per="tensor"),
                    Buffer("mu", initial=1.0, per="tensor"), Buffer("ax"))
    listings = (Listing(
        "asgd", "SGD with a slowly decaying step whose answer is the running average of its "
        "iterates: averaging cancels the noise that a constant step leaves.",
        r"\theta \leftarrow \theta(1-\lambda\eta_t) - \eta_t g_t;\ \bar\theta \leftarrow"
        r" \bar\theta + \mu_t(\theta - \bar\theta);\ \eta_t = \frac{\eta}{(1+\lambda\eta t)"
        r"^\alpha},\ \mu_t = \frac{1}{\max(1,\,t-t_0)}", "Polyak and Juditsky 1992"),)
    ranges = {"lr": NONNEGATIVE, "lambd": NONNEGATIVE, "alpha": NONNEGATIVE,
              "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        lambd: float = 1e-4, alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0,
        foreach: bool | None = None, maximize: bool = False, differentiable: bool = False,
        capturable: bool = False, *, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)
