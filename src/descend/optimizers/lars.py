from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.lars import lars
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT


class LARS(Optimizer):
    """LARS. Same name, signature and defaults as ``pytorch_optimizer.LARS``
    (pytorch-optimizer 4.1.0); other keyword arguments are accepted and ignored, as there.

    The trust ratio is a reduction over each tensor (two norms): the rule runs on the reference
    backend (``impl="auto"`` chooses it; the traced backends refuse the rule)."""

    rule = staticmethod(lars)
    state_schema = (Buffer("momentum_buffer", when=lambda group: group["momentum"] > 0),)
    listings = (Listing(
        "lars", "SGD with momentum whose step, layer by layer, is a fixed fraction of the "
        "weights' own size: no layer outruns the others, so huge batches and lrs stay stable.",
        r"b \leftarrow \mu b + \frac{\eta_{\mathrm{tr}} \|\theta\|}{\|g_t\| + "
        r"\lambda \|\theta\|}(g_t + \lambda\theta);\ \theta \leftarrow \theta - \eta\, b",
        "You, Gitman and Ginsburg 2017"),)
    ranges = {"lr": NONNEGATIVE, "weight_decay": NONNEGATIVE, "momentum": UNIT,
              "dampening": UNIT, "trust_coefficient": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
        weight_decay: float = 0.0, momentum: float = 0.9, dampening: float = 0.0,
        trust_coefficient: float = 1e-3, nesterov: bool = False, foreach: bool | None = None,
        maximize: bool = False, *, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
        **kwargs: Any,
    ) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                        dampening=dampening, trust_coefficient=trust_coefficient,
                        nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, skip_nonfinite=skip_nonfinite,
                         impl=impl, state_dtype=state_dtype,
                         stochastic_rounding=stochastic_rounding)
