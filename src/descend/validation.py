"""Hyperparameter checks that say what was wrong, the allowed range, and what to do."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch


@dataclass(frozen=True)
class Interval:
    """Allowed values ``low <= x < high`` (``x <= high`` when ``closed`` is True, ``low < x``
    when ``low_open`` is True)."""

    low: float = 0.0
    high: float = math.inf
    closed: bool = False
    low_open: bool = False

    def __contains__(self, x: float) -> bool:
        above = self.low < x if self.low_open else self.low <= x
        return above and (x <= self.high if self.closed else x < self.high)

    def __str__(self) -> str:
        left = "(" if self.low_open else "["
        right = "]" if self.closed and self.high != math.inf else ")"
        high = "inf" if self.high == math.inf else f"{self.high:g}"
        return f"{left}{self.low:g}, {high}{right}"


NONNEGATIVE = Interval()
UNIT = Interval(0.0, 1.0)  # [0, 1): decay rates, betas
UNIT_CLOSED = Interval(0.0, 1.0, closed=True)  # [0, 1]: dampening
POSITIVE = Interval(low_open=True)  # (0, inf): Prodigy's d0, what a step divides by
OPEN_UNIT = Interval(0.0, 1.0, low_open=True)  # (0, 1): schedule-free's momentum (eval divides)


def as_number(name: str, value: Any, owner: str) -> float:
    """A float from a number or a one-element tensor, or a ValueError naming ``name``."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{owner}: {name} must be a number or a one-element tensor, "
                f"got a tensor of shape {tuple(value.shape)}"
            )
        if value.requires_grad:
            raise ValueError(
                f"{owner}: {name} is a tensor that requires grad: pass differentiable=True to "
                f"differentiate through the step, or {name}.detach()"
            )
        return float(value)
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{owner}: {name} must be a number, got {value!r}")
    return float(value)


def check(name: str, value: Any, allowed: Interval, owner: str) -> None:
    x = as_number(name, value, owner)
    if math.isnan(x) or x not in allowed:
        raise ValueError(
            f"{owner}: invalid {name}={x:g}; allowed range is {allowed}. "
            f"Pass a value of {name} in that range."
        )


def check_group(group: dict[str, Any], ranges: dict[str, Interval], owner: str) -> None:
    """Checks each hyperparameter of ``group`` named in ``ranges``; tuples element by element."""
    for name, allowed in ranges.items():
        value = group[name]
        if isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                check(f"{name}[{i}]", item, allowed, owner)
        else:
            check(name, value, allowed, owner)


def check_betas(betas: Any, count: int, owner: str) -> None:
    """torch's checks of ``betas``: ``count`` values, all numbers or all tensors."""
    if not isinstance(betas, (tuple, list)) or len(betas) != count:
        names = ", ".join(f"beta{i + 1}" for i in range(count))
        kind = {2: "a pair ", 3: "a triple "}.get(count, "")
        raise ValueError(f"{owner}: betas must be {kind}({names}), got {betas!r}")
    if len({isinstance(beta, torch.Tensor) for beta in betas}) != 1:
        raise ValueError(f"{owner}: betas must be either all floats or all tensors, got "
                         f"{betas!r}")
