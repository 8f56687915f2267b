from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from descend import precision
from descend.engines.reference import real_view
from descend.optimizer import GroupStep, Listing, Optimizer
from descend.rules.prodigy import prodigy
from descend.state import Buffer
from descend.validation import NONNEGATIVE, POSITIVE, UNIT, Interval

# Kept in each param group, as prodigyopt keeps them (they round-trip through state_dict).
GROUP_STATE = ("d", "d_max", "d_numerator", "d_denom", "d_hat", "k")
# What prodigyopt reads from the first group only, for every group: the estimate is one for the
# whole optimizer.
SHARED = ("betas", "beta3", "decouple")


class Prodigy(Optimizer):
    """Prodigy. Same name, signature and defaults as ``prodigyopt.Prodigy`` (prodigyopt 1.1.2).

    As there, one d serves every param group (its statistics come from the first group, its
    sums from all), and the groups' lrs must be equal, or 0. The per-element state ``s`` and
    ``p0`` have the parameter's shape (prodigyopt keeps them flattened); ``slice_p`` must be 1
    (prodigyopt's approximation with every p-th element only is not elementwise) and
    ``fsdp_in_use`` False."""

    rule = staticmethod(prodigy)
    state_schema = (Buffer("s"), Buffer("p0", from_param=True), Buffer("exp_avg_sq"),
                    Buffer("exp_avg", when=lambda group: group["betas"][0] > 0))
    listings = (Listing(
        "prodigy", "Adam that finds its own learning rate: it estimates the distance to the "
        "solution from how far the parameters moved along the gradients, and steps that far.",
        r"d \leftarrow \max(d, \frac{\sum_t d_t \langle g_t, \theta_0 - \theta_t\rangle}"
        r"{\|s\|_1});\ \theta \leftarrow \theta - d\,\eta\,\frac{m}{\sqrt{v} + "
        r"d\,\epsilon}", "Mishchenko and Defazio 2024"),)
    ranges = {"lr": NONNEGATIVE, "betas": UNIT, "eps": POSITIVE, "weight_decay": NONNEGATIVE,
              "d0": POSITIVE, "d_coef": POSITIVE, "growth_rate": Interval(1.0, math.inf, True)}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999), beta3: float | None = None,
        eps: float = 1e-8, weight_decay: float = 0, decouple: bool = True,
        use_bias_correction: bool = False, safeguard_warmup: bool = False, d0: float = 1e-6,
        d_coef: float = 1.0, growth_rate: float = float("inf"), fsdp_in_use: bool = False,
        slice_p: int = 1, *, skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        if not lr > 0:  # prodigyopt's check (a group may have lr 0, and a scheduler set it)
            raise ValueError(f"Prodigy: invalid lr={lr}; allowed range is (0, inf) (lr scales "
                             "the estimated step size: leave it at 1.0)")
        defaults = dict(lr=lr, betas=tuple(betas), beta3=beta3, eps=eps,
                        weight_decay=weight_decay, d=d0, d0=d0, d_max=d0, d_numerator=0.0,
                        d_coef=d_coef, k=0, growth_rate=growth_rate,
                        use_bias_correction=use_bias_correction, decouple=decouple,
                        safeguard_warmup=safeguard_warmup, fsdp_in_use=fsdp_in_use,
                        slice_p=slice_p)
        super().__init__(params, defaults, skip_nonfinite=skip_nonfinite, impl=impl,
                         state_dtype=state_dtype, stochastic_rounding=stochastic_rounding)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        beta3 = group["beta3"]
        if beta3 is not None and not (isinstance(beta3, (int, float)) and 0 <= beta3 < 1):
            raise ValueError(f"Prodigy: invalid beta3={beta3!r}; allowed: None (sqrt(beta2)) "
                             "or a number in [0, 1)")
        if group["slice_p"] != 1:
            raise ValueError(f"Prodigy: slice_p={group['slice_p']!r} is not supported: descend "
                             "keeps Prodigy's statistics for every element; pass slice_p=1")
        _check_lrs([float(g["lr"]) for g in self.param_groups])
        if group["fsdp_in_use"]:
            raise ValueError("Prodigy: fsdp_in_use=True is not supported (descend does not "
                             "all-reduce Prodigy's sums); pass fsdp_in_use=False")

    def step_scalars(self, groups: list[GroupStep]) -> list[dict[str, float]]:
        """The step's d: prodigyopt's first loop, without writing the state (the rule does).

        dlr = d * lr * bias correction (lr: the largest group lr);
        numerator <- beta3 * numerator + sum (d/d0) dlr <g, p0 - p>;
        denominator = sum |s_new|_1;  d_hat = d_coef * numerator / denominator;
        d <- min(max(d_max, d_hat), d * growth_rate) (the first step: max(d, d_hat))."""
        first = self.param_groups[0]
        lr = _check_lrs([float(group["lr"]) for group in self.param_groups])
        beta1, beta2 = first["betas"]
        beta3 = math.sqrt(beta2) if first["beta3"] is None else first["beta3"]
        d, k = first["d"], first["k"]
        correction = ((1 - beta2 ** (k + 1)) ** 0.5 / (1 - beta1 ** (k + 1))
                      if first["use_bias_correction"] else 1)
        dlr = d * lr * correction
        numerator, denominator = 0.0, 0.0
        scales = []
        for group, params, grads, states in groups:
            scale = (d / group["d0"]) * (d if group["safeguard_warmup"] else dlr)
            scales.append(scale)
            if float(group["lr"]) == 0:
                continue
            for p, g, state in zip(params, grads, states, strict=True):
                p, g, s, p0 = _operands(p, g, state)
                if group["weight_decay"] != 0 and not first["decouple"]:
                    g = g + group["weight_decay"] * p
                numerator += (d / group["d0"]) * dlr * float(
                    torch.dot(g.flatten(), (p0 - p).flatten()))
                denominator += float((beta3 * s + scale * g).abs().sum())
        d_new = self._estimate(d, first, beta3, numerator, denominator, groups)
        shared = {name: first[name] for name in SHARED}
        return [{**shared, "beta3": beta3, "d_before": d, "d_after": d_new, "s_scale": scale,
                 "active": float(step.group["lr"]) > 0, "step_size": dlr if denominator else 0.0}
                for step, scale in zip(groups, scales, strict=True)]

    def _estimate(self, d: float, first: dict[str, Any], beta3: float, numerator: float,
                  denominator: float, groups: list[GroupStep]) -> float:
        """The new d, written into every group with the sums; d unchanged (and the groups
        too) where no gradient moved s (prodigyopt skips the step then)."""
        if denominator == 0:
            return d
        numerator += first["d_numerator"] * beta3
        d_hat = first["d_coef"] * numerator / denominator
        last_d0 = self.param_groups[-1]["d0"]  # prodigyopt compares with its loop's last group
        d_max = max(first["d_max"], d_hat)
        d_new = min(d_max, (max(d, d_hat) if d == last_d0 else d) * first["growth_rate"])
        for step in groups:
            step.group.update(d_numerator=numerator, d_denom=denominator, d=d_new, d_max=d_max,
                              d_hat=d_hat, k=step.group["k"] + 1)
        return d_new


def _check_lrs(lrs: list[float]) -> float:
    """The largest lr, or a ValueError where another group's lr is neither it nor 0."""
    lr = max(lrs)
    if any(x not in (lr, 0.0) for x in lrs):
        raise ValueError(f"Prodigy: param groups with different lrs {lrs}; one step size d "
                         f"serves them all: give every group lr={lr:g}, or 0 to leave it out "
                         "of the estimate (prodigyopt's rule)")
    return lr


def _operands(p: Tensor, g: Tensor, state: dict[str, Any]) -> list[Tensor]:
    """p, g, s and p0 as the rule reads them: complex ones as real pairs, bfloat16 and float16
    widened to float32 (``descend.precision``)."""
    tensors = [real_view(t) for t in (p, g, state["s"], state["p0"])]
    compute = precision.compute_dtype(t.dtype for t in tensors)
    return [t.to(compute) for t in tensors]
