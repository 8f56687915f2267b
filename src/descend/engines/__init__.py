"""Backends: how a traced rule is applied to many tensors. A backend knows how rules are run,
not their math: every one of them runs the rule in ``descend.rules`` (as written, or its trace,
``descend.engines.ir``).

``reference``: eager torch ops, one call of the rule per tensor; any device and dtype.
``foreach``: the trace as ``torch._foreach_*`` calls over a group's lists; any device.
``numba``: the trace compiled into one fused CPU kernel per call (needs ``descend[fast]``).
``triton``: the trace printed as one Triton kernel per launch, on CUDA devices (needs Triton:
``descend[gpu]``; on CPU tensors under ``TRITON_INTERPRET=1``, Triton's interpreter).

A param group's ``impl`` chooses, tensor by tensor (``backend_for``):

``"auto"`` (the default): numba for CPU float32, float64, bfloat16 and float16 (and complex)
tensors when numba is installed, triton for CUDA tensors when Triton is installed, foreach for
tensors on other devices (XPU, MPS...) and the CUDA ones triton cannot take, the reference for
the rest (tensor subclasses, other dtypes). It says what it chose at debug log level
(logger ``descend.engines``).
``"fast"``: the fused backend of the tensors' device (numba on the CPU, triton on CUDA), or a
ValueError that says why there is none. It never falls back silently.
``"reference"``, ``"foreach"``, ``"numba"``, ``"triton"``: that backend, or a ValueError where it
cannot run.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from torch import Tensor

from descend.engines import foreach, reference
from descend.engines import triton as triton_backend

IMPLS = ("auto", "reference", "foreach", "numba", "triton", "fast")
log = logging.getLogger("descend.engines")


def check_impl(impl: Any) -> None:
    """A ValueError unless ``impl`` names a backend choice."""
    if impl not in IMPLS:
        raise ValueError(f"unknown impl={impl!r}; choose one of {list(IMPLS)}: 'auto' picks a "
                         "backend for each tensor's device and dtype")


@functools.cache
def fast_available() -> bool:
    """Whether numba is installed (checked without importing it: that takes a while)."""
    return importlib.util.find_spec("numba") is not None


@functools.cache
def numba_backend() -> ModuleType | str:
    """The numba backend, or why it cannot be used (not installed, or broken)."""
    if not fast_available():
        return "numba is not installed: pip install 'descend[fast]'"
    try:
        from descend.engines import numba
    except ImportError as e:  # numba present but unusable (e.g. built for another numpy)
        return (f"importing numba failed ({e}); reinstall it with "
                "pip install -U 'descend[fast]'")
    return numba


def backend_for(impl: str, p: Tensor, g: Tensor, state: Mapping[str, Any],
                state_names: Sequence[str]) -> ModuleType:
    """The backend that updates ``p`` under ``impl``, or a ValueError that says why ``impl``
    cannot, and what to choose instead."""
    if impl == "reference":
        return reference
    if impl == "foreach":
        return foreach
    if impl == "triton" or (p.device.type == "cuda" and impl in ("auto", "fast")):
        backend = triton_backend
        reason = triton_backend.available() or triton_backend.covers(p, g, state, state_names)
    else:
        backend, reason = numba_backend(), _why_not_numba(p, g, state, state_names)
    if reason is None:
        return backend
    if impl == "auto":
        return foreach if p.device.type != "cpu" else reference
    raise ValueError(f"impl={impl!r} cannot update this parameter: {reason}. Choose one of "
                     f"{list(IMPLS)}: 'auto' picks a backend per tensor; 'foreach' and "
                     "'reference' run on any device and dtype.")


def _why_not_numba(p: Tensor, g: Tensor, state: Mapping[str, Any],
                   state_names: Sequence[str]) -> str | None:
    if p.device.type != "cpu":
        return (f"it is on {p.device.type}, and the numba backend runs on the CPU only "
                "('triton' is the fused backend for CUDA, 'foreach' runs on any device)")
    backend = numba_backend()
    return backend if isinstance(backend, str) else backend.covers(p, g, state, state_names)


def partition(impl: str, params: Sequence[Tensor], grads: Sequence[Tensor],
              states: Sequence[Mapping[str, Any]],
              state_names: Sequence[str]) -> dict[ModuleType, list[int]]:
    """The group's tensors by the backend that updates them (indices into ``params``)."""
    check_impl(impl)  # a group's impl may have been set by hand since
    parts: dict[ModuleType, list[int]] = {}
    for i, (p, g, state) in enumerate(zip(params, grads, states, strict=True)):
        parts.setdefault(backend_for(impl, p, g, state, state_names), []).append(i)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("impl=%r: %s", impl, ", ".join(
            f"{len(ix)} tensor(s) on {b.__name__.rsplit('.', 1)[-1]}" for b, ix in parts.items()))
    return parts
