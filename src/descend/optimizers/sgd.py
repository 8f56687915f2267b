from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.sgd import sgd, sgd_textbook
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT_CLOSED

MOMENTUM_FORMS = {"torch": sgd, "textbook": sgd_textbook}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum and Nesterov momentum.

    Same signature and defaults as ``torch.optim.SGD``. ``momentum_form="textbook"`` runs the
    seeds' form ``v <- mu*v - lr*g ; theta <- theta + v`` instead of torch's
    ``b <- mu*b + g ; theta <- theta - lr*b``; the two agree at a constant learning rate and
    differ under a schedule (see ``descend.rules.sgd``).
    """

    ranges = {"lr": NONNEGATIVE, "momentum": NONNEGATIVE, "dampening": UNIT_CLOSED,
              "weight_decay": NONNEGATIVE}
    supports_sparse = True
    listings = (
        Listing("sgd", "A blind climber steps straight down the local slope.",
                r"\theta \leftarrow \theta - \eta\, g_t", "Robbins and Monro 1951"),
        Listing("momentum", "A heavy ball: velocity accumulates along consistent slopes and "
                "damps zig-zags across a narrow valley.",
                r"v \leftarrow \mu v + g_t;\quad \theta \leftarrow \theta - \eta\, v",
                "Polyak 1964", {"momentum": 0.9}),
        Listing("nesterov", "Momentum that looks ahead: the gradient is taken where the "
                "velocity is about to carry you, so it brakes before overshooting.",
                r"v \leftarrow \mu v + g_t;\quad \theta \leftarrow \theta - \eta\,(g_t + \mu v)",
                "Nesterov 1983; Sutskever et al. 2013", {"momentum": 0.9, "nesterov": True}),
    )
    state_schema = (
        Buffer("momentum_buffer",
               when=lambda group: group["momentum"] != 0 and group["momentum_form"] == "torch"),
        Buffer("velocity",
               when=lambda group: group["momentum"] != 0 and group["momentum_form"] == "textbook"),
    )

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        momentum: float = 0, dampening: float = 0, weight_decay: float = 0,
        nesterov: bool = False, *, maximize: bool = False, foreach: bool | None = None,
        differentiable: bool = False, fused: bool | None = None, momentum_form: str = "torch",
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        momentum_form=momentum_form)
        super().__init__(params, defaults, foreach=foreach, differentiable=differentiable,
                         fused=fused, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        if group["momentum_form"] not in MOMENTUM_FORMS:
            raise ValueError(f"SGD: invalid momentum_form={group['momentum_form']!r}; "
                             f"choose one of {sorted(MOMENTUM_FORMS)}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov=True requires momentum > 0 and dampening = 0; "
                             f"got momentum={group['momentum']}, dampening={group['dampening']}")

    def rule_for(self, group: dict[str, Any]):
        return MOMENTUM_FORMS[group["momentum_form"]]

