from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.adagrad import adagrad
from descend.state import Buffer
from descend.validation import NONNEGATIVE


class Adagrad(Optimizer):
    """AdaGrad. Same signature and defaults as ``torch.optim.Adagrad``."""

    rule = staticmethod(adagrad)
    state_schema = (Buffer("sum", initial="initial_accumulator_value"),)
    ranges = {"lr": NONNEGATIVE, "lr_decay": NONNEGATIVE, "weight_decay": NONNEGATIVE,
              "initial_accumulator_value": NONNEGATIVE, "eps": NONNEGATIVE}
    supports_sparse = True  # where eps > 0: then a zero gradient leaves p and the sum as they are
    listings = (Listing(
        "adagrad", "Each coordinate's step shrinks with the total of its squared gradients: "
        "rare features keep large steps.",
        r"G \leftarrow G + g_t^2;\quad \theta \leftarrow \theta - \frac{\eta}{\sqrt{G}+"
        r"\epsilon}\, g_t", "Duchi, Hazan and Singer 2011"),)

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        lr_decay: float = 0, weight_decay: float = 0, initial_accumulator_value: float = 0,
        eps: float = 1e-10, foreach: bool | None = None, *, maximize: bool = False,
        differentiable: bool = False, fused: bool | None = None, skip_nonfinite: bool = False,
        impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, differentiable=differentiable,
                         fused=fused, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)
        for group in self.param_groups:  # as torch does: the state exists from construction
            for p in group["params"]:
                self._complete_state(p, self.state[p], group, self.state_names(group))

    def share_memory(self) -> None:
        """Puts the sums in shared memory (torch's Adagrad.share_memory, for Hogwild!-style
        training in several processes); steps update them in place."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()
        self.state_moved()

