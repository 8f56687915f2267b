from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.soap import buffer_length, soap
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT, UNIT_CLOSED, Interval, check

DATA_FORMATS = ("channels_first", "channels_last")
POSITIVE_INT = Interval(1.0)


class SOAP(Optimizer):
    """SOAP. Same name, signature and defaults as ``pytorch_optimizer.SOAP``
    (pytorch-optimizer 4.1.0; it also swallows unknown keyword arguments, which this one
    refuses). State: ``exp_avg`` and ``exp_avg_sq`` (shaped like the parameter), ``GG`` and ``Q``
    (each preconditioned dimension's statistics and eigenbasis, d x d, concatenated flat: see
    ``descend.rules.soap``). The step counts are the parameters' (the package keeps one per
    group: the same while every parameter has a gradient at every step). A matrix method: it
    runs on the reference engine (torch ops; ``impl="auto"`` chooses it)."""

    rule = staticmethod(soap)
    state_schema = (Buffer("exp_avg"), Buffer("exp_avg_sq"), Buffer("GG", shape=buffer_length),
                    Buffer("Q", shape=buffer_length))
    listings = (Listing(
        "soap", "Adam in the eigenbasis of Shampoo's preconditioner, refreshed every few steps: "
        "Shampoo's view of the curvature with Adam's per-coordinate steps on top of it.",
        r"L \leftarrow \beta_s L + (1-\beta_s) G G^\top,\ R \leftarrow \beta_s R + (1-\beta_s)"
        r" G^\top G;\ \tilde g = Q_L^\top g_t Q_R,\ v \leftarrow \beta_2 v + (1-\beta_2) "
        r"\tilde g^2;\ \theta \leftarrow \theta - \eta\, Q_L \frac{Q_L^\top m Q_R}{\sqrt{\hat v}"
        r" + \epsilon} Q_R^\top", "Vyas et al. 2024"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "weight_decay": NONNEGATIVE,
              "precondition_frequency": POSITIVE_INT, "max_precondition_dim": POSITIVE_INT,
              "eps": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95), shampoo_beta: float | None = None,
        weight_decay: float = 1e-2, precondition_frequency: int = 10,
        max_precondition_dim: int = 10000, merge_dims: bool = False,
        precondition_1d: bool = False, correct_bias: bool = True,
        normalize_gradient: bool = False, data_format: str = "channels_first",
        eps: float = 1e-8, maximize: bool = False, *, skip_nonfinite: bool = False,
        impl: str = "auto", state_dtype: torch.dtype | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), shampoo_beta=shampoo_beta,
                        weight_decay=weight_decay, precondition_frequency=precondition_frequency,
                        max_precondition_dim=max_precondition_dim, merge_dims=merge_dims,
                        precondition_1d=precondition_1d, correct_bias=correct_bias,
                        normalize_gradient=normalize_gradient, data_format=data_format, eps=eps,
                        maximize=maximize)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        if group["shampoo_beta"] is not None:
            check("shampoo_beta", group["shampoo_beta"], UNIT_CLOSED, "SOAP")
        for name in ("precondition_frequency", "max_precondition_dim"):
            if isinstance(group[name], bool) or not isinstance(group[name], int):
                raise ValueError(f"SOAP: {name} must be an int >= 1, got {group[name]!r}")
        if group["data_format"] not in DATA_FORMATS:
            raise ValueError(f"SOAP: invalid data_format={group['data_format']!r}; choose one "
                             f"of {list(DATA_FORMATS)} (the layout of 4-D tensors, read by "
                             "merge_dims)")
        for p in group["params"]:
            if p.is_complex():
                raise RuntimeError("SOAP does not support complex parameters")
