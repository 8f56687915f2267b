"""Schedule-free SGD and AdamW: no learning-rate schedule, an average of the iterates instead.

Same names, signatures and defaults as schedulefree 1.4.1's ``SGDScheduleFree`` and
``AdamWScheduleFree``. As there, the parameters hold y (where gradients are taken) in train mode
and x (the average, what to evaluate and save) in eval mode: call ``optimizer.train()`` before
training steps and ``optimizer.eval()`` before evaluating or saving a checkpoint. A step in eval
mode is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from descend.optimizer import GroupStep, Listing, Optimizer
from descend.rules.schedule_free import adamw_schedule_free, sgd_schedule_free
from descend.state import Buffer
from descend.validation import NONNEGATIVE, OPEN_UNIT, UNIT, as_number, check

# Kept in each param group, as schedulefree keeps them (they round-trip through state_dict): the
# group's step count k, the train/eval mode, the sum of the average's weights, the largest lr
# seen and the lr of the last step after warmup.
GROUP_STATE = dict(k=0, train_mode=False, weight_sum=0.0, lr_max=-1.0, scheduled_lr=0.0)


class ScheduleFree(Optimizer):
    """What the schedule-free optimizers share: the average's weights (``step_scalars``) and the
    switch between the y and x sequences (``train`` / ``eval``). A subclass names its
    interpolation weight ``beta`` (``momentum`` for SGD, beta1 for AdamW)."""

    def beta(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    @torch.no_grad()
    def train(self) -> None:
        """Parameters to y = (1 - beta) z + beta x, the point gradients are taken at."""
        self._switch(train=True)

    @torch.no_grad()
    def eval(self) -> None:
        """Parameters to x, the average: what to evaluate and to save."""
        self._switch(train=False)

    def _switch(self, train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta = as_number("momentum", self.beta(group), type(self).__name__)
            weight = 1 - beta if train else 1 - 1 / beta
            for p in group["params"]:
                z = self.state.get(p, {}).get("z")
                if z is not None:
                    p.lerp_(z.to(device=p.device, dtype=p.dtype), weight)
            group["train_mode"] = train

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """torch's, the new group in the mode the others are in (schedulefree puts it in eval
        mode, which a later ``eval()`` would then skip, leaving its parameters at y)."""
        if self.param_groups:
            param_group.setdefault("train_mode", self.param_groups[0]["train_mode"])
        super().add_param_group(param_group)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One step, in train mode (see ``train``)."""
        if not all(group["train_mode"] for group in self.param_groups):
            raise RuntimeError(f"{type(self).__name__}: step() in eval mode: the parameters hold "
                               "the average x, not the point y gradients are taken at. Call "
                               "optimizer.train() before training steps and optimizer.eval() "
                               "before evaluating or saving.")
        return super().step(closure)

    def step_scalars(self, groups: list[GroupStep]) -> list[dict[str, float]]:
        return [self.average_weights(step.group) for step in groups]

    def average_weights(self, group: dict[str, Any]) -> dict[str, float]:
        """This step's lr after warmup and weight c = w_k / sum w of the average, with
        w_k = (k+1)^r * lr_max^weight_lr_power; advances the group's count k."""
        k, warmup = group["k"], group["warmup_steps"]
        lr = float(group["lr"]) * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = group["lr_max"] = max(lr, group["lr_max"])
        weight = (k + 1) ** group["r"] * lr_max ** group["weight_lr_power"]
        weight_sum = group["weight_sum"] = group["weight_sum"] + weight
        group["scheduled_lr"], group["k"] = lr, k + 1
        return {"scheduled_lr": lr, "ckp1": weight / weight_sum if weight_sum else 0.0}

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        super().check_hyperparameters(group)
        check("momentum" if "momentum" in group else "betas[0]", self.beta(group),
              OPEN_UNIT, type(self).__name__)  # eval() divides by it


_RANGES = {"lr": NONNEGATIVE, "weight_decay": NONNEGATIVE, "warmup_steps": NONNEGATIVE,
           "r": NONNEGATIVE, "weight_lr_power": NONNEGATIVE}


class SGDScheduleFree(ScheduleFree):
    """Schedule-free SGD. Same name, signature and defaults as
    ``schedulefree.SGDScheduleFree`` (schedulefree 1.4.1)."""

    rule = staticmethod(sgd_schedule_free)
    state_schema = (Buffer("z", from_param=True),)
    listings = (Listing(
        "sgd-schedule-free", "No learning-rate schedule to tune: SGD's iterates are averaged "
        "as it goes, gradients are taken between the iterate and its average, and you evaluate "
        "the average.",
        r"z \leftarrow z - \eta\,\nabla f(\theta);\ x \leftarrow (1-c_t)\,x + c_t\,z;\ "
        r"\theta \leftarrow (1-\beta)\,z + \beta\,x,\ c_t = \eta_{\max}^2 / \sum_{s \leq t} "
        r"\eta_{\max}^2", "Defazio et al. 2024"),)
    ranges = _RANGES

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 1.0,
        momentum: float = 0.9, weight_decay: float = 0, warmup_steps: int = 0, r: float = 0.0,
        weight_lr_power: float = 2, foreach: bool | None = hasattr(torch, "_foreach_mul_"), *,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, r=r, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, weight_decay=weight_decay,
                        **GROUP_STATE)
        super().__init__(params, defaults, foreach=foreach, skip_nonfinite=skip_nonfinite,
                         impl=impl, state_dtype=state_dtype,
                         stochastic_rounding=stochastic_rounding)

    def beta(self, group: dict[str, Any]) -> float:
        return group["momentum"]


class AdamWScheduleFree(ScheduleFree):
    """Schedule-free AdamW. Same name, signature and defaults as
    ``schedulefree.AdamWScheduleFree`` (schedulefree 1.4.1)."""

    rule = staticmethod(adamw_schedule_free)
    state_schema = (Buffer("z", from_param=True), Buffer("exp_avg_sq"))
    listings = (Listing(
        "adamw-schedule-free", "AdamW without a learning-rate schedule: the steps are "
        "Adam-preconditioned, the iterates averaged as in schedule-free SGD, and beta1 sets "
        "where between iterate and average the gradient is taken.",
        r"z \leftarrow z - \eta\,\frac{g_t}{\sqrt{\hat v_t} + \epsilon};\ x \leftarrow "
        r"(1-c_t)\,x + c_t\,z;\ \theta \leftarrow (1-\beta_1)\,z + \beta_1\,x",
        "Defazio et al. 2024"),)
    ranges = {**_RANGES, "betas": UNIT, "eps": NONNEGATIVE}

    def __init__(
        self, params: Iterable[Tensor] | Iterable[dict[str, Any]], lr: float | Tensor = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0,
        warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0,
        foreach: bool | None = hasattr(torch, "_foreach_mul_"), *,
        skip_nonfinite: bool = False, impl: str = "auto",
        state_dtype: torch.dtype | None = None, stochastic_rounding: bool = False,
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, r=r, warmup_steps=warmup_steps,
                        weight_lr_power=weight_lr_power, weight_decay=weight_decay,
                        **GROUP_STATE)
        super().__init__(params, defaults, foreach=foreach, skip_nonfinite=skip_nonfinite,
                         impl=impl, state_dtype=state_dtype,
                         stochastic_rounding=stochastic_rounding)

    def beta(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def average_weights(self, group: dict[str, Any]) -> dict[str, float]:
        """Schedule-free's weights and Adam's bias correction 1 - beta2^k of the group's k."""
        bias_correction2 = 1 - float(group["betas"][1]) ** (group["k"] + 1)
        return {**super().average_weights(group), "bias_correction2": bias_correction2}
