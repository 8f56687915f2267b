"""numba helpers the generated kernels import: raw tensor memory as arrays, NaN-aware max/min.

Kept apart from the generated files so that they stay short and numba can cache them.
"""

from __future__ import annotations

from numba import njit
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
