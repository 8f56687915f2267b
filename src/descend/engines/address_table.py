"""The kernel's table of addresses for a batch of parameters, kept from one step to the next.

Reading every tensor's address and checking its layout one tensor at a time costs about a
microsecond per tensor in Python, which on a small model (hundreds of tensors of a few thousand
elements) is more than the update itself. Parameters, state buffers and step counters keep their
memory from step to step; only gradients are new at each step. So the table is built once and
checked at each step with a few C-level passes (``map`` over the batch, no Python loop):

- the same parameters, state buffers and step counters: the table holds weak references whose
  callbacks mark it stale when one of them is freed, so while it is fresh, equal ``id``s mean the
  same objects (``load_state_dict`` or a new buffer gives new ids and the table is rebuilt);
- parameters at the same addresses (``p.data = ...``, as ``model.half()`` does, moves them);
- gradients contiguous and of the parameter's dtype (torch itself keeps their size equal to the
  parameter's); their addresses, new at each step, are written into the gradient column.

It keeps nothing alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import torch
from torch import Tensor

from descend.engines import kernel_support
from descend.engines.work_split import WorkSplit

_data_ptr = Tensor.data_ptr
_is_contiguous = Tensor.is_contiguous
_dtype = attrgetter("dtype")


class Watch:
    """Weak references to tensors, ``fresh`` until one of them is freed. The callbacks hold no
    reference to the owner: watching keeps nothing alive."""

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        flag = self._flag = [True]

        def stale(_ref: weakref.ref, flag: list[bool] = flag) -> None:
            flag[0] = False

        self._refs = [weakref.ref(t, stale) for t in tensors]

    @property
    def fresh(self) -> bool:
        return self._flag[0]


class StepCounters:
    """The float32 step counters of a batch by address, advanced by one numba call."""

    def __init__(self, steps: Sequence[Tensor], addresses: np.ndarray) -> None:
        self.watch = Watch(steps)
        self.addresses = addresses
        self.values = np.empty(len(steps), dtype=np.float64)

    def advance(self) -> None:
        kernel_support.step_counters(self.addresses, self.values, True)


def batch_key(params: Sequence[Tensor], names: Sequence[str]) -> tuple:
    """What a table is looked up by: the parameters' identities and the state buffers' names."""
    return tuple(map(id, params)), tuple(names)


class AddressTable:
    """Addresses of p, g and the state buffers (one row per tensor), sizes, step counters."""

    def __init__(self, params: Sequence[Tensor], states: Sequence[Mapping[str, Any]],
                 names: Sequence[str], rows: list[list[int]], sizes: list[int],
                 step_addresses: np.ndarray, dtype: str) -> None:
        self.dtype = dtype  # the kernel's element type ("float32", "float64")
        self.torch_dtype = params[0].dtype
        self.columns = ("step", *names)
        self.watch = Watch([*params, *(state[n] for state in states for n in self.columns)])
        self.param_addresses = list(map(_data_ptr, params))
        # For the compiled check (descend.engines.native): the memory of the parameters'
        # addresses and of the table below, and a tensor of the batch's dtype.
        self.param_address_array = np.array(self.param_addresses, dtype=np.int64)
        self.param_address_pointer = self.param_address_array.ctypes.data
        self.dtype_witness = torch.empty(0, dtype=params[0].dtype)
        self.buffer_ids = [list(map(id, map(itemgetter(n), states))) for n in self.columns]
        self.grad_addresses: list[int] = []
        self.addresses = np.array(rows, dtype=np.int64)  # C order: rows of (p, g, buffers...)
        self.address_pointer = self.addresses.ctypes.data
        self.sizes = np.array(sizes, dtype=np.int64)
        self.work = WorkSplit(self.sizes)
        self.step_addresses = step_addresses
        self.steps = np.empty(len(sizes), dtype=np.float64)  # this step's counters, read anew

    def matches(self, params: Sequence[Tensor], states: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the same tensors (the batch's key is its parameters' ids), at the same
        addresses, are still the ones to update."""
        if not self.watch.fresh or not self.at_same_addresses(params):
            return False
        try:
            return all(list(map(id, map(itemgetter(n), states))) == ids
                       for n, ids in zip(self.columns, self.buffer_ids, strict=True))
        except KeyError:  # a buffer was deleted by hand
            return False

    def at_same_addresses(self, params: Sequence[Tensor]) -> bool:
        """Whether the parameters still use the memory the table points to."""
        return list(map(_data_ptr, params)) == self.param_addresses

    def refresh_grads(self, grads: Sequence[Tensor]) -> bool:
        """Writes this step's gradient addresses; False if one cannot be streamed as is (a
        sparse gradient is not contiguous)."""
        if not all(map(_is_contiguous, grads)) or set(map(_dtype, grads)) != {self.torch_dtype}:
            return False  # (a grad_dtype set by hand lets a gradient's dtype differ)
        addresses = list(map(_data_ptr, grads))
        if addresses != self.grad_addresses:
            self.addresses[:, 1] = addresses
            self.grad_addresses = addresses
        return True
