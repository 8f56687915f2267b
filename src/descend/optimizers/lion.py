from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.lion import lion
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT_CLOSED


class Lion(Optimizer):
    """Lion. Same name, signature and defaults as ``lion_pytorch.Lion`` (lion-pytorch 0.2.5,
    Phil Wang's implementation of the paper's Program 1); ``use_triton`` is accepted and ignored
    (descend's engines choose the kernel)."""

    rule = staticmethod(lion)
    state_schema = (Buffer("exp_avg"),)
    listings = (Listing(
        "lion", "Only the sign of a momentum-smoothed gradient: every coordinate moves by "
        "exactly lr, so use a 3-10x smaller lr than AdamW, and half its memory.",
        r"\theta \leftarrow \theta - \eta\,\mathrm{sign}(\beta_1 m + (1-\beta_1) g_t);\ "
        r"m \leftarrow \beta_2 m + (1-\beta_2) g_t", "Chen et al. 2023"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT_CLOSED, "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
        use_triton: bool = False, decoupled_weight_decay: bool = False, *,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        if decoupled_weight_decay and not lr > 0:
            raise ValueError(f"Lion: decoupled_weight_decay divides weight_decay by the initial "
                             f"lr, which must be > 0; got lr={lr}")
        # init_lr: lion-pytorch's constructor lr, which decoupled decay divides by, in every
        # group (not torch's initial_lr, which lr schedulers set per group)
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                        decoupled_weight_decay=decoupled_weight_decay, init_lr=lr)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)
