from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from descend import rules
from descend.optimizer import Optimizer
from descend.validation import NONNEGATIVE, UNIT_CLOSED


class Adadelta(Optimizer):
    """AdaDelta. Same signature and defaults as ``torch.optim.Adadelta``."""

    rule = staticmethod(rules.adadelta)
    ranges = {"lr": NONNEGATIVE, "rho": UNIT_CLOSED, "eps": NONNEGATIVE,
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
