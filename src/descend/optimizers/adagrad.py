from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend import rules
from descend.optimizer import Optimizer
from descend.validation import NONNEGATIVE


class Adagrad(Optimizer):
    """AdaGrad. Same signature and defaults as ``torch.optim.Adagrad``."""

    rule = staticmethod(rules.adagrad)
    ranges = {"lr": NONNEGATIVE, "lr_decay": NONNEGATIVE, "weight_decay": NONNEGATIVE,
              "initial_accumulator_value": NONNEGATIVE, "eps": NONNEGATIVE}
    supports_sparse = True

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        lr_decay: float = 0, weight_decay: float = 0, initial_accumulator_value: float = 0,
        eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
        differentiable: bool = False, fused: bool | None = None, skip_nonfinite: bool = False,
        impl: str = "auto",
    ) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, differentiable=differentiable,
                         fused=fused, skip_nonfinite=skip_nonfinite, impl=impl)

    def state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("sum",)

    def initial_state(self, p: Tensor, group: dict[str, Any]) -> dict[str, Tensor]:
        value = group["initial_accumulator_value"]
        if p.is_complex():  # a complex parameter is optimized as (real, imag) pairs: fill both
            value = complex(value, value)
        return {"sum": torch.full_like(p, value, memory_format=torch.preserve_format)}
