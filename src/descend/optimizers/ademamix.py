from __future__ import annotations

from collections.abc import Iterable
from numbers import Real
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.ademamix import ademamix
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class AdEMAMix(Optimizer):
    """AdEMAMix. Same name, signature and defaults as ``pytorch_optimizer.AdEMAMix``
    (pytorch-optimizer 4.1.0)."""

    rule = staticmethod(ademamix)
    state_schema = (Buffer("exp_avg"), Buffer("exp_avg_sq"), Buffer("exp_avg_slow"))
    listings = (Listing(
        "ademamix", "Adam with a second, very slow momentum added in: gradients thousands of "
        "steps old still count, which one EMA cannot give without forgetting the recent ones.",
        r"\theta \leftarrow \theta - \eta\,\frac{\hat m_1 + \alpha\, m_2}{\sqrt{\hat v} + "
        r"\epsilon};\ m_2 \leftarrow \beta_3 m_2 + (1-\beta_3) g_t",
        "Pagliardini, Ablin and Grangier 2024"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "weight_decay": NONNEGATIVE,
              "alpha": NONNEGATIVE, "eps": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999), weight_decay: float = 0.0,
        weight_decouple: bool = False, fixed_decay: bool = False, alpha: float = 5.0,
        t_alpha_beta3: float | None = None, eps: float = 1e-8, maximize: bool = False,
        foreach: bool | None = None, *, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                        weight_decouple=weight_decouple, fixed_decay=fixed_decay, alpha=alpha,
                        t_alpha_beta3=t_alpha_beta3, eps=eps, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, skip_nonfinite=skip_nonfinite,
                         impl=impl, state_dtype=state_dtype,
                         stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        t = group["t_alpha_beta3"]
        if t is not None and (isinstance(t, bool) or not isinstance(t, Real) or not t > 0):
            raise ValueError(f"AdEMAMix: invalid t_alpha_beta3={t!r}; allowed: None (no "
                             "warm-up) or a number of steps > 0")
        super().check_hyperparameters(group)
