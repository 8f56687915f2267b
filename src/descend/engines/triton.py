"""The triton backend: the traced rule printed as one Triton kernel per batch
(``descend.engines.triton_source``), launched once per param group, storage dtypes and step count,
over all of its tensors, on CUDA devices; on CPU tensors under Triton's interpreter
(``TRITON_INTERPRET=1``), which is how it is tested without a GPU.

The host computes the trace's scalars for the batch (in double precision, as the other backends
do) and each tensor's per-tensor scalar state; the kernel streams the elements. Parameters and
state may be float32, float64, bfloat16 or float16 (``state_dtype``), with the math in float32
(float64 where an operand is) and stochastic rounding as ``descend.precision`` defines it.

Not yet: ``capturable=True`` (the step counters stay on the host, as torch keeps them without
it, so a step cannot be captured in a CUDA graph), strided tensors and DTensor shards (``covers``
says why; ``impl="auto"`` sends those to the foreach backend), and a remembered address table
(the table is built at every step, a cost per tensor that a small model feels).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from descend import precision
from descend.engines import codegen, ir, reference, triton_source
from descend.engines.reference import operands

BLOCK = 1024  # elements per program
STORAGE = {dtype: precision.dtype_name(dtype) for dtype in precision.STORAGE_DTYPES}
COMPLEX = (torch.complex64, torch.complex128)  # streamed as pairs of their real dtype
_kernels: dict[tuple, tuple[Any, list[ir.Expr]]] = {}


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (on CPU tensors)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def covers(p: Tensor, g: Tensor, state: Mapping[str, Any],
           state_names: Sequence[str]) -> str | None:
    """Why this backend cannot update ``p`` with this gradient and state (None when it can)."""
    if type(p) not in (Tensor, torch.nn.Parameter):
        return f"{type(p).__name__} parameters (tensor subclasses, DTensors) are not supported"
    if p.device.type != "cuda" and not (p.is_cpu and interpreting()):
        return (f"it is on {p.device.type}; the triton backend runs on CUDA devices (and on CPU "
                "tensors under TRITON_INTERPRET=1, Triton's interpreter)")
    if p.dtype not in STORAGE and p.dtype not in COMPLEX:
        return f"the triton backend does not support {p.dtype}"
    for name, t in (("gradient", g), *((name, state[name]) for name in state_names)):
        alike = t.dtype == p.dtype if p.dtype in COMPLEX else t.dtype in STORAGE
        if (type(t) not in (Tensor, torch.nn.Parameter) or not alike or t.shape != p.shape
                or t.device != p.device or not t.is_contiguous()):
            return (f"its {name} is a {tuple(t.shape)} {t.dtype} tensor on {t.device} (contiguous: "
                    f"{t.is_contiguous()}), the parameter a {tuple(p.shape)} {p.dtype} one: the "
                    "triton backend streams contiguous tensors of one shape side by side")
    if not p.is_contiguous():
        return "it is not contiguous (the triton backend streams contiguous tensors)"
    return None


def apply(rule: Callable, params: Sequence[Tensor], grads: Sequence[Tensor],
          states: Sequence[dict[str, Any]], state_names: Sequence[str],
          hyper: Mapping[str, Any], keys: Sequence[int] | None = None) -> None:
    """(p, state) <- rule(p, grad, state, hyper) for tensors this backend covers (step counters
    already advanced), one launch per trace, device, storage dtypes and step count; raises
    TraceError, before writing anything, where the rule cannot be traced."""
    points = reference.points(states, state_names)
    ops = [operands(p, g, state, state_names) for p, g, state in zip(params, grads, states,
                                                                       strict=True)]
    runs = []  # every trace and kernel first: a TraceError leaves everything unwritten
    for trace, members in ir.traces_by_step(rule, state_names, hyper, [p[0] for p in points]):
        batches: dict[tuple, list[int]] = {}
        for i in members:
            signature = tuple(STORAGE[t.dtype] for t in ops[i])
            batches.setdefault((ops[i][0].device, signature, points[i]), []).append(i)
        for (device, signature, point), batch in batches.items():
            runs.append((trace, _kernel(trace, signature, keys is not None, rule), device,
                         point, batch))
    for trace, (kernel, scalar_nodes), device, point, batch in runs:
        env = ir.environment(trace, hyper, point)
        compute = precision.compute_dtype(t.dtype for t in ops[batch[0]])
        _launch(kernel, [ops[i] for i in batch], device, compute,
                [ir.evaluate(e, env) for e in scalar_nodes],
                None if keys is None else [keys[i] for i in batch], int(point[0]),
                len(trace.tensors))
        for name in trace.scalar_state:  # the new per-tensor scalar state, on the host
            value = ir.evaluate(trace.outputs[name], env)
            for i in batch:
                states[i][name].fill_(value)


def _kernel(trace: ir.Trace, signature: tuple[str, ...], stochastic: bool,
            rule: Callable) -> tuple[Any, list[ir.Expr]]:
    key = (id(trace), signature, stochastic, interpreting())
    if key not in _kernels:
        compute = "float64" if "float64" in signature else "float32"
        source, scalar_nodes = triton_source.kernel_source(
            trace, signature, compute, stochastic, f"{rule.__module__}.{rule.__qualname__}")
        # (the interpreter is chosen when a kernel is defined: it is part of the source's key)
        module = codegen.load_kernel(source + f"# interpreted: {interpreting()}\n")
        _kernels[key] = (module.step, scalar_nodes)
    return _kernels[key]


def _launch(kernel: Any, ops: list[list[Tensor]], device: torch.device, compute: torch.dtype,
            scalars: list[float], keys: list[int] | None, step: int, columns: int) -> None:
    """One launch over the tensors whose operands are ``ops`` (rows of the address table)."""
    sizes = torch.tensor([row[0].numel() for row in ops], dtype=torch.int64)
    blocks = (sizes + BLOCK - 1) // BLOCK
    total = int(blocks.sum())
    if total == 0:
        return
    table = torch.tensor([[t.data_ptr() for t in row] for row in ops], dtype=torch.int64)
    owner = torch.repeat_interleave(torch.arange(len(ops)), blocks)
    first_block = torch.cumsum(blocks, 0) - blocks
    begin = (torch.arange(total) - first_block[owner]) * BLOCK
    items = torch.stack([owner, begin, sizes[owner]], dim=1)
    bases = torch.zeros(1, dtype=torch.int64)
    if keys is not None:
        bases = torch.tensor([[precision.step_base(key, step, column) for column in range(columns)]
                              for key in keys], dtype=torch.int64)
    values = torch.tensor(scalars or [0.0], dtype=compute)
    kernel[(total,)](*(x.to(device) for x in (table, items, values, bases)), BLOCK=BLOCK)


@functools.cache
def available() -> str | None:
    """None where Triton can be imported, else what to install."""
    try:
        import triton  # noqa: F401
    except ImportError as e:
        return (f"Triton is not installed ({e}): pip install 'descend[gpu]' (torch's CUDA "
                "wheels bring it)")
    return None
