"""numba helpers the generated kernels import: raw tensor memory as arrays, NaN-aware max/min.

Kept apart from the generated files so that they stay short and numba can cache them.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit
from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def void_pointer(typingctx, address):
    """An integer address (``Tensor.data_ptr()``) as a pointer that ``numba.carray`` accepts."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


@njit(inline="always")
def maximum(a, b):
    """torch.maximum on two numbers: NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a > b else b


@njit(inline="always")
def minimum(a, b):
    """torch.minimum on two numbers: NaN if either is NaN."""
    if a != a or b != b:
        return a + b
    return a if a < b else b


@njit(cache=True, nogil=True)
def read_step_counters(addresses, values):
    """Reads the float32 step counters at ``addresses`` into ``values``: one call instead of a
    torch op per parameter, which costs more than a small tensor's whole update."""
    for i in range(addresses.size):
        values[i] = carray(void_pointer(addresses[i]), 1, np.float32)[0]


# Compiled (or loaded from the cache) at import with the first step's other work, not at the
# first prepared step.
@njit("boolean(int64[::1], float64[::1], float64)", cache=True, nogil=True)
def advance_from(addresses, values, expected):
    """step += 1 for every float32 counter at ``addresses`` if all of them equal ``expected``
    (the count a prepared batch left them at), writing the new counts into ``values``; False,
    with nothing changed, otherwise (counters set by hand, or advanced by the general path).
    One call per step instead of a read, a uniformity check and an increment."""
    for i in range(addresses.size):
        if np.float64(carray(void_pointer(addresses[i]), 1, np.float32)[0]) != expected:
            return False
    for i in range(addresses.size):
        step = carray(void_pointer(addresses[i]), 1, np.float32)
        step[0] += np.float32(1.0)
        values[i] = step[0]
    return True
