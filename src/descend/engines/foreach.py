"""The foreach backend: a traced rule run as ``torch._foreach_*`` calls over lists of tensors.

The rule is traced into its elementwise graph (``descend.engines.ir``) and the graph is run node
by node, each vector node as one foreach call over all the tensors of a batch: the tensors of
one (device, dtype) group whose step counts select the same trace. A step therefore costs a
constant number of op calls per batch, whatever the number of tensors (torch's
``_multi_tensor_adam`` is the model). Scalar sub-expressions (bias corrections, ``1 - beta``) are
computed in Python for the step (``ir.evaluate``) and passed as numbers; where the tensors of a
batch are at different step counts (or hold different per-tensor scalar state), as one number per
tensor. New per-tensor scalar state is written with one ``fill_`` per tensor.

It is the default backend on CUDA, XPU and MPS until a fused GPU backend exists: there a foreach
call launches a kernel per chunk of tensors instead of a kernel per operation per tensor.

bfloat16 and float16 leaves are widened to float32 (one copy each) and the results rounded back
once, as the other backends do (``descend.precision``).

It holds no copy of any algorithm's math: it only runs the graph the rule recorded. Each node is
the operation the rule's eager call performs on one tensor (``number / tensor`` as
``reciprocal(tensor) * number`` and ``number - tensor`` as ``-tensor + number``, as torch computes
them), on the same tensors, so on the CPU, where a foreach call is that operation applied tensor
by tensor, the result is bit-for-bit that of the reference backend. A rule the tracer refuses
raises ``ir.TraceError`` before anything is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from descend import precision
from descend.engines import ir, reference
from descend.engines.ir import Expr, Trace
from descend.engines.reference import operands
from descend.state import scalars_of

Scalar = float | list[float]  # one value for the whole batch, or one per tensor

# A vector op with a vector first operand: the second is a list of tensors, a number or a list of
# numbers (one per tensor). maximum/minimum with a number clamp (NaN in, NaN out, like
# torch.maximum; a rule cannot call torch.maximum with a number in eager torch anyway).
BINARY = {"add": torch._foreach_add, "sub": torch._foreach_sub, "mul": torch._foreach_mul,
          "div": torch._foreach_div, "pow": torch._foreach_pow,
          "maximum": torch._foreach_maximum, "minimum": torch._foreach_minimum}
UNARY = {"neg": torch._foreach_neg, "sqrt": torch._foreach_sqrt, "abs": torch._foreach_abs,
         "sign": torch._foreach_sign, "log": torch._foreach_log, "exp": torch._foreach_exp}


def apply(
    rule: Callable[..., tuple[Tensor, dict[str, Tensor]]],
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Any]],
    state_names: Sequence[str],
    hyper: Mapping[str, Any],
    keys: Sequence[int] | None = None,
) -> None:
    """(p, state) <- rule(p, grad, state, hyper) for every parameter, written back in place
    (rounded stochastically into bfloat16/float16 with the tensors' stream ``keys`` where
    given); the step counters have been advanced. Raises ``ir.TraceError`` if the rule cannot
    be traced (nothing is written then)."""
    # Zero-size tensors have nothing to update, but their per-tensor scalar state moves on.
    scalar_names = scalars_of(state_names)
    live = [i for i, p in enumerate(params) if p.numel() or scalar_names]
    if not live:
        return
    points = reference.points([states[i] for i in live], state_names)
    steps = [point[0] for point in points]
    # Each tensor's leaves in the trace's order (p, g, then the state buffers).
    ops = [operands(params[i], grads[i], states[i], state_names) for i in live]
    for trace, members in ir.traces_by_step(rule, state_names, hyper, steps):
        batches: dict[tuple, list[int]] = {}
        for j in members:
            batches.setdefault((params[live[j]].device, *(t.dtype for t in ops[j])),
                               []).append(j)
        for (_, *dtypes), batch in batches.items():
            indices = [live[j] for j in batch]
            stored = {name: [ops[j][column] for j in batch]
                      for column, name in enumerate(trace.tensors)}
            stored.update({name: [states[i][name] for i in indices] for name in scalar_names})
            compute = precision.compute_dtype(dtypes)
            leaves = {name: column if column[0].dtype == compute else
                      [t.to(compute) for t in column] for name, column in stored.items()
                      if name not in scalar_names}
            batch_keys = None if keys is None else [keys[i] for i in indices]
            _run(trace, leaves, stored, [points[j] for j in batch], hyper, batch_keys)


def _scalars(trace: Trace, order: list[Expr], points: list[tuple[float, ...]],
             hyper: Mapping[str, Any]) -> dict[int, Scalar] | None:
    """The value of every scalar operand of a vector node (and of every scalar output) for this
    batch: one number, or one per tensor where their step counts (``points``: each tensor's
    step, then its per-tensor scalar state) give different values. None if a per-tensor value
    falls where torch takes a single number only (the base of a pow)."""
    envs = {point: ir.environment(trace, hyper, point) for point in dict.fromkeys(points)}
    values: dict[int, Scalar] = {}

    def value(e: Expr) -> Scalar:
        if id(e) not in values:
            by_point = {point: ir.evaluate(e, env) for point, env in envs.items()}
            first = next(iter(by_point.values()))
            uniform = all(v == first for v in by_point.values())
            values[id(e)] = first if uniform else [by_point[s] for s in points]
        return values[id(e)]

    for e in order:
        if e.is_vector and e.op != "tensor":
            for position, a in enumerate(e.args):
                if not a.is_vector:
                    v = value(a)
                    if isinstance(v, list) and e.op == "pow" and position == 0:
                        return None
    for e in trace.outputs.values():
        if not e.is_vector:
            value(e)
    return values


def _vector_op(e: Expr, x: list[Tensor] | Scalar, y: list[Tensor] | Scalar | None = None,
               z: list[Tensor] | Scalar | None = None) -> list[Tensor]:
    """Node ``e`` as foreach calls, as eager torch computes it for one tensor (masks and
    torch.where, which have no foreach form, tensor by tensor)."""
    if e.op in UNARY:
        return UNARY[e.op](x)
    if e.op in ir.MASKS or e.op == "where":
        fn, args = getattr(torch, e.op), (x, y, z)[:len(e.args)]
        count = next(len(v) for v in args if isinstance(v, (list, tuple)))
        return [fn(*(v[i] if isinstance(v, (list, tuple)) else v for v in args))
                for i in range(count)]
    a, b = e.args
    if a.is_vector:
        return BINARY[e.op](x, y)
    # a number with a tensor on its right, as torch's reflected operators compute it
    if e.op in ("add", "mul", "maximum", "minimum"):
        return BINARY[e.op](y, x)
    if e.op == "sub":  # number - tensor: torch.rsub, exactly -tensor + number
        return torch._foreach_add(torch._foreach_neg(y), x)
    if e.op == "div":  # number / tensor: torch computes reciprocal(tensor) * number
        reciprocal = torch._foreach_reciprocal(y)
        if a.op == "const" and a.args[0] == 1.0:
            return reciprocal  # how ir records number / tensor: div(1, tensor) * number
        return torch._foreach_mul(reciprocal, x)
    if e.op == "pow":  # number ** tensor: torch.pow(number, tensor)
        return torch._foreach_pow(x, y)
    raise ir.TraceError(f"the foreach backend has no operation {e.op!r}")


def _run(trace: Trace, leaves: dict[str, list[Tensor]], stored: dict[str, list[Tensor]],
         points: list[tuple[float, ...]], hyper: Mapping[str, Any],
         keys: list[int] | None) -> None:
    """One batch: every output computed (reading only the inputs, ``leaves``: ``stored``
    widened to the compute dtype), then all written at once into ``stored``."""
    outputs = trace.outputs
    order = ir.topological(outputs.values())
    scalars = _scalars(trace, order, points, hyper)
    if scalars is None:  # one batch per step count and scalar state
        for point in dict.fromkeys(points):
            part = [i for i, s in enumerate(points) if s == point]
            _run(trace, *({name: [column[i] for i in part] for name, column in columns.items()}
                          for columns in (leaves, stored)),
                 [point] * len(part), hyper, None if keys is None else [keys[i] for i in part])
        return
    kept = {id(e) for e in outputs.values()}
    last_use: dict[int, int] = {}
    for k, e in enumerate(order):
        if e.is_vector and e.op != "tensor":
            for a in e.args:
                last_use[id(a)] = k
    values: dict[int, list[Tensor]] = {}
    for k, e in enumerate(order):
        if not e.is_vector:
            continue
        if e.op == "tensor":
            values[id(e)] = leaves[e.args[0]]
            continue
        args = [values[id(a)] if a.is_vector else scalars[id(a)] for a in e.args]
        values[id(e)] = _vector_op(e, *args)
        for a in e.args:  # temporaries nobody reads any more are freed
            if (a.is_vector and a.op != "tensor" and last_use[id(a)] == k
                    and id(a) not in kept):
                values.pop(id(a), None)

    written = [name for name, e in outputs.items()
               if not (e.op == "tensor" and e.args[0] == name)]  # an unchanged input: no write
    targets: list[Tensor] = []
    sources: list[Tensor] = []
    fills: list[tuple[list[Tensor], Scalar]] = []
    for name in written:
        e = outputs[name]
        if not e.is_vector:
            fills.append((stored[name], scalars[id(e)]))
            continue
        new = values[id(e)]
        if e.op == "tensor" and e.args[0] in written:  # another input, itself overwritten
            new = [t.clone() for t in new]
        if keys is not None and stored[name][0].dtype in precision.LOW_PRECISION:
            column = trace.tensors.index(name)
            for t, result, key, point in zip(stored[name], new, keys, points, strict=True):
                precision.store(t, result, key, int(point[0]), column)
            continue
        targets += stored[name]
        sources += new
    if targets:
        torch._foreach_copy_(targets, sources)
    for tensors, value in fills:
        for i, t in enumerate(tensors):
            t.fill_(value[i] if isinstance(value, list) else value)
