"""The IR: a rule traced into a device-neutral expression graph, by running it on stand-ins.

No backend contains a second copy of any algorithm: the rule is called once per configuration
with ``Expr`` stand-ins for its arguments, and what it computes is recorded as a graph that every
backend prints or runs (``descend.engines.foreach`` runs it as torch._foreach_* calls,
``descend.engines.codegen`` prints it as a numba kernel). The graph knows no backend.

* ``p``, ``g`` and the state buffers become *vector* leaves (one value per element);
* ``step`` and every numeric hyperparameter become *scalar* leaves that carry their concrete value;
* per-tensor scalar state (``StateNames.scalars``: NAdam's ``mu_product``) becomes *scalar*
  leaves whose value each tensor brings (``scalar_state``); the rule returns their new values as
  scalar expressions, which a backend evaluates and stores once per tensor. No guard may read
  them (a trace serves every tensor of a batch);
* booleans and other non-numbers are passed as they are (they select the configuration).

Arithmetic on stand-ins builds a graph. Scalar-only sub-expressions (bias corrections, 1 - beta)
stay scalars, so a kernel computes them once per block, outside the element loop. A comparison of
scalars (``if momentum == 0``, ``step == 1``) is answered from the concrete values and recorded as a
*guard*: the trace is reused for any later values for which every guard gives the same answer, so
a learning rate that changes every step, or a new param group, needs no new trace.

Semantics mirror eager torch: scalar-with-scalar arithmetic is Python float (double) arithmetic;
an operation involving a vector runs in the tensor's dtype, with scalars rounded to that dtype.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import torch

from descend.state import scalars_of

# Binary and unary operations a rule may use on tensors, and their Python scalar meaning.
BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
          "div": operator.truediv, "pow": operator.pow,
          "maximum": lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else max(a, b),
          "minimum": lambda a, b: math.nan if math.isnan(a) or math.isnan(b) else min(a, b)}
UNARY = {"neg": operator.neg, "sqrt": math.sqrt, "abs": abs, "log": math.log, "exp": math.exp,
         "sign": lambda a: float((a > 0) - (a < 0)),  # torch.sign: 0 for NaN
         "float32": lambda a: round_float32(a)}  # a number as a float32 tensor holds it
COMPARISONS = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "le": operator.le,
               "gt": operator.gt, "ge": operator.ge}
TORCH_FUNCTIONS = {torch.maximum: "maximum", torch.minimum: "minimum", torch.sqrt: "sqrt",
                   torch.abs: "abs", torch.Tensor.sqrt: "sqrt", torch.Tensor.abs: "abs",
                   torch.sign: "sign", torch.Tensor.sign: "sign", torch.log: "log",
                   torch.Tensor.log: "log", torch.exp: "exp", torch.Tensor.exp: "exp",
                   torch.where: "where"}
# Elementwise comparisons of tensors (masks, read only by torch.where) and the selection itself.
MASKS = ("eq", "ne", "lt", "le", "gt", "ge")


def round_float32(x: float) -> float:
    """``x`` rounded to the nearest float32 (IEEE round-half-even; inf beyond its range)."""
    try:
        return struct.unpack("f", struct.pack("f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


class TraceError(RuntimeError):
    """The rule did something the traced backends (foreach, numba) cannot run: data-dependent
    control flow, an operation outside the elementwise vocabulary; the reference still runs it."""


class Expr:
    """A node of the graph: ``op`` applied to ``args``; leaves have op "tensor", "hyper",
    "step", "scalar_state" or "const". ``value`` is the concrete value of a scalar (None for a
    vector; NaN where it depends on per-tensor scalar state)."""

    __slots__ = ("op", "args", "is_vector", "value", "trace")
    __hash__ = object.__hash__

    def __init__(self, op: str, args: tuple, is_vector: bool, value: float | None,
                 trace: Trace) -> None:
        self.op, self.args, self.is_vector, self.value, self.trace = (
            op, args, is_vector, value, trace)

    def __repr__(self) -> str:
        return f"Expr({self.op}, vector={self.is_vector}, value={self.value})"

    # ---- arithmetic -----------------------------------------------------------------------
    def _binary(self, op: str, other: Any, reflected: bool = False) -> Expr:
        other = self.trace.wrap(other)
        a, b = (other, self) if reflected else (self, other)
        return self.trace.node(op, a, b)

    def __add__(self, o): return self._binary("add", o)
    def __radd__(self, o): return self._binary("add", o, True)
    def __sub__(self, o): return self._binary("sub", o)
    def __rsub__(self, o): return self._binary("sub", o, True)
    def __mul__(self, o): return self._binary("mul", o)
    def __rmul__(self, o): return self._binary("mul", o, True)
    def __truediv__(self, o): return self._binary("div", o)
    def __rtruediv__(self, o):  # torch computes number / tensor as reciprocal(tensor) * number
        if self.is_vector:
            return self.trace.node("div", self.trace.wrap(1.0), self) * o
        return self._binary("div", o, True)
    def __pow__(self, o): return self._binary("pow", o)
    def __rpow__(self, o): return self._binary("pow", o, True)
    def __neg__(self): return self.trace.node("neg", self)
    def __pos__(self): return self
    def __abs__(self): return self.trace.node("abs", self)
    def sqrt(self) -> Expr: return self.trace.node("sqrt", self)
    def abs(self) -> Expr: return self.trace.node("abs", self)
    def sign(self) -> Expr: return self.trace.node("sign", self)
    def log(self) -> Expr: return self.trace.node("log", self)
    def exp(self) -> Expr: return self.trace.node("exp", self)

    def clamp(self, min: Any = None, max: Any = None) -> Expr:  # noqa: A002 (torch's names)
        """torch.clamp: maximum with ``min``, then minimum with ``max``."""
        out = self if min is None else self.trace.node("maximum", self, self.trace.wrap(min))
        return out if max is None else self.trace.node("minimum", out, self.trace.wrap(max))

    # ---- comparisons of scalars become guards; of tensors, masks for torch.where ------------
    def _compare(self, op: str, other: Any) -> Any:
        other = self.trace.wrap(other)
        if self.is_vector or other.is_vector:
            return self.trace.node(op, self, other)
        return self.trace.guard(op, self, other)

    def __eq__(self, o): return self._compare("eq", o)  # type: ignore[override]
    def __ne__(self, o): return self._compare("ne", o)  # type: ignore[override]
    def __lt__(self, o): return self._compare("lt", o)
    def __le__(self, o): return self._compare("le", o)
    def __gt__(self, o): return self._compare("gt", o)
    def __ge__(self, o): return self._compare("ge", o)

    def __bool__(self) -> bool:  # (a tensor's truth value is data-dependent: the guard refuses)
        return self.trace.guard("ne", self, self.trace.wrap(0))

    def __float__(self) -> float:
        raise TraceError("the rule converts a traced value to a Python float")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        op = TORCH_FUNCTIONS.get(func)
        if op is None or kwargs:
            raise TraceError(f"the rule calls {getattr(func, '__name__', func)}, which the traced "
                             f"backends do not run; elementwise vocabulary: "
                             f"+ - * / ** {sorted(set(TORCH_FUNCTIONS.values()))}")
        trace = next(a.trace for a in args if isinstance(a, Expr))
        return trace.node(op, *(trace.wrap(a) for a in args))


@dataclass(frozen=True, eq=False)  # eq would compare Exprs, i.e. record guards
class Guard:
    """``left <op> right`` gave ``outcome`` when traced."""

    op: str
    left: Expr
    right: Expr
    outcome: bool


class Trace:
    """The graph of one rule under one configuration, with the guards under which it holds."""

    def __init__(self) -> None:
        self.guards: list[Guard] = []
        self._memo: dict[tuple, Expr] = {}
        self.tensors: list[str] = []   # names of vector leaves, in argument order
        self.hypers: list[str] = []    # names of scalar leaves, in argument order
        self.scalar_state: list[str] = []  # names of per-tensor scalar leaves
        self.outputs: dict[str, Expr] = {}  # "p" and each state name -> its new value

    def node(self, op: str, *args: Expr) -> Expr:
        key = (op, *map(id, args))
        if key not in self._memo:
            is_vector = any(a.is_vector for a in args)
            value = None
            if not is_vector:
                fn = BINARY.get(op) or UNARY[op]
                try:
                    value = float(fn(*(a.value for a in args)))
                except (ZeroDivisionError, OverflowError, ValueError, TypeError):
                    value = math.nan
            self._memo[key] = Expr(op, args, is_vector, value, self)
        return self._memo[key]

    def leaf(self, op: str, name: str | float, is_vector: bool, value: float | None) -> Expr:
        key = (op, name)
        if key not in self._memo:
            self._memo[key] = Expr(op, (name,), is_vector, value, self)
        return self._memo[key]

    def wrap(self, x: Any) -> Expr:
        if isinstance(x, Expr):
            return x
        if isinstance(x, Real) and not isinstance(x, bool):
            return self.leaf("const", float(x), False, float(x))
        raise TraceError(f"the rule combines a traced value with {type(x).__name__} {x!r}")

    def guard(self, op: str, left: Expr, right: Expr) -> bool:
        if left.is_vector or right.is_vector:
            raise TraceError("the rule branches on tensor values (data-dependent control flow)")
        if _reads_scalar_state(left) or _reads_scalar_state(right):
            raise TraceError("the rule branches on per-tensor state (its value differs from "
                             "tensor to tensor); compute both sides and select with arithmetic")
        outcome = COMPARISONS[op](left.value, right.value)
        self.guards.append(Guard(op, left, right, outcome))
        return outcome

    def holds(self, scalars: Mapping[str, float]) -> bool:
        """Whether every guard gives its traced outcome for these hyperparameters and step."""
        return all(COMPARISONS[g.op](evaluate(g.left, scalars), evaluate(g.right, scalars))
                   == g.outcome for g in self.guards)


def _reads_scalar_state(e: Expr) -> bool:
    if e.op == "scalar_state":
        return True
    return any(isinstance(a, Expr) and _reads_scalar_state(a) for a in e.args)


def topological(outputs: Iterable[Expr]) -> list[Expr]:
    """Every node the outputs depend on, each after its arguments (how backends walk a trace)."""
    order: list[Expr] = []
    seen: set[int] = set()

    def visit(e: Expr) -> None:
        if id(e) in seen:
            return
        seen.add(id(e))
        for a in e.args:
            if isinstance(a, Expr):  # a leaf's args are its name or value
                visit(a)
        order.append(e)

    for e in outputs:
        visit(e)
    return order


def evaluate(e: Expr, scalars: Mapping[str, float]) -> float:
    """The value of scalar expression ``e`` for other leaf values (Python float arithmetic)."""
    if e.op == "const":
        return e.args[0]
    if e.op in ("hyper", "step", "scalar_state"):
        return float(scalars[e.args[0]])
    fn = BINARY.get(e.op) or UNARY[e.op]
    return float(fn(*(evaluate(a, scalars) for a in e.args)))


def flatten_scalars(hyper: Mapping[str, Any], step: float) -> dict[str, float]:
    """Numeric hyperparameters by leaf name (tuples as ``betas[0]``...), plus ``step``."""
    scalars = {"step": float(step)}
    for name, value in hyper.items():
        items = value if isinstance(value, (tuple, list)) else (value,)
        for i, item in enumerate(items):
            if isinstance(item, Real) and not isinstance(item, bool):
                scalars[f"{name}[{i}]" if isinstance(value, (tuple, list)) else name] = item
    return scalars


def environment(trace: Trace, hyper: Mapping[str, Any],
                point: Sequence[float]) -> dict[str, float]:
    """The scalar leaves' values for a tensor at ``point``: its step count, then its per-tensor
    scalar state (in ``trace.scalar_state`` order)."""
    return {**flatten_scalars(hyper, point[0]),
            **dict(zip(trace.scalar_state, point[1:], strict=True))}


def configuration(hyper: Mapping[str, Any]) -> tuple:
    """What a trace is specialized on besides its guards: booleans and non-numeric values."""
    def shape(v: Any) -> Any:
        if isinstance(v, (tuple, list)):
            return tuple(shape(x) for x in v)
        return "#" if isinstance(v, Real) and not isinstance(v, bool) else v
    return tuple((k, shape(v)) for k, v in sorted(hyper.items()))


def trace_rule(rule: Callable[..., Any], state_names: Sequence[str],
               hyper: Mapping[str, Any], step: float) -> Trace:
    """Runs ``rule`` on stand-ins; raises TraceError if it leaves the elementwise vocabulary."""
    t = Trace()

    def vector(name: str) -> Expr:
        t.tensors.append(name)
        return t.leaf("tensor", name, True, None)

    def scalar(name: str, value: Any) -> Any:
        if isinstance(value, Real) and not isinstance(value, bool):
            t.hypers.append(name)
            return t.leaf("hyper", name, False, float(value))
        return value

    args = {}
    for name, value in hyper.items():
        if isinstance(value, (tuple, list)):
            args[name] = type(value)(scalar(f"{name}[{i}]", v) for i, v in enumerate(value))
        else:
            args[name] = scalar(name, value)
    p, g = vector("p"), vector("g")
    buffers = {name: vector(name) for name in state_names}
    for name in scalars_of(state_names):  # read per tensor: no value to trace with
        t.scalar_state.append(name)
        buffers[name] = t.leaf("scalar_state", name, False, math.nan)
    step_leaf = t.leaf("step", "step", False, float(step))
    try:
        new_p, new_state = rule(p, g, step=step_leaf, **buffers, **args)
    except TraceError:
        raise
    except Exception as e:  # an unsupported operation surfaced as a Python error
        raise TraceError(f"tracing {getattr(rule, '__name__', rule)} failed: {e}") from e
    missing = [n for n in buffers if n not in new_state]
    if missing:
        raise TraceError(f"the rule returned no new value for state {missing}")
    t.outputs = {"p": t.wrap(new_p), **{n: t.wrap(new_state[n]) for n in buffers}}
    if any(t.outputs[n].is_vector for n in t.scalar_state):
        raise TraceError(f"the rule returned a tensor for per-tensor scalar state "
                         f"{t.scalar_state}")
    return t


_traces: dict[tuple, list[Trace] | TraceError] = {}


def trace_for(rule: Callable[..., Any], state_names: Sequence[str], hyper: Mapping[str, Any],
              step: float) -> Trace:
    """The cached trace whose guards hold for these values, tracing anew if none does (a rule
    the tracer refuses is remembered as refused)."""
    # (the default dtype: torch's per-tensor scalars are float64 under a float64 default)
    key = (rule, tuple(state_names), scalars_of(state_names),
           configuration(hyper), torch.get_default_dtype())
    cached = _traces.setdefault(key, [])
    if isinstance(cached, TraceError):
        raise cached
    scalars = flatten_scalars(hyper, step)
    for trace in cached:
        if trace.holds(scalars):
            return trace
    try:
        trace = trace_rule(rule, state_names, hyper, step)
    except TraceError as e:
        _traces[key] = e
        raise
    cached.append(trace)
    return trace


def traces_by_step(rule: Callable[..., Any], state_names: Sequence[str], hyper: Mapping[str, Any],
                   steps: Sequence[float]) -> list[tuple[Trace, list[int]]]:
    """The traces for tensors at these step counts, each with the indices of its tensors
    (usually one trace for all: every parameter has taken as many steps)."""
    chosen = {step: trace_for(rule, state_names, hyper, step) for step in dict.fromkeys(steps)}
    groups: dict[int, tuple[Trace, list[int]]] = {}
    for i, step in enumerate(steps):
        trace = chosen[step]
        groups.setdefault(id(trace), (trace, []))[1].append(i)
    return list(groups.values())
