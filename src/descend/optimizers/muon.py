from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import Listing, Optimizer
from descend.rules.muon import muon
from descend.state import Buffer
from descend.validation import NONNEGATIVE

ADJUST_LR_FNS = (None, "original", "match_rms_adamw")


class Muon(Optimizer):
    """Muon. Same name, signature and defaults as ``torch.optim.Muon`` (torch 2.13), whose
    Newton-Schulz iteration runs in bfloat16, as here. Only 2-D parameters (hidden layers'
    weight matrices): give biases, embeddings and the output layer to AdamW, as torch documents.
    Under FSDP2 each sharded matrix is gathered for its orthogonalization
    (``descend.distributed.on_whole_tensor``). A matrix method: it runs on the reference engine
    (torch ops; ``impl="auto"`` chooses it)."""

    rule = staticmethod(muon)
    state_schema = (Buffer("momentum_buffer"),)
    listings = (Listing(
        "muon", "Momentum whose update matrix is orthogonalized (all singular values near 1): "
        "every direction of a weight matrix moves by the same amount, not just the dominant one.",
        r"B \leftarrow \mu B + (1-\mu) g_t;\ O \leftarrow \mathrm{NS}_5(g_t + \mu (B - g_t))"
        r"\approx U V^\top;\ \theta \leftarrow \theta (1 - \eta\lambda) - \eta\,"
        r"\sqrt{\max(1, A/B)}\, O", "Jordan et al. 2024"),)
    ranges = {"lr": NONNEGATIVE, "weight_decay": NONNEGATIVE, "momentum": NONNEGATIVE,
              "eps": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1e-3,
        weight_decay: float = 0.1, momentum: float = 0.95, nesterov: bool = True,
        ns_coefficients: tuple[float, float, float] = (3.4445, -4.775, 2.0315),
        eps: float = 1e-07, ns_steps: int = 5, adjust_lr_fn: str | None = None, *,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov,
                        ns_coefficients=ns_coefficients, eps=eps, ns_steps=ns_steps,
                        adjust_lr_fn=adjust_lr_fn)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        if group["adjust_lr_fn"] not in ADJUST_LR_FNS:
            raise ValueError(f"Muon: Adjust learning rate function {group['adjust_lr_fn']} is "
                             f"not supported; choose one of {list(ADJUST_LR_FNS)} (None is "
                             "'original')")
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps < 100:
            raise ValueError(f"Muon: invalid ns_steps={steps!r}; allowed: an int in [0, 100) "
                             "(Number of steps must be less than 100 for computational "
                             "efficiency, as torch says); 5 is the default")
        if len(group["ns_coefficients"]) != 3:
            raise ValueError(f"Muon: ns_coefficients must be a tuple of exactly 3 values (a, b, "
                             f"c), got {group['ns_coefficients']!r}")
        for p in group["params"]:
            if p.ndim != 2:
                raise ValueError("Muon only supports 2D parameters whereas we found a parameter "
                                 f"with size: {p.size()}. Optimize biases, embeddings and other "
                                 "non-2D parameters with another optimizer (descend.AdamW)")
            if p.is_complex():
                raise RuntimeError("Muon does not support complex parameters")
