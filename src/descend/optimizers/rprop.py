from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.rprop import rprop
from descend.state import Buffer
from descend.validation import NONNEGATIVE


class Rprop(Optimizer):
    """Rprop. Same signature and defaults as ``torch.optim.Rprop`` (a full-batch method: the
    sign of a minibatch gradient flips by noise)."""

    rule = staticmethod(rprop)
    state_schema = (Buffer("prev"), Buffer("step_size", initial="lr"))
    listings = (Listing(
        "rprop", "Trust only the gradient's sign: each weight has its own step, grown by 1.2 "
        "while the sign holds and halved when it flips (for full-batch training).",
        r"\Delta \leftarrow \mathrm{clip}(\Delta\cdot\eta^{\pm}, \Delta_{min}, \Delta_{max});\ "
        r"\theta \leftarrow \theta - \mathrm{sign}(g_t)\,\Delta", "Riedmiller and Braun 1993"),)
    ranges = {"lr": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2), step_sizes: tuple[float, float] = (1e-6, 50),
        *, capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
        differentiable: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes),
                        maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, capturable=capturable,
                         differentiable=differentiable, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        eta_minus, eta_plus = group["etas"]
        if not 0.0 < eta_minus < 1.0 < eta_plus:  # torch's condition, with a way out
            raise ValueError(f"Rprop: invalid etas={group['etas']!r}; need 0 < eta_minus < 1 "
                             "< eta_plus, e.g. (0.5, 1.2)")
        low, high = group["step_sizes"]
        if not 0.0 <= low <= high:
            raise ValueError(f"Rprop: invalid step_sizes={group['step_sizes']!r}; need "
                             "0 <= min <= max, e.g. (1e-6, 50)")
