"""The reference backend: calls the rule once per parameter with eager torch ops.

Exact by construction (it *is* the rule), works on every device and dtype, and is the engine the
other backends are tested against. Written as plain torch ops it is also the path autograd
differentiates (``differentiable=True``) and torch.compile traces. bfloat16 and float16 tensors
are widened to float32 for the rule and rounded back once per step (``descend.precision``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from descend import precision
from descend.state import scalars_of


def real_view(t: Tensor) -> Tensor:
    """Complex tensors are optimized as pairs of reals, as torch.optim does."""
    return torch.view_as_real(t) if t.is_complex() else t


def operands(p: Tensor, g: Tensor, state: Mapping[str, Any],
             state_names: Sequence[str]) -> list[Tensor]:
    """p, g and the state buffers, in the trace's leaf order, complex ones as real views: what
    the traced backends stream."""
    return list(map(real_view, (p, g, *(state[n] for n in state_names))))


def read_values(scalars: Sequence[Tensor]) -> list[float]:
    """0-d tensors (step counters, per-tensor state) as Python floats, read in one op (not an
    ``.item()`` per tensor)."""
    try:
        values = torch.stack(list(scalars)).reshape(-1).tolist()
    except RuntimeError:  # counters of different shapes or devices
        values = []
    return values if len(values) == len(scalars) else [s.item() for s in scalars]


def points(states: Sequence[Mapping[str, Any]], state_names: Sequence[str]) -> list[tuple]:
    """Each tensor's step count, then its per-tensor scalar state (``state_names.scalars``):
    what the scalars of its update are computed from (``ir.environment``)."""
    columns = ["step", *scalars_of(state_names)]
    return list(zip(*(read_values([state[n] for state in states]) for n in columns),
                    strict=True))


def apply(
    rule: Callable[..., tuple[Tensor, dict[str, Tensor]]],
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    states: Sequence[dict[str, Any]],
    state_names: Sequence[str],
    hyper: Mapping[str, Any],
    keys: Sequence[int] | None = None,
    step_as_tensor: bool = False,
) -> None:
    """For each parameter: (p, state) <- rule(p, grad, state, hyper), written back in place,
    rounded stochastically into bfloat16/float16 with the tensors' stream ``keys`` where given.

    The step count and the per-tensor scalar state (``state_names.scalars``) go in as numbers,
    or as their 0-d tensors with ``step_as_tensor`` (under torch.compile: reading them would
    break the graph)."""
    # Under autograd (differentiable=True) the rule reads copies: the results are written back
    # into the tensors it reads, which autograd may have saved for the backward pass.
    copy = torch.Tensor.clone if torch.is_grad_enabled() else _same
    scalar_names = scalars_of(state_names)
    for t, (p, g, state) in enumerate(zip(params, grads, states, strict=True)):
        # A buffer some parameters lack (``Buffer.shape``): the rule's keyword defaults to None.
        names = [n for n in state_names if n in state]
        ops = operands(p, g, state, names)
        param, grad, *stored = ops
        buffers = dict(zip(names, stored, strict=True))
        compute = precision.compute_dtype([t.dtype for t in ops])
        step = state["step"] if step_as_tensor else state["step"].item()
        scalars = {n: state[n] if step_as_tensor else state[n].item() for n in scalar_names}
        new_param, new_buffers = rule(
            _widened(param, compute, copy), grad.to(compute), step=step,
            **{n: _widened(b, compute, copy) for n, b in buffers.items()}, **scalars, **hyper)
        for name in scalar_names:  # a number, or a 0-d tensor under torch.compile
            _store_scalar(state[name], new_buffers[name])
        destinations = [param, *buffers.values()]
        results = [new_param, *(new_buffers[name] for name in buffers)]
        # A result that is another of the tensors written here (a rule may return an input as
        # another output: {"prev": p}) is copied first, so that it keeps its value.
        for i, result in enumerate(results):
            for other in destinations:  # (plain loops: torch.compile resumes this frame)
                if result is other and other is not destinations[i]:
                    results[i] = result.clone()
        if keys is None:
            for destination, result in zip(destinations, results, strict=True):
                destination.copy_(result)
            continue
        # The stream's counter (a tensor under torch.compile); operand k is column k + (k > 0).
        count = state["step"].to(torch.int64) if step_as_tensor else int(step)
        for k, (destination, result) in enumerate(zip(destinations, results, strict=True)):
            precision.store(destination, result, keys[t], count, k + (k > 0))


def _store_scalar(destination: Tensor, value: Any) -> None:
    if isinstance(value, Tensor):
        destination.copy_(value)
    else:
        destination.fill_(value)


def _widened(t: Tensor, compute: torch.dtype, copy: Callable[[Tensor], Tensor]) -> Tensor:
    """What the rule reads: the tensor (a copy under autograd), or its widened copy."""
    return copy(t) if t.dtype == compute else t.to(compute)


def _same(t: Tensor) -> Tensor:
    return t


def advance_steps(steps: Sequence[Tensor]) -> None:
    """Each parameter's step counter + 1, before ``apply`` (one call for all of them)."""
    torch._foreach_add_(list(steps), 1)
