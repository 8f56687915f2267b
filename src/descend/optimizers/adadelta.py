from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.adadelta import adadelta
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class Adadelta(Optimizer):
    """AdaDelta. Same signature and defaults as ``torch.optim.Adadelta``."""

    rule = staticmethod(adadelta)
    state_schema = (Buffer("square_avg"), Buffer("acc_delta"))
    listings = (Listing(
        "adadelta", "Steps measured in the units of the parameters: the ratio of the RMS of "
        "past steps to the RMS of gradients, no learning rate needed.",
        r"\Delta\theta = -\frac{\mathrm{RMS}(\Delta\theta)_{t-1}}{\mathrm{RMS}(g)_t}\, g_t;"
        r"\quad \theta \leftarrow \theta + \eta\, \Delta\theta", "Zeiler 2012"),)
    # rho in [0, 1) as for every decay rate (issue 2); torch also accepts rho = 1, where both
    # running averages stay at zero and AdaDelta degenerates into SGD with step lr.
    ranges = {"lr": NONNEGATIVE, "rho": UNIT, "eps": NONNEGATIVE,
              "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1.0,
        rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
        foreach: bool | None = None, *, capturable: bool = False, maximize: bool = False,
        differentiable: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

