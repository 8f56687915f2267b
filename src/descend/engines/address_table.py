"""The kernel's table of addresses for a prepared batch of parameters (``descend.batch``).

Reading every tensor's address and checking its layout one tensor at a time costs about a
microsecond per tensor in Python, which on a small model (hundreds of tensors of a few thousand
elements) is more than the update itself. Parameters, state buffers and step counters keep their
memory from step to step; only gradients are new at each step. So the table is built once, and
at each step (after the batch has checked by identity that the same tensors are to be updated)
two C-level passes (``map`` over the batch, no Python loop) check that

- the parameters are at the same addresses (``p.data = ...``, as ``model.half()`` does, moves
  them);
- the gradients are contiguous and of the dtype the kernel was built for (torch itself keeps
  their size equal to the parameter's); their addresses, new at each step, are written into the
  gradient column.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

import numpy as np
import torch
from torch import Tensor

from descend.engines.work_split import WorkSplit

_data_ptr = Tensor.data_ptr
_is_contiguous = Tensor.is_contiguous
_dtype = attrgetter("dtype")


class AddressTable:
    """Addresses of p, g and the state buffers (one row per tensor, then its stream key under
    stochastic rounding), sizes, step counters."""

    def __init__(self, params: Sequence[Tensor], grad_dtype: torch.dtype, rows: list[list[int]],
                 sizes: list[int], step_addresses: np.ndarray, signature: tuple[str, ...]) -> None:
        self.signature = signature  # the operands' storage dtypes ("float32", "bfloat16"...)
        self.grad_dtype = grad_dtype
        self.param_addresses = list(map(_data_ptr, params))
        # For the compiled check (descend.engines.native): the memory of the parameters'
        # addresses and of the table below, and a tensor of the gradients' dtype.
        self.param_address_array = np.array(self.param_addresses, dtype=np.int64)
        self.param_address_pointer = self.param_address_array.ctypes.data
        self.dtype_witness = torch.empty(0, dtype=grad_dtype)
        self.grad_addresses: list[int] = []
        self.addresses = np.array(rows, dtype=np.int64)  # C order: rows of (p, g, buffers...)
        self.address_pointer = self.addresses.ctypes.data
        self.sizes = np.array(sizes, dtype=np.int64)
        self.work = WorkSplit(self.sizes)
        self.step_addresses = step_addresses
        self.steps = np.empty(len(sizes), dtype=np.float64)  # this step's counters, read anew

    def at_same_addresses(self, params: Sequence[Tensor]) -> bool:
        """Whether the parameters still use the memory the table points to."""
        return list(map(_data_ptr, params)) == self.param_addresses

    def refresh_grads(self, grads: Sequence[Tensor]) -> bool:
        """Writes this step's gradient addresses; False if one cannot be streamed as is (a
        sparse gradient is not contiguous)."""
        if not all(map(_is_contiguous, grads)) or set(map(_dtype, grads)) != {self.grad_dtype}:
            return False  # (a grad_dtype set by hand lets a gradient's dtype differ)
        addresses = list(map(_data_ptr, grads))
        if addresses != self.grad_addresses:
            self.addresses[:, 1] = addresses
            self.grad_addresses = addresses
        return True
