from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.adafactor import adafactor, col_shape, row_shape, vector_shape
from descend.state import Buffer
from descend.validation import NONNEGATIVE, Interval, check

NONPOSITIVE = Interval(-math.inf, 0.0, closed=True)


class Adafactor(Optimizer):
    """Adafactor. Same name, signature, defaults and state (``row_var`` and ``col_var`` for
    tensors of 2 dimensions or more, ``variance`` for vectors) as ``torch.optim.Adafactor``
    (torch 2.13). A matrix method: it runs on the reference engine (torch ops;
    ``impl="auto"`` chooses it)."""

    rule = staticmethod(adafactor)
    state_schema = (Buffer("row_var", shape=row_shape), Buffer("col_var", shape=col_shape),
                    Buffer("variance", shape=vector_shape))
    listings = (Listing(
        "adafactor", "Adam's second moment in sublinear memory: a matrix keeps only its row "
        "and column means of g^2, and steps are relative to the weights' own scale.",
        r"V \leftarrow \frac{R\, C}{\mathrm{mean}(R)},\ R, C \leftarrow \mathrm{EMAs\ of\ row"
        r"/col\ means\ of}\ g_t^2;\ U \leftarrow g_t / \sqrt{V};\ \theta \leftarrow \theta - "
        r"\max(\epsilon_2, \mathrm{RMS}(\theta)) \min(\eta, 1/\sqrt{t}) \frac{U}{\max(1, "
        r"\mathrm{RMS}(U)/d)}", "Shazeer and Stern 2018"),)
    ranges = {"lr": NONNEGATIVE, "beta2_decay": NONPOSITIVE, "d": Interval(1.0),
              "weight_decay": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-2,
        beta2_decay: float = -0.8, eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0, weight_decay: float = 0.0, *, foreach: bool | None = None,
        maximize: bool = False, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        eps = tuple(eps) if isinstance(eps, (tuple, list)) else eps  # (checked with the group)
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, foreach=foreach, skip_nonfinite=skip_nonfinite,
                         impl=impl, state_dtype=state_dtype,
                         stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        eps = group["eps"]
        if not isinstance(eps, (tuple, list)) or len(eps) != 2:
            raise ValueError(f"Adafactor: eps must be a pair (eps1, eps2), got {eps!r}")
        if eps[0] is not None:
            check("eps[0]", eps[0], NONNEGATIVE, "Adafactor")
        check("eps[1]", eps[1], NONNEGATIVE, "Adafactor")
        for p in group["params"]:
            if p.is_complex():
                raise RuntimeError("Adafactor does not support complex parameters")
