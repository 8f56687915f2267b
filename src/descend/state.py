"""The state schema: the per-parameter state an optimizer keeps, declared once per class.

Each optimizer lists its buffers; the base class creates them lazily (at a parameter's first
step, or when a configuration that needs one is switched on mid-run), and every backend reads the
same names. The step counter is the buffer every optimizer keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Buffer:
    """One per-parameter state buffer.

    ``name``: its key in ``optimizer.state[p]`` (torch's name where torch has the algorithm).
    ``when``: whether the group's configuration keeps it: the name of a boolean hyperparameter,
    or a predicate on the group (None: always).
    ``initial``: its value before the first step: a number, or the name of the hyperparameter
    that holds it; ``from_param``: instead, a copy of the parameter (schedule-free's z,
    Prodigy's p0).
    ``per``: "element" (shaped like the parameter) or "tensor" (one value per parameter, a 0-d
    tensor like the step counter).
    ``dtype``: its storage dtype; None stores it in the group's ``state_dtype``, or, where that
    is None, in the parameter's dtype, as torch does.
    ``shape``: for state not shaped like the parameter (matrix methods: Adafactor's row and
    column factors, SOAP's preconditioners), its shape for parameter ``p`` of ``group``, or None
    where that parameter keeps no such buffer (Adafactor factors matrices and keeps a full
    ``variance`` for vectors). Unset: shaped like the parameter. A rule whose buffers some
    parameters lack takes them as keywords that default to None.
    """

    name: str
    when: str | Callable[[Mapping[str, Any]], bool] | None = None
    initial: float | str = 0.0
    per: str = "element"
    dtype: torch.dtype | None = None
    shape: Callable[[Tensor, Mapping[str, Any]], tuple[int, ...] | None] | None = None
    from_param: bool = False

    def needed(self, group: Mapping[str, Any]) -> bool:
        if self.when is None:
            return True
        return bool(group[self.when]) if isinstance(self.when, str) else self.when(group)

    def kept_for(self, p: Tensor, group: Mapping[str, Any]) -> bool:
        """Whether parameter ``p`` of ``group`` keeps this buffer (see ``shape``)."""
        return self.shape is None or self.shape(p, group) is not None

    def storage_dtype(self, p: Tensor, group: Mapping[str, Any]) -> torch.dtype:
        """The dtype this buffer is kept in for parameter ``p`` of ``group``."""
        if self.dtype is not None:
            return self.dtype
        if self.per == "tensor":
            return scalar_dtype()
        wanted = group.get("state_dtype")
        if wanted is None or wanted == p.dtype:
            return p.dtype
        if p.is_complex() or not p.is_floating_point():
            raise ValueError(f"state_dtype={wanted} applies to real floating-point parameters; "
                             f"this one is {p.dtype}: give it a param group with "
                             "state_dtype=None")
        return wanted

    def create(self, p: Tensor, group: Mapping[str, Any]) -> Tensor:
        dtype = self.storage_dtype(p, group)
        if self.from_param:
            return p.detach().to(dtype, copy=True, memory_format=torch.preserve_format)
        value = group[self.initial] if isinstance(self.initial, str) else self.initial
        if self.per == "tensor":
            return torch.tensor(float(value), dtype=dtype)
        if self.shape is not None:
            return torch.full(self.shape(p, group), value, dtype=dtype, device=p.device)
        if p.is_complex() and dtype.is_complex:  # optimized as (real, imag) pairs: fill both
            value = complex(value, value)
        return torch.full_like(p, value, dtype=dtype, memory_format=torch.preserve_format)


def scalar_dtype() -> torch.dtype:
    """The dtype of per-tensor scalars such as the step counter, as torch chooses it: float64
    when that is the default dtype, float32 otherwise."""
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


class StateNames(tuple):
    """The names of the state a group's configuration keeps, in declaration order: as a tuple,
    the element buffers (streamed side by side with p and g); ``scalars``, the per-tensor
    scalars (0-d tensors such as NAdam's ``mu_product``, which a rule reads and returns as
    numbers: one read and one write per tensor per step)."""

    scalars: tuple[str, ...]

    def __new__(cls, elements: Iterable[str] = (), scalars: Iterable[str] = ()) -> StateNames:
        self = super().__new__(cls, elements)
        self.scalars = tuple(scalars)
        return self

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) and self.scalars == getattr(other, "scalars", ())

    def __hash__(self) -> int:
        return hash((tuple(self), self.scalars))

    def __getnewargs__(self) -> tuple:
        return tuple(self), self.scalars

    @property
    def everything(self) -> tuple[str, ...]:
        """Element buffers, then per-tensor scalars."""
        return (*self, *self.scalars)


def scalars_of(state_names: Iterable[str]) -> tuple[str, ...]:
    """The per-tensor scalars among ``state_names`` (a plain tuple of names has none)."""
    return getattr(state_names, "scalars", ())


def names(schema: tuple[Buffer, ...], group: Mapping[str, Any]) -> StateNames:
    """The buffers this group's configuration keeps, in declaration order."""
    needed = [b for b in schema if b.needed(group)]
    return StateNames((b.name for b in needed if b.per == "element"),
                      (b.name for b in needed if b.per == "tensor"))
