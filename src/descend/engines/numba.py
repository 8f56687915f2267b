"""The numba backend: the traced rule compiled into one fused CPU kernel that updates many
tensors per call, in place, at the memory-bandwidth limit (``descend.engines.codegen`` prints the
kernel from the IR).

What it covers: CPU tensors of float32, float64, bfloat16 or float16 (complex64/128 as pairs of
reals), with state buffers and gradients in any of those dtypes (``state_dtype``: loads widen to
the compute dtype, stores round into each tensor's own: ``descend.precision``), plain
``torch.Tensor`` / ``nn.Parameter``, and DTensors (FSDP2) whose gradient and state are sharded
like the parameter (the kernel then updates this rank's local shards), any strides (dense
layouts are run in place; a strided view is staged through one contiguous copy).
``unsupported_reason`` says why it cannot take a tensor; ``descend.engines`` routes such tensors
elsewhere under ``impl="auto"`` and raises under ``impl="numba"`` or ``"fast"``.

``apply`` runs any batch (the general path). ``prepare`` builds a ``Prepared`` run for a param
group whose next steps touch the same tensors (``descend.batch`` decides when that holds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor

from descend import precision
from descend.distributed import is_sharded, local_shards
from descend.engines import codegen, kernel_support
from descend.engines.address_table import AddressTable
from descend.engines.ir import (
    Trace,
    TraceError,
    configuration,
    flatten_scalars,
    trace_for,
    traces_by_step,
)
from descend.engines.reference import operands
from descend.engines.work_split import WorkSplit
from descend.state import scalars_of

STORAGE = {dtype: precision.dtype_name(dtype) for dtype in precision.STORAGE_DTYPES}
COMPLEX = (torch.complex64, torch.complex128)  # streamed as pairs of their real dtype
PLAIN_TYPES = (Tensor, torch.nn.Parameter)
SCALAR_STATE = (torch.float32, torch.float64)  # per-tensor scalars: read and written in place

# Below this many elements per call a serial loop beats handing work to other
# threads: on idle cores a hand-off costs 1-2 us, the time one core takes for about 30k elements
# of an Adam step; above it two cores stream up to twice as fast (measured on 2 idle cores: Adam
# over 64k elements 35 us serial, 19 us parallel; the 300 tensors of `descend bench --shape small`
# 1.0 ms serial, 0.8 ms parallel, cache cold). Cores busy with other processes make any hand-off
# slower (numba's and torch's OpenMP pools then compete for them).
PARALLEL_MIN_ELEMENTS = 65536

Signature = tuple[str, ...]  # the storage dtype of each operand: p, g, then the state buffers
_kernels: dict[tuple[int, Signature, bool], Any] = {}


def unsupported_reason(p: Tensor) -> str | None:
    """Why the numba backend cannot update ``p`` (None when it can)."""
    if is_sharded(p):
        return ("a DTensor parameter whose gradient or state is not sharded like it (a Partial "
                "gradient, say) is not supported")
    if type(p) not in PLAIN_TYPES:
        return f"{type(p).__name__} parameters (tensor subclasses) are not supported"
    if not p.is_cpu:
        return f"it is on {p.device.type}, and the numba backend runs on the CPU only"
    if p.dtype not in STORAGE and p.dtype not in COMPLEX:
        return (f"the numba backend does not support {p.dtype} (float32, float64, bfloat16, "
                "float16, complex64 and complex128 it does)")
    return None


def covers(p: Tensor, g: Tensor, state: Mapping[str, Any],
           state_names: Sequence[str]) -> str | None:
    """Why this backend cannot update ``p`` with this gradient and state (None when it can)."""
    if is_sharded(p):
        local = local_shards(p, g, state, state_names)
        if local is None:
            return unsupported_reason(p)
        p, g, state = local
    reason = unsupported_reason(p)
    if reason is not None:
        return reason
    for name, t in (("gradient", g), *((name, state[name]) for name in state_names)):
        alike = t.dtype == p.dtype if p.dtype in COMPLEX else t.dtype in STORAGE
        if type(t) not in PLAIN_TYPES or not alike or t.shape != p.shape:
            return (f"its {name} is a {tuple(t.shape)} {t.dtype} {type(t).__name__}, the "
                    f"parameter a {tuple(p.shape)} {p.dtype} tensor: the numba backend streams "
                    "them side by side and needs them of one shape, in dtypes it can store "
                    "(state set by hand?)")
    for name in scalars_of(state_names):
        t = state[name]
        if type(t) not in PLAIN_TYPES or t.dtype not in SCALAR_STATE or t.numel() != 1 or (
                not t.is_cpu or not t.is_contiguous()):
            return (f"its per-tensor state {name} is a {tuple(t.shape)} {t.dtype} "
                    f"{type(t).__name__} on {t.device}: the numba backend reads it as one "
                    "float32 or float64 number on the CPU (state set by hand?)")
    return None


def _kernel(trace: Trace, signature: Signature, stochastic: bool, rule: Callable) -> Any:
    key = (id(trace), signature, stochastic)
    if key not in _kernels:
        name = f"{rule.__module__}.{rule.__qualname__}"
        compute = "float64" if "float64" in signature else "float32"
        source = codegen.kernel_source(trace, signature, compute, stochastic, name)
        _kernels[key] = codegen.load_kernel(source)
    return _kernels[key]


def _signature(member: Member) -> Signature:
    """The storage dtypes of a tensor's operands (``reference.operands``), then of its
    per-tensor scalar state."""
    return tuple(STORAGE[t.dtype] for t in (*member[0], *member[1]))


def _step_addresses(steps: Sequence[Tensor]) -> np.ndarray | None:
    """Addresses of the step counters, or None unless all are float32 scalars on the CPU."""
    addresses = []
    for s in steps:
        if s.dtype is not torch.float32 or not s.is_cpu or s.numel() != 1:
            return None
        addresses.append(s.data_ptr())
    return np.array(addresses, dtype=np.int64)


def _step_values(steps: Sequence[Tensor]) -> np.ndarray:
    """The step counters as float64 values."""
    addresses = _step_addresses(steps)
    if addresses is None:
        return torch.stack(list(steps)).to(torch.float64).reshape(-1).numpy()
    values = np.empty(len(addresses), dtype=np.float64)
    kernel_support.read_step_counters(addresses, values)
    return values


def _address_row(ops: Sequence[Tensor]) -> list[int] | None:
    """The addresses of p, g and the state buffers, or None unless the kernel may stream them as
    flat arrays of p's size (a mismatch would make it touch memory not theirs).

    Written as a plain loop: it runs for every tensor at every step."""
    n = ops[0].numel()
    row = []
    for t in ops:
        if t.numel() != n or not t.is_contiguous():
            return None
        row.append(t.data_ptr())
    return row


def _run(trace: Trace, kernel: Any, rows: list[list[int]], sizes: list[int], steps: np.ndarray,
         hyper: Mapping[str, Any]) -> None:
    """One kernel call over tensors given by their operands' addresses (``trace.tensors`` order)
    and sizes."""
    _launch(kernel, np.array(rows, dtype=np.int64), WorkSplit(np.array(sizes, dtype=np.int64)),
            steps, _hyper_values(trace, flatten_scalars(hyper, 0.0)))


def _threads() -> int:
    """torch's thread count (OMP_NUM_THREADS, torch.set_num_threads: one setting for both
    libraries, so that ranks under torchrun do not each take every core), within numba's pool."""
    wanted = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)
    return wanted


def _hyper_values(trace: Trace, scalars: Mapping[str, float]) -> np.ndarray:
    """The kernel's ``hyper`` argument: the trace's scalar leaves, in its order."""
    return np.array([scalars[n] for n in trace.hypers], dtype=np.float64)


def _launch(kernel: Any, addresses: np.ndarray, work: WorkSplit, steps: np.ndarray,
            values: np.ndarray) -> None:
    """One kernel call: serial for few elements, else one chunk of equal size per thread."""
    threads = 1 if work.total < PARALLEL_MIN_ELEMENTS else _threads()
    items, chunk_first = work.chunks(threads)
    (kernel.step_serial if threads == 1 else kernel.step_parallel)(
        addresses, items, chunk_first, steps, values)


# operands, per-tensor scalar state, step counter, stream key
Member = tuple[list[Tensor], list[Tensor], Tensor, int | None]


def _members(params: Sequence[Tensor], grads: Sequence[Tensor],
             states: Sequence[Mapping[str, Any]], state_names: Sequence[str],
             keys: Sequence[int] | None) -> list[Member]:
    """The tensors of a batch as the kernels take them (a DTensor's local shards)."""
    members = []
    scalar_names = scalars_of(state_names)
    for i, (p, g, state) in enumerate(zip(params, grads, states, strict=True)):
        if is_sharded(p):
            p, g, state = local_shards(p, g, state, state_names)
        members.append((operands(p, g, state, state_names), [state[n] for n in scalar_names],
                        state["step"], None if keys is None else keys[i]))
    return members


def _address_table(params: Sequence[Tensor], members: Sequence[Member],
                   signature: Signature) -> AddressTable | None:
    """A table for the batch, or None if a tensor needs the per-tensor path (strided, or a step
    counter that is not a float32 scalar)."""
    step_addresses = _step_addresses([step for _, _, step, _ in members])
    if step_addresses is None:
        return None
    rows, sizes, _, strided = _rows(members)
    if strided:
        return None
    return AddressTable(params, members[0][0][1].dtype, rows, sizes, step_addresses, signature)


def _rows(batch: Iterable[Member]) -> tuple[
        list[list[int]], list[int], list[int], list[tuple[int, list[Tensor], int | None]]]:
    """The kernel's rows (operand addresses, those of the per-tensor scalar state, then the
    stream key under stochastic rounding) and sizes of the tensors it streams as they are,
    their indices in ``batch``, and the others (strided: run one at a time)."""
    rows, sizes, direct, strided = [], [], [], []
    for k, member in enumerate(batch):
        ops, scalars, _, key = member
        row = _address_row(ops)
        if row is None:
            strided.append((k, member))
        else:
            rows.append(_row(row, scalars, key))
            sizes.append(ops[0].numel())
            direct.append(k)
    return rows, sizes, direct, strided


def _row(operand_addresses: list[int], scalars: Sequence[Tensor], key: int | None) -> list[int]:
    row = [*operand_addresses, *(s.data_ptr() for s in scalars)]
    return row if key is None else [*row, key]


def _run_strided(trace: Trace, kernel: Any, member: Member, steps: np.ndarray,
                 hyper: Mapping[str, Any]) -> None:
    """One parameter whose operands are not all contiguous.

    All operands are viewed in the dimension order of p's strides: a dense layout (a transposed
    weight, its grad and state) becomes contiguous views of the same memory; an operand that is
    still strided goes through a contiguous copy, written back if it is an output.
    """
    ops, scalars, _, key = member
    order = sorted(range(ops[0].dim()), key=lambda d: ops[0].stride(d), reverse=True)
    views = [t.permute(order) for t in ops]
    linear = [v if v.is_contiguous() else v.contiguous() for v in views]
    row = _row([t.data_ptr() for t in linear], scalars, key)
    _run(trace, kernel, [row], [linear[0].numel()], steps, hyper)
    for i, (view, copy) in enumerate(zip(views, linear, strict=True)):
        if copy is not view and i != 1:  # operand 1, the gradient, is only read
            view.copy_(copy)


def _uniform_step(table: AddressTable) -> float | None:
    """The step count every counter of ``table`` holds (read into ``table.steps``), or None
    where they differ (or one is NaN)."""
    steps = table.steps
    kernel_support.read_step_counters(table.step_addresses, steps)
    first = steps[0]
    return None if steps.min() != first or steps.max() != first else float(first)


def apply(rule: Callable, params: Sequence[Tensor], grads: Sequence[Tensor],
          states: Sequence[dict[str, Any]], state_names: Sequence[str],
          hyper: Mapping[str, Any], keys: Sequence[int] | None = None) -> None:
    """(p, state) <- rule(p, grad, state, hyper) for tensors this backend covers (step counters
    already advanced), low-precision stores rounded stochastically with the tensors' stream
    ``keys`` where given (``descend.precision``); raises TraceError, before writing anything,
    where the rule cannot be traced."""
    batches: dict[Signature, list[Member]] = {}
    for member in _members(params, grads, states, state_names, keys):
        batches.setdefault(_signature(member), []).append(member)
    runs = []  # every trace first: a TraceError leaves everything unwritten
    for signature, batch in batches.items():
        steps = _step_values([step for _, _, step, _ in batch])
        for trace, members in traces_by_step(rule, state_names, hyper, steps.tolist()):
            runs.append((trace, signature, [batch[i] for i in members], steps[members]))
    for trace, signature, batch, steps in runs:
        kernel = _kernel(trace, signature, keys is not None, rule)
        rows, sizes, direct, strided = _rows(batch)
        if rows:
            _run(trace, kernel, rows, sizes, steps[direct] if strided else steps, hyper)
        for k, member in strided:  # one at a time: at most one copy per operand is alive
            _run_strided(trace, kernel, member, steps[[k]], hyper)


def prepare(rule: Callable, params: Sequence[Tensor], grads: Sequence[Tensor],
            states: Sequence[dict[str, Any]], state_names: Sequence[str],
            keys: Sequence[int] | None = None) -> Prepared | None:
    """The batch's address table, for ``Prepared.launch`` at the next steps; None where the
    batch needs ``apply`` (tensors of several dtype signatures, strided tensors, DTensor shards,
    step counters that are not float32 CPU scalars)."""
    if not params or any(unsupported_reason(p) for p in params):
        return None
    members = _members(params, grads, states, state_names, keys)
    signatures = {_signature(member) for member in members}
    if len(signatures) != 1:
        return None
    table = _address_table(params, members, signatures.pop())
    if table is None:
        return None
    return Prepared(rule, state_names, table, stochastic=keys is not None)


class Prepared:
    """A batch of parameters (one dtype) whose address table is built, for a caller that checks
    the parameters', state dicts' and buffers' identities itself (``descend.batch``)."""

    def __init__(self, rule: Callable, state_names: tuple[str, ...], table: AddressTable,
                 stochastic: bool) -> None:
        self.rule, self.state_names, self.table = rule, state_names, table
        self.stochastic = stochastic
        self._hyper: dict[str, Any] | None = None  # the last step's, and what it selected:
        self._configuration: tuple | None = None
        self._scalars: dict[str, float] = {}
        self._trace: Trace | None = None
        self._kernel: Any = None
        self._values = np.empty(0)
        self._count: float | None = None  # the counters' value after the last launch

    def check(self, params: Sequence[Tensor], grads: Sequence[Tensor]) -> bool:
        """Whether ``launch`` may run this step: the parameters have not moved and the gradients
        (whose addresses it records) are contiguous, dense and of the parameters' dtype."""
        return self.table.at_same_addresses(params) and self.table.refresh_grads(grads)

    def launch(self, hyper: Mapping[str, Any]) -> bool:
        """step += 1 and the update, after ``check``; False, with nothing changed, where the
        step needs the general path (parameters at different step counts, a configuration the
        tracer refuses).

        The usual step is two numba calls: ``advance_from`` the count the last launch left
        (it checks that every counter still holds it), then the kernel. The counters are read
        anew only when that check fails."""
        table = self.table
        for expected in (self._count, None):
            if expected is None:
                expected = _uniform_step(table)
                if expected is None:
                    return False
            try:  # the trace for the incremented count, as float32 arithmetic gives it
                self._select(hyper, float(np.float32(expected) + np.float32(1)))
            except TraceError:
                return False
            if kernel_support.advance_from(table.step_addresses, table.steps, expected):
                self._count = table.steps[0]
                _launch(self._kernel, table.addresses, table.work, table.steps, self._values)
                return True
            self._count = None
        return False

    def _select(self, hyper: Mapping[str, Any], step: float) -> None:
        """The trace, kernel and hyperparameter values for this step, kept while the
        hyperparameters stay equal and the trace's guards hold (step-dependent guards such as
        SGD's first momentum step are evaluated at each step). A scheduler's new learning
        rate keeps the trace (same configuration, guards checked again): only the kernel's
        hyperparameter values are read anew."""
        if hyper != self._hyper:
            configuration_now = configuration(hyper)
            if configuration_now != self._configuration:
                self._trace = None
            self._hyper, self._configuration = dict(hyper), configuration_now
            self._scalars = flatten_scalars(hyper, step)
            if self._trace is not None:
                self._values = _hyper_values(self._trace, self._scalars)
        self._scalars["step"] = step
        if self._trace is None or not self._trace.holds(self._scalars):
            self._trace = None  # until the lines below succeed
            trace = trace_for(self.rule, self.state_names, hyper, step)
            self._kernel = _kernel(trace, self.table.signature, self.stochastic, self.rule)
            self._values = _hyper_values(trace, self._scalars)
            self._trace = trace
