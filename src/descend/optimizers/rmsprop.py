from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from descend import rules
from descend.optimizer import Optimizer
from descend.validation import NONNEGATIVE, UNIT


class RMSprop(Optimizer):
    """RMSprop, optionally centered, with momentum or Nesterov momentum.

    Same signature and defaults as ``torch.optim.RMSprop``, plus ``nesterov`` (needs
    momentum > 0): RMSprop with Nesterov momentum, Goodfellow et al. "Deep Learning" Alg. 8.6.
    """

    rule = staticmethod(rules.rmsprop)
    ranges = {"lr": NONNEGATIVE, "alpha": UNIT, "eps": NONNEGATIVE,
              "weight_decay": NONNEGATIVE, "momentum": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
        centered: bool = False, capturable: bool = False, foreach: bool | None = None,
        maximize: bool = False, differentiable: bool = False, *, nesterov: bool = False,
        skip_nonfinite: bool = False, impl: str = "auto",
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, nesterov=nesterov,
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("RMSprop: nesterov=True requires momentum > 0 (for example "
                             f"momentum=0.9); got momentum={group['momentum']}")

    def state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return (("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
                + (("grad_avg",) if group["centered"] else ()))
