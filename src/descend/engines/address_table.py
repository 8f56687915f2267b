"""The kernel's table of addresses for a batch of parameters, kept from one step to the next.

Reading every tensor's address and checking its layout costs about a microsecond per tensor in
Python, which on a small model (hundreds of tensors of a few thousand elements) is more than the
update itself. Parameters, state buffers and step counters keep their memory from step to step;
only gradients are new at each step. So the table is built once, checked each step by identity
(the same parameter objects at the same addresses, the same state tensors: anything replaced by
``load_state_dict``, ``p.data = ...`` or a new buffer fails the check and the table is rebuilt),
and only the gradient column is refreshed. It holds weak references: it keeps nothing alive.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from descend.engines import codegen


class AddressTable:
    """Addresses of p, g and the state buffers (one row per tensor), sizes, step counters."""

    def __init__(self, params: Sequence[Tensor], states: Sequence[Mapping[str, Any]],
                 names: Sequence[str], rows: list[list[int]], sizes: list[int],
                 step_addresses: np.ndarray) -> None:
        self.names = ("step", *names)
        self.params = [weakref.ref(p) for p in params]
        self.param_addresses = [p.data_ptr() for p in params]
        self.state = [[weakref.ref(state[n]) for n in self.names] for state in states]
        self.grad_numels = [p.numel() for p in params]
        self.dtypes = [p.dtype for p in params]
        self.addresses = np.array(rows, dtype=np.int64)
        self.sizes = np.array(sizes, dtype=np.int64)
        self.first_block = np.zeros(len(sizes) + 1, dtype=np.int64)
        np.cumsum((self.sizes + codegen.BLOCK - 1) // codegen.BLOCK, out=self.first_block[1:])
        self.total = int(self.sizes.sum())
        self.step_addresses = step_addresses

    def matches(self, params: Sequence[Tensor], states: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the same tensors, at the same addresses, are still the ones to update."""
        if len(params) != len(self.params):
            return False
        for p, ref, address in zip(params, self.params, self.param_addresses, strict=True):
            if ref() is not p or p.data_ptr() != address:
                return False
        for state, refs in zip(states, self.state, strict=True):
            for name, ref in zip(self.names, refs, strict=True):
                if state.get(name) is not ref():
                    return False
        return True

    def refresh_grads(self, params: Sequence[Tensor]) -> bool:
        """Writes this step's gradient addresses; False if one cannot be streamed as is."""
        grads = []
        for p, numel, dtype in zip(params, self.grad_numels, self.dtypes, strict=True):
            g = p.grad
            if g.dtype is not dtype or g.numel() != numel or not g.is_contiguous():
                return False
            grads.append(g.data_ptr())
        self.addresses[:, 1] = grads
        return True
