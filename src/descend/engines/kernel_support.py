"""numba helpers the generated kernels import: raw tensor memory as arrays, NaN-aware max/min,
bfloat16 and float16 loads and stores (to nearest-even, or stochastic: ``descend.precision``).

Kept apart from the generated files so that they stay short and numba can cache them. numba
has no bfloat16 or float16 on the CPU: those tensors are streamed as uint16 arrays and converted
with integer arithmetic on the bits, which vectorizes like the rest of the loop.
"""

from __future__ import annotations

from types import FunctionType

import numpy as np
from llvmlite import ir as llvm_ir
from numba import carray, njit
from numba.core import cgutils, types
from numba.extending import intrinsic

from descend import precision


@intrinsic
def void_pointer(typingctx, address):
    """An integer address (``Tensor.data_ptr()``) as a pointer that ``numba.carray`` accepts."""
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(address), codegen


@intrinsic
def float32_from_bits(typingctx, bits):
    """A uint32's bits as a float32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.FloatType())
    return types.float32(types.uint32), codegen


@intrinsic
def bits_of_float32(typingctx, x):
    """A float32's bits as a uint32."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(32))
    return types.uint32(types.float32), codegen


def _compiled(function, **callees):
    """``function`` (pure integer arithmetic in ``descend.precision``) compiled by numba, calling
    the compiled ``callees``: one source for the torch ops and the kernels."""
    namespace = {**function.__globals__, **callees}
    return njit(inline="always")(FunctionType(function.__code__, namespace, function.__name__))


mul32 = _compiled(precision.mul32)
fmix32 = _compiled(precision.fmix32, mul32=mul32)
step_base = _compiled(precision.step_base, mul32=mul32, fmix32=fmix32)  # per tensor and step


# ---- in the element loop: 32-bit integer arithmetic written as LLVM IR ----------------------
# numba widens integer arithmetic to 64 bits, which halves the lanes of a vector (and AVX2 has
# no 64-bit multiply); these helpers run in 32 bits, as the formulas in descend.precision
# define them modulo 2^32 (tests/test_low_precision.py checks them bit for bit against it).

_I32, _I16 = llvm_ir.IntType(32), llvm_ir.IntType(16)


def _fmix32_ir(builder, h):
    for shift, multiplier in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = builder.mul(builder.xor(h, builder.lshr(h, _I32(shift))), _I32(multiplier))
    return builder.xor(h, builder.lshr(h, _I32(16)))


@intrinsic
def element_bits(typingctx, base, index):
    """``descend.precision.element_bits``: fmix32(base + index * GOLDEN) mod 2^32."""
    def codegen(context, builder, signature, args):
        base32, index32 = (builder.trunc(a, _I32) for a in args)
        h = builder.add(base32, builder.mul(index32, _I32(precision.GOLDEN)))
        return _fmix32_ir(builder, h)
    return types.uint32(types.int64, types.int64), codegen


def _bfloat16_nearest_ir(builder, x):
    bits = builder.bitcast(x, _I32)
    lsb = builder.and_(builder.lshr(bits, _I32(16)), _I32(1))
    rounded = builder.lshr(builder.add(builder.add(bits, _I32(0x7FFF)), lsb), _I32(16))
    is_nan = builder.fcmp_unordered("uno", x, x)
    return builder.trunc(builder.select(is_nan, _I32(0x7FC0), rounded), _I16)


@intrinsic
def bfloat16_nearest(typingctx, x):
    """float32 -> bfloat16 bits, rounded to nearest-even (NaN -> torch's 0x7FC0)."""
    def codegen(context, builder, signature, args):
        return _bfloat16_nearest_ir(builder, args[0])
    return types.uint16(types.float32), codegen


@intrinsic
def bfloat16_stochastic(typingctx, x, r):
    """float32 -> bfloat16 bits, rounded up with probability (x - down) / ulp; ``r``: 32
    random bits. NaN and Inf round to nearest."""
    def codegen(context, builder, signature, args):
        x, r = args
        bits = builder.bitcast(x, _I32)
        up = builder.lshr(builder.add(bits, builder.and_(r, _I32(0xFFFF))), _I32(16))
        exponent = builder.and_(bits, _I32(0x7F800000))
        finite = builder.icmp_unsigned("!=", exponent, _I32(0x7F800000))
        return builder.select(finite, builder.trunc(up, _I16), _bfloat16_nearest_ir(builder, x))
    return types.uint16(types.float32, types.uint32), codegen


@intrinsic
def bfloat16_widen(typingctx, h):
    """bfloat16 bits (uint16) -> float32, exactly."""
    def codegen(context, builder, signature, args):
        bits = builder.shl(builder.zext(args[0], _I32), _I32(16))
        return builder.bitcast(bits, llvm_ir.FloatType())
    return types.float32(types.uint16), codegen


@intrinsic
def select(typingctx, condition, if_true, if_false):
    """``if_true if condition else if_false`` without a branch: both sides are computed, which
    keeps the element loop straight-line code that LLVM vectorizes."""
    def codegen(context, builder, signature, args):
        return builder.select(args[0], args[1], args[2])
    return if_true(types.boolean, if_true, if_true), codegen


@intrinsic
def _half_to_float(typingctx, bits):
    def codegen(context, builder, signature, args):
        half = builder.bitcast(args[0], llvm_ir.HalfType())
        return builder.fpext(half, llvm_ir.FloatType())
    return types.float32(types.uint16), codegen


@intrinsic
def _float_to_half(typingctx, x):
    def codegen(context, builder, signature, args):
        half = builder.fptrunc(args[0], llvm_ir.HalfType())
        return builder.bitcast(half, llvm_ir.IntType(16))
    return types.uint16(types.float32), codegen


@njit(inline="always")
def _bits(x):
    return np.int64(bits_of_float32(np.float32(x)))


@njit(inline="always")
def _float(bits):
    return float32_from_bits(np.uint32(bits))


@njit(inline="always")
def float16_widen_by_bits(h):
    """float16 bits (uint16) -> float32, exactly, in integer arithmetic (where the CPU lacks
    F16C's conversion instructions)."""
    h = np.int64(h)
    sign = (h & 0x8000) << 16
    exponent = (h >> 10) & 0x1F
    mantissa = h & 0x3FF
    if exponent == 0:  # zero or subnormal: mantissa * 2^-24, exact in float32
        return _float(_bits(np.float32(mantissa) * np.float32(precision.FP16_SUBNORMAL_ULP))
                      | sign)
    if exponent == 31:  # Inf or NaN
        return _float(sign | 0x7F800000 | (mantissa << 13))
    return _float(sign | ((exponent + 112) << 23) | (mantissa << 13))


@njit(inline="always")
def float16_nearest_by_bits(x):
    """float32 -> float16 bits, rounded to nearest-even, in integer arithmetic (F. Giesen's
    float_to_half_fast3_rtne: overflow -> Inf, NaN -> 0x7E00, subnormals rounded by a float32
    add), where the CPU lacks F16C."""
    f = _bits(x)
    sign = f & 0x80000000
    f = f ^ sign
    if f >= 0x47800000:  # |x| >= 65536 (or Inf, NaN)
        out = 0x7E00 if f > 0x7F800000 else 0x7C00
    elif f < 0x38800000:  # below float16's smallest normal: 0.5 + |x| rounds at 2^-24
        out = _bits(_float(f) + np.float32(0.5)) - 0x3F000000
    else:
        out = (f - (112 << 23) + 0xFFF + ((f >> 13) & 1)) >> 13
    return np.uint16(out | (sign >> 16))


def _has_f16c() -> bool:
    import llvmlite.binding as llvm

    return bool(llvm.get_host_cpu_features().get("f16c", False))


# LLVM's float<->half conversions are one vectorizable instruction each on CPUs with F16C (every
# x86 CPU since 2013; ARM64 has its own); elsewhere they would be library calls numba may not
# link, so the integer versions stand in. Both round to nearest-even, as torch does.
if _has_f16c():
    @njit(inline="always")
    def float16_widen(h):
        """float16 bits (uint16) -> float32, exactly."""
        return _half_to_float(np.uint16(h))

    @njit(inline="always")
    def float16_nearest(x):
        """float32 -> float16 bits, rounded to nearest-even."""
        return _float_to_half(np.float32(x))
else:
    float16_widen, float16_nearest = float16_widen_by_bits, float16_nearest_by_bits


@njit(inline="always")
def float16_stochastic(x, r):
    """float32 -> float16 bits, rounded up with probability (x - down) / ulp (see
    ``descend.precision.round_stochastic``, which computes the same bits with torch ops). Both
    of its cases are computed and one selected: no branch in the element loop."""
    b = _bits(x)
    normal = _float((b + (r & 0x1FFF)) & (precision.MASK32 ^ 0x1FFF))
    scaled = abs(np.float32(x)) * np.float32(1 / precision.FP16_SUBNORMAL_ULP)
    down = np.floor(scaled)
    uniform = np.float32(r >> 8) * np.float32(precision.FP16_SUBNORMAL_ULP)
    up = select(uniform < scaled - down, np.float32(1.0), np.float32(0.0))
    magnitude = (down + up) * np.float32(precision.FP16_SUBNORMAL_ULP)
    subnormal = _float(_bits(magnitude) | (b & 0x80000000))
    rounded = select(abs(x) >= np.float32(precision.FP16_MIN_NORMAL), normal, subnormal)
    return float16_nearest(select(abs(x) < np.inf, rounded, np.float32(x)))


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
