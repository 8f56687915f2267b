from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import GroupStep, Listing, Optimizer
from descend.rules.lamb import lamb
from descend.state import Buffer
from descend.validation import NONNEGATIVE, UNIT, Interval

# Lamb's keyword arguments besides its signature's that pytorch-optimizer reads.
EXTRA_KEYWORDS = {"adam_debias": False}


class Lamb(Optimizer):
    """LAMB. Same name, signature and defaults as ``pytorch_optimizer.Lamb``
    (pytorch-optimizer 4.1.0), with its ``adam_debias`` keyword (pytorch-optimizer's other
    extra keywords, such as ``adanorm``, are refused).

    The trust ratio is a reduction over each tensor (two norms): the rule runs on the reference
    backend (``impl="auto"`` chooses it; the traced backends refuse the rule). ``pre_norm``'s
    scale, from the norm of every gradient of every group, is a ``step_scalars`` value."""

    rule = staticmethod(lamb)
    state_schema = (Buffer("exp_avg"), Buffer("exp_avg_sq"))
    listings = (Listing(
        "lamb", "Adam whose step, layer by layer, is rescaled to the size of the weights: the "
        "trust ratio lets a BERT train with a batch of 64k without diverging.",
        r"u = \frac{\hat m}{\sqrt{v} + \epsilon} + \lambda\theta;\ \theta \leftarrow \theta - "
        r"\eta\,\frac{\min(\|\theta\|, 10)}{\|u\| + \epsilon}\, u",
        "You et al. 2020"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "weight_decay": NONNEGATIVE,
              "max_grad_norm": NONNEGATIVE, "eps": NONNEGATIVE,
              # below 4, the rectification's sqrt((rho - 4) ...) has no value
              "n_sma_threshold": Interval(4.0)}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
        weight_decouple: bool = True, fixed_decay: bool = False, rectify: bool = False,
        degenerated_to_sgd: bool = False, n_sma_threshold: int = 5, grad_averaging: bool = True,
        max_grad_norm: float = 1.0, adam: bool = False, pre_norm: bool = False,
        eps: float = 1e-6, foreach: bool | None = None, maximize: bool = False, *,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - set(EXTRA_KEYWORDS))
        if unknown:
            raise ValueError(f"Lamb: unsupported keyword argument(s) {unknown}; descend's Lamb "
                             f"takes pytorch_optimizer.Lamb's signature and "
                             f"{sorted(EXTRA_KEYWORDS)}")
        defaults = dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay,
                        weight_decouple=weight_decouple, fixed_decay=fixed_decay,
                        rectify=rectify, degenerated_to_sgd=degenerated_to_sgd,
                        n_sma_threshold=n_sma_threshold, grad_averaging=grad_averaging,
                        max_grad_norm=max_grad_norm, adam=adam, pre_norm=pre_norm, eps=eps,
                        maximize=maximize, **{**EXTRA_KEYWORDS, **kwargs})
        super().__init__(params, defaults, foreach=foreach, skip_nonfinite=skip_nonfinite,
                         impl=impl, state_dtype=state_dtype,
                         stochastic_rounding=stochastic_rounding)

    def step_scalars(self, groups: list[GroupStep]) -> list[dict[str, float]]:
        """pre_norm's scale of every gradient: min(1, max_grad_norm / (|g_all| + eps)), with
        the constructor's max_grad_norm and eps, in float32 as pytorch-optimizer computes it."""
        scale = 1.0
        if self.defaults["pre_norm"] and self.defaults["max_grad_norm"] != 0:
            # (empty tensors left out: their 0 would change the float32 sum's order)
            grads = [g for step in groups for g in step.grads if g.numel()]
            scale = float(global_gradient_scale(grads, self.defaults["max_grad_norm"],
                                                self.defaults["eps"])) if grads else 1.0
        return [{"grad_scale": scale} for _ in groups]


def global_gradient_scale(grads: list[Tensor], max_grad_norm: float, eps: float) -> Tensor:
    """min(1, max_grad_norm / (sqrt(sum |g|^2) + eps)), the norms summed in float32."""
    norms = [g.float().norm() if g.dtype in (torch.float16, torch.bfloat16) else g.norm()
             for g in grads]
    total = torch.stack([n.to(grads[0].device) for n in norms]).float().square().sum()
    return torch.clamp(max_grad_norm / (total.sqrt() + eps), max=1.0)
