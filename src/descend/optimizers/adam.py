from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.adam import adam, adamw
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class Adam(Optimizer):
    """Adam (optionally AMSGrad). Same signature and defaults as ``torch.optim.Adam``;
    ``decoupled_weight_decay=True`` makes it AdamW, as in torch."""

    state_schema = (Buffer("exp_avg"), Buffer("exp_avg_sq"),
                    Buffer("max_exp_avg_sq", when="amsgrad"))
    listings = (Listing(
        "adam", "Momentum on the gradient and RMSprop on its scale, both bias-corrected for "
        "their zero start.",
        r"m \leftarrow \beta_1 m + (1-\beta_1) g_t;\ v \leftarrow \beta_2 v + (1-\beta_2)"
        r" g_t^2;\ \theta \leftarrow \theta - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-"
        r"\beta_2^t)}+\epsilon}", "Kingma and Ba 2015"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "eps": NONNEGATIVE, "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
        amsgrad: bool = False, *, foreach: bool | None = None, maximize: bool = False,
        capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
        decoupled_weight_decay: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def rule_for(self, group: dict[str, Any]):
        return adamw if group["decoupled_weight_decay"] else adam


class AdamW(Adam):
    """Adam with decoupled weight decay. Same signature and defaults as ``torch.optim.AdamW``."""

    listings = (Listing(
        "adamw", "Adam whose weight decay shrinks the weights directly instead of passing "
        "through the adaptive scaling.",
        r"\theta \leftarrow \theta(1-\eta\lambda) - \eta\,\frac{\hat m}{\sqrt{\hat v}+"
        r"\epsilon}", "Loshchilov and Hutter 2019"),)

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
        amsgrad: bool = False, *, maximize: bool = False, foreach: bool | None = None,
        capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable, differentiable=differentiable,
                         fused=fused, decoupled_weight_decay=True,
                         skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # As in torch: an Adam state dict loaded into AdamW keeps AdamW's decoupled decay.
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
