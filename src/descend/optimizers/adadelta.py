from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from descend import rules
from descend.optimizer import Optimizer
from descend.validation import NONNEGATIVE, UNIT


class Adadelta(Optimizer):
    """AdaDelta. Same signature and defaults as ``torch.optim.Adadelta``."""

    rule = staticmethod(rules.adadelta)
    # rho in [0, 1) as for every decay rate (issue 2); torch also accepts rho = 1, where both
    # running averages stay at zero and AdaDelta degenerates into SGD with step lr.
    ranges = {"lr": NONNEGATIVE, "rho": UNIT, "eps": NONNEGATIVE,
              "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1.0,
        rho: float = 0.9, eps: float = 1e-6, weight_decay: float = 0,
        foreach: bool | None = None, *, capturable: bool = False, maximize: bool = False,
        differentiable: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
    ) -> None:
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl)

    def state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("square_avg", "acc_delta")
