"""Storage dtypes, the compute dtype, and how results are rounded into low-precision storage.

Every backend follows one contract (torch's fused kernels' for bfloat16 and float16): operands
are loaded and widened to the compute dtype (float32, or float64 where an operand is float64),
the rule's math runs there, and each result is rounded once into its tensor's storage dtype, to
nearest-even by default. With ``stochastic_rounding`` a low-precision store (bfloat16 or float16)
rounds up with probability equal to the fraction of an ulp it lies above the value below, so that
E[round(x)] = x: updates far smaller than an ulp accumulate on average instead of vanishing.

The random bits come from a counter-based generator: a hash of the param group's seed (drawn
from torch's default generator at construction, kept in the state dict), the parameter's index in
its group, its step count, the operand and the element's index. No generator state advances, so
a resumed run repeats the uninterrupted one bit for bit, on any backend and any thread count.
This module holds the torch-ops version (the reference and foreach backends);
``descend.engines.kernel_support`` holds the numba one, and the tests check they agree bit for
bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

# The storage dtypes of state buffers (``state_dtype``) and of what the fused CPU backend streams.
STORAGE_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
LOW_PRECISION = (torch.bfloat16, torch.float16)

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9  # 2^32 / golden ratio: consecutive elements' counters spread apart
STEP_MIX = 0x9E3779B1
COLUMN_MIX = 0x85EBCA77
INDEX_MIX = 0x27D4EB2F
FP16_MIN_NORMAL = 2.0**-14
FP16_SUBNORMAL_ULP = 2.0**-24


def dtype_name(dtype: torch.dtype) -> str:
    """"bfloat16" for torch.bfloat16: how the kernels' source names a storage dtype."""
    return str(dtype).removeprefix("torch.")


# The storage dtypes by name, and the parameter dtypes descend bench and the lab train in.
STORAGE_BY_NAME = {dtype_name(d): d for d in STORAGE_DTYPES}
PARAMETER_DTYPES = {dtype_name(d): d for d in (torch.float32, *LOW_PRECISION)}


def check_state_dtype(state_dtype: object, owner: str) -> None:
    """A ValueError unless ``state_dtype`` is None or a storage dtype."""
    if state_dtype is not None and state_dtype not in STORAGE_DTYPES:
        allowed = ", ".join(str(d) for d in STORAGE_DTYPES)
        raise ValueError(f"{owner}: state_dtype={state_dtype!r} cannot store optimizer state; "
                         f"choose one of {allowed}, or None (the parameter's dtype)")


def compute_dtype(dtypes: Iterable[torch.dtype]) -> torch.dtype:
    """Where the math runs for operands stored in ``dtypes``: float64 if one of them is, else
    float32 (bfloat16 and float16 widen to it)."""
    return torch.float64 if torch.float64 in set(dtypes) else torch.float32


# ---- the counter-based generator ---------------------------------------------------------------

def mul32(h, c: int):
    """(h * c) mod 2^32 for 32-bit ``h``, in two products that never exceed 2^48: exact for
    Python ints, numba's int64 and int64 tensors alike (signed overflow is undefined in the C++
    that torch and inductor compile)."""
    low = h * (c & 0xFFFF)
    high = ((h * (c >> 16)) & 0xFFFF) << 16
    return (low + high) & MASK32


def fmix32(h):
    """MurmurHash3's 32-bit finalizer (a bijection that mixes every bit), for the same types as
    ``mul32``. The torch ops and the kernels' per-tensor work run this copy; the kernels' element
    loop runs its 32-bit LLVM twin (``kernel_support.element_bits``), tested bit for bit."""
    h = h ^ (h >> 16)
    h = mul32(h, 0x85EBCA6B)
    h = h ^ (h >> 13)
    h = mul32(h, 0xC2B2AE35)
    return h ^ (h >> 16)


def stream_key(seed: int, index: int) -> int:
    """The 32-bit stream of the parameter at ``index`` in a group whose seed is ``seed``."""
    return fmix32((seed ^ fmix32(mul32(index, INDEX_MIX))) & MASK32)


def step_base(key: int, step: int, column: int) -> int:
    """The counter of element 0 of operand ``column`` (its position in p, g, *state) at
    ``step``; element i's bits are ``fmix32(base + i * GOLDEN)``."""
    return fmix32(key ^ fmix32((mul32(step, STEP_MIX) + mul32(column, COLUMN_MIX)) & MASK32))


def element_bits(base, index):
    """The random bits of element ``index`` (a number or an int64 tensor of indices)."""
    return fmix32((base + mul32(index, GOLDEN)) & MASK32)


def random_bits(key: int, step: int | Tensor, column: int, numel: int,
                device: torch.device) -> Tensor:
    """32 random bits per element (int64 tensor) for operand ``column`` of one tensor."""
    index = torch.arange(numel, dtype=torch.int64, device=device)
    return element_bits(step_base(key, step, column), index)


def round_stochastic(x: Tensor, dtype: torch.dtype, bits: Tensor) -> Tensor:
    """float32 ``x`` rounded to ``dtype`` (bfloat16 or float16) up or down at random, unbiased:
    the bits below the target's precision plus random bits, truncated. NaN and Inf round to
    nearest (they are kept)."""
    x = x.to(torch.float32).reshape(-1)
    raw = x.view(torch.int32).to(torch.int64) & MASK32
    if dtype == torch.bfloat16:
        top = (((raw + (bits & 0xFFFF)) & MASK32) >> 16).to(torch.int32)
        rounded = torch.where(top >= 0x8000, top - 0x10000, top).to(torch.int16).view(dtype)
    else:  # float16: 13 bits below its precision where it is normal, a fixed ulp below that
        truncated = ((raw + (bits & 0x1FFF)) & (MASK32 ^ 0x1FFF)).to(torch.int32)
        normal = torch.where(truncated >= 2**31, truncated - 2**32, truncated).view(torch.float32)
        scaled = x.abs() * (1 / FP16_SUBNORMAL_ULP)
        floor = scaled.floor()
        uniform = (bits >> 8).to(torch.float32) * FP16_SUBNORMAL_ULP
        subnormal = torch.copysign((floor + (uniform < scaled - floor).to(torch.float32))
                                   * FP16_SUBNORMAL_ULP, x)
        rounded = torch.where(x.abs() >= FP16_MIN_NORMAL, normal, subnormal).to(dtype)
    return torch.where(torch.isfinite(x), rounded, x.to(dtype))


def store(destination: Tensor, result: Tensor, key: int | None, step: int | Tensor,
          column: int) -> None:
    """``destination`` <- ``result``, rounded into its dtype: stochastically where ``key`` is a
    stream key and the destination is bfloat16 or float16, to nearest otherwise (``copy_``)."""
    if key is None or destination.dtype not in LOW_PRECISION:
        destination.copy_(result)
        return
    # Elements are counted in memory order, as the fused kernels stream them.
    order = sorted(range(destination.dim()), key=destination.stride, reverse=True)
    target, source = destination.permute(order), result.detach().permute(order)
    bits = random_bits(key, step, column, target.numel(), target.device)
    target.copy_(round_stochastic(source, target.dtype, bits).reshape(target.shape))
