from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import Tensor

from descend import rules
from descend.optimizer import Optimizer
from descend.validation import NONNEGATIVE, UNIT


class Adam(Optimizer):
    """Adam (optionally AMSGrad). Same signature and defaults as ``torch.optim.Adam``;
    ``decoupled_weight_decay=True`` makes it AdamW, as in torch."""

    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "eps": NONNEGATIVE, "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
        amsgrad: bool = False, *, foreach: bool | None = None, maximize: bool = False,
        capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
        decoupled_weight_decay: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         skip_nonfinite=skip_nonfinite, impl=impl)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        if len(group["betas"]) != 2:
            raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), "
                             f"got {group['betas']!r}")
        super().check_hyperparameters(group)

    def rule_for(self, group: dict[str, Any]):
        return rules.adamw if group["decoupled_weight_decay"] else rules.adam

    def state_names(self, group: dict[str, Any]) -> tuple[str, ...]:
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())


class AdamW(Adam):
    """Adam with decoupled weight decay. Same signature and defaults as ``torch.optim.AdamW``."""

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
        amsgrad: bool = False, *, maximize: bool = False, foreach: bool | None = None,
        capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
        skip_nonfinite: bool = False, impl: str = "auto",
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True,
                         skip_nonfinite=skip_nonfinite, impl=impl)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # As in torch: an Adam state dict loaded into AdamW keeps AdamW's decoupled decay.
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
