from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.rmsprop import rmsprop, rmsprop_textbook
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT

MOMENTUM_FORMS = {"torch": rmsprop, "textbook": rmsprop_textbook}


class RMSprop(Optimizer):
    """RMSprop, optionally centered, with momentum or Nesterov momentum.

    Same signature and defaults as ``torch.optim.RMSprop``, plus ``nesterov`` (needs
    momentum > 0): RMSprop with Nesterov momentum, Goodfellow et al. "Deep Learning" Alg. 8.6,
    and ``momentum_form``: "torch" (``b <- mu*b + g/rms ; theta <- theta - lr*b``) or
    "textbook" (``v <- mu*v - lr*g/rms ; theta <- theta + v``, Algorithm 8.6's form, where a
    learning-rate schedule scales only new steps), as for SGD.
    """

    state_schema = (
        Buffer("square_avg"),
        Buffer("momentum_buffer",
               when=lambda group: group["momentum"] > 0 and group["momentum_form"] == "torch"),
        Buffer("velocity",
               when=lambda group: group["momentum"] > 0 and group["momentum_form"] == "textbook"),
        Buffer("grad_avg", when="centered"),
    )
    listings = (
        Listing("rmsprop", "AdaGrad with a fading memory: divide by a running RMS of recent "
                "gradients so steps do not vanish.",
                r"E[g^2] \leftarrow \alpha E[g^2] + (1-\alpha) g_t^2;\quad \theta \leftarrow "
                r"\theta - \frac{\eta}{\sqrt{E[g^2]}+\epsilon}\, g_t",
                "Hinton 2012, Coursera lecture 6e"),
        Listing("rmsprop-nesterov", "RMSprop's per-coordinate scaling plus Nesterov "
                "momentum's look-ahead.",
                r"E[g^2] \leftarrow \alpha E[g^2] + (1-\alpha) g_t^2;\ v \leftarrow \mu v + "
                r"\frac{g_t}{\sqrt{E[g^2]}+\epsilon};\ \theta \leftarrow \theta - \eta\left("
                r"\frac{g_t}{\sqrt{E[g^2]}+\epsilon} + \mu v\right)",
                "Goodfellow, Bengio and Courville 2016, Algorithm 8.6",
                {"lr": 1e-3, "momentum": 0.9, "nesterov": True}),
    )
    ranges = {"lr": NONNEGATIVE, "alpha": UNIT, "eps": NONNEGATIVE,
              "weight_decay": NONNEGATIVE, "momentum": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
        centered: bool = False, capturable: bool = False, foreach: bool | None = None,
        maximize: bool = False, differentiable: bool = False, *, nesterov: bool = False,
        momentum_form: str = "torch", skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, nesterov=nesterov,
                        maximize=maximize, momentum_form=momentum_form)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def rule_for(self, group: dict[str, Any]):
        return MOMENTUM_FORMS[group["momentum_form"]]

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        if group["momentum_form"] not in MOMENTUM_FORMS:
            raise ValueError(f"RMSprop: invalid momentum_form={group['momentum_form']!r}; "
                             f"choose one of {sorted(MOMENTUM_FORMS)}")
        if group["nesterov"] and group["momentum"] <= 0:
            raise ValueError("RMSprop: nesterov=True requires momentum > 0 (for example "
                             f"momentum=0.9); got momentum={group['momentum']}")

