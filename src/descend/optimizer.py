"""One Optimizer base for every descend optimizer: param groups, state, validation, dispatch.

A subclass names its rule, its state buffers and its hyperparameter ranges; everything else is
here, written once.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from descend import engines, precision
from descend import state as state_schema
from descend.batch import Batch, GroupWork, with_grad
from descend.distributed import all_finite
from descend.engines import native, reference
from descend.engines.ir import TraceError, trace_for
from descend.state import Buffer
from descend.validation import Interval, as_number, check_betas, check_group

# torch.optim's implementation switches. descend accepts them so that code written for torch runs
# unchanged. foreach and capturable are hints (descend picks its backend with ``impl``); fused=True
# checks the parameters' devices as torch does; differentiable=True runs the step as torch ops
# under autograd (``_step_in_torch_ops``).
IMPLEMENTATION_KEYWORDS = ("foreach", "fused", "capturable", "differentiable")
# How state is stored and rounded: a checkpoint's values win, and one that lacks them (torch's,
# or an older version's) keeps this optimizer's.
STORAGE_KEYS = ("state_dtype", "stochastic_rounding", "rounding_seed")


@dataclass(frozen=True)
class Listing:
    """How ``descend.registry`` lists an optimizer class: the name, a one-line intuition, the
    rule in LaTeX, the source paper, and the hyperparameters the name sets (the registry's
    "nesterov" is SGD with momentum=0.9, nesterov=True)."""

    name: str
    intuition: str
    latex: str
    source: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)


class Optimizer(torch.optim.Optimizer):
    """Base class. A subclass declares its ``rule`` (or overrides ``rule_for`` when the
    configuration picks the rule), its ``state_schema`` (the buffers the rule reads and
    returns: ``descend.state.Buffer``), its hyperparameter ``ranges``, and its constructor,
    whose signature and defaults are torch's where torch has the algorithm, and its
    ``listings`` in the registry (``Listing``; not inherited).

    Every optimizer also takes ``state_dtype`` (the storage dtype of the per-element state:
    None keeps the parameter's, as torch does; torch.bfloat16 halves an fp32 model's optimizer
    memory, torch.float32 keeps a bf16 model's state at full precision) and
    ``stochastic_rounding`` (bfloat16/float16 parameters and state are written with unbiased
    stochastic rounding instead of round-to-nearest: an update smaller than half an ulp then
    moves the value on average instead of never; with float32 and float64 tensors it changes
    nothing). The math always runs in float32 or wider (``descend.precision``)."""

    rule: Callable[..., tuple[Tensor, dict[str, Tensor]]]
    state_schema: tuple[Buffer, ...] = ()
    _has_step_scalars: bool = False  # set by __init_subclass__: step_scalars is overridden
    listings: tuple[Listing, ...] = ()
    ranges: dict[str, Interval] = {}
    # Sparse gradients are densified and run through the rule, where that is torch's result too
    # (a zero gradient leaves parameter and state unchanged, or torch's own update is dense).
    supports_sparse: bool = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        defaults: dict[str, Any],
        *,
        skip_nonfinite: bool = False,
        impl: str = "auto",
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        state_dtype: torch.dtype | None = None,
        stochastic_rounding: bool = False,
    ) -> None:
        if fused and differentiable:  # torch's errors
            raise RuntimeError("`fused` does not support `differentiable`")
        if fused and foreach:
            raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
        engines.check_impl(impl)  # fails early on an unknown engine name
        precision.check_state_dtype(state_dtype, type(self).__name__)
        defaults = dict(defaults, foreach=foreach, fused=fused, capturable=capturable,
                        differentiable=bool(differentiable),
                        skip_nonfinite=bool(skip_nonfinite), impl=impl, state_dtype=state_dtype,
                        stochastic_rounding=bool(stochastic_rounding))
        self.skipped_steps = 0
        self.skip_group = None  # ranks that skip together (descend.distributed.skip_together)
        self._batches: dict[int, Batch] = {}  # by id(group): what its last step touched
        self._stored_as: dict[int, Any] = {}  # by id(group): the state_dtype its state has
        super().__init__(params, defaults)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._has_step_scalars = cls.step_scalars is not Optimizer.step_scalars

    # ---- what a subclass describes -------------------------------------------------------
    def step_scalars(self, groups: list[GroupStep]) -> list[dict[str, float]]:
        """Scalars that span many tensors (Prodigy's step size d, a schedule-free average's
        weight): for each group of this step, the extra keyword hyperparameters of its rule.

        Called once per step with every param group (``GroupStep``: the group, its parameters
        with a gradient, their gradients and completed state dicts; a group without gradients
        has empty lists), after ``skip_nonfinite``'s check (a skipped step leaves these scalars
        as they were) and before any tensor is updated; the values are numbers, so a traced
        kernel takes them as scalar leaves, without a new trace. An override keeps the
        scalars' running state in the param groups (where the reference packages keep it:
        it then round-trips through ``state_dict``); if the step is then refused before any
        tensor changed (an ``impl`` that cannot run the rule), the groups are put back as
        they were. Not overriding it costs nothing: the base never calls it."""
        return [{} for _ in groups]

    def rule_for(self, group: dict[str, Any]) -> Callable[..., Any]:
        """The update rule of this group (SGD has two forms of momentum)."""
        return type(self).rule

    def state_names(self, group: dict[str, Any]) -> state_schema.StateNames:
        """Names of the per-parameter buffers this group's configuration needs (the element
        buffers; ``.scalars``, the per-tensor scalars)."""
        return state_schema.names(self.state_schema, group)

    def check_hyperparameters(self, group: dict[str, Any]) -> None:
        """Raises ValueError on an invalid group; subclasses add cross-parameter checks."""
        values = group
        if group["differentiable"]:  # a tensor hyperparameter may require grad: check its value
            values = {k: _detached(v) for k, v in group.items()}
        if "betas" in group:  # as many as the constructor's default has (Adam 2, AdEMAMix 3)
            check_betas(group["betas"], len(constructor_defaults(type(self))["betas"]),
                        type(self).__name__)
        check_group(values, self.ranges, type(self).__name__)
        engines.check_impl(group["impl"])  # a group may name its own engine
        precision.check_state_dtype(group["state_dtype"], type(self).__name__)

    # ---- plumbing -------------------------------------------------------------------------
    @staticmethod
    def profile_hook_step(func: Callable[..., Any]) -> Callable[..., Any]:
        """torch's wrapper of ``step`` (global and per-optimizer pre/post hooks, in torch's
        order; a pre hook may replace the arguments), with the profiler's range
        ``Optimizer.step#<class>.step`` opened only while a profiler records or torch.compile
        traces: torch's opens it at every step, about 20 us, a sixth of a small model's step."""
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if torch.compiler.is_compiling() or torch._C._autograd._profiler_enabled():
                name = f"Optimizer.step#{type(args[0]).__name__}.step"
                with torch.autograd.profiler.record_function(name):
                    return _hooked_step(func, args, kwargs)
            return _hooked_step(func, args, kwargs)

        return wrapper

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if param_group.get("skip_nonfinite", self.defaults["skip_nonfinite"]) != self.defaults[
                "skip_nonfinite"]:
            raise ValueError(f"{type(self).__name__}: skip_nonfinite applies to the whole step, "
                             "not to one param group; pass it to the constructor")
        _torch_add_param_group(self, param_group)
        try:
            self.check_hyperparameters(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()  # an invalid group must not stay in the optimizer
            raise
        if self.param_groups[-1]["stochastic_rounding"]:  # seeded at construction
            _rounding_seed(self.param_groups[-1])

    def state_moved(self) -> None:
        """Call after moving the memory of state tensors in place (``share_memory_()``,
        ``.data = ...`` or ``set_()`` on ``optimizer.state[p][name]``): the next step then
        reads their addresses anew. (A prepared step checks the parameters' addresses, and the
        state's tensors by identity, at every step, but not the state tensors' addresses: that
        would cost 8-15% of a small model's step. Replacing a state tensor by another, or
        ``load_state_dict``, needs no call.)"""
        self._batches = {}

    def __getstate__(self) -> dict[str, Any]:
        # torch's state leaves out skip_group (a process group cannot be copied or pickled): a
        # copy skips on its own until skip_together is called on it.
        return {**super().__getstate__(), "skipped_steps": self.skipped_steps}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # torch's load_state_dict also calls __setstate__ (without these keys): keep them.
        self.skipped_steps = state.pop("skipped_steps", getattr(self, "skipped_steps", 0))
        self.skip_group = getattr(self, "skip_group", None)
        self._batches, self._stored_as = {}, {}
        unpickling = "defaults" in state  # (load_state_dict passes only state and groups)
        super().__setstate__(state)
        for group in (self.defaults, *self.param_groups) if unpickling else ():
            group.setdefault("state_dtype", None)  # pickled by an older version
            group.setdefault("stochastic_rounding", False)
        for p_state in self.state.values():  # a step saved as a number (older torch, by hand)
            step = p_state.get("step")
            if step is not None and not isinstance(step, Tensor):
                p_state["step"] = torch.tensor(float(step), dtype=state_schema.scalar_dtype())

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch's load, which replaces each group by the saved one. A key the saved group lacks
        (a checkpoint of torch.optim or of an older version) takes its constructor default, as
        torch does (``momentum_form`` is then torch's form, as in a torch checkpoint); the
        engine choices ``impl`` and ``skip_nonfinite`` keep the values this optimizer was
        built with."""
        built_with = [dict(group) for group in self.param_groups]
        saved = _saved_buffers(state_dict, {b.name for b in self.state_schema})
        super().load_state_dict(state_dict)
        defaults = constructor_defaults(type(self))
        for group, before in zip(self.param_groups, built_with, strict=True):
            for key, value in before.items():
                if key in ("impl", "skip_nonfinite"):  # how this process runs, not the algorithm
                    group[key] = value
                elif key in STORAGE_KEYS:
                    group.setdefault(key, value)
                else:
                    group.setdefault(key, defaults.get(key, value))
            self.check_hyperparameters(group)
        # torch casts every state tensor to its parameter's dtype, which would round an fp32
        # state saved for bf16 parameters: the saved buffers go back, cast to their storage
        # dtype by _cast_state.
        for group, saved_group in zip(self.param_groups, state_dict["param_groups"], strict=True):
            for p, index in zip(group["params"], saved_group["params"], strict=True):
                state = self.state.get(p, {})
                for buffer in self.state_schema:
                    if (index, buffer.name) in saved and buffer.name in state:
                        state[buffer.name] = saved[index, buffer.name].to(device=p.device)
            self._cast_state(group)

    def _complete_state(self, p: Tensor, state: dict[str, Any], group: dict[str, Any],
                        names: state_schema.StateNames) -> None:
        """Lazy state: the step counter and the buffers this group's configuration needs.

        A buffer can be missing after the first step too: momentum turned on mid-run (by hand
        or by OneCycleLR), or a torch.optim.SGD checkpoint, which keeps no step counter (its
        momentum buffer means at least one step was taken, so the count resumes from 1)."""
        if "step" not in state:
            state["step"] = torch.tensor(1.0 if state else 0.0, dtype=state_schema.scalar_dtype())
        for buffer in self.state_schema:
            if (buffer.name in names.everything and buffer.name not in state
                    and buffer.kept_for(p, group)):
                state[buffer.name] = buffer.create(p, group)

    def _hyperparameters(self, group: dict[str, Any], rule: Callable[..., Any],
                         tensors: bool = False) -> dict[str, Any]:
        """The group's values for the rule's keyword arguments, one-element tensors as floats
        (kept as tensors when ``tensors``: the torch-ops step differentiates through them)."""
        owner = type(self).__name__
        return {k: group[k] if tensors else _as_numbers(k, group[k], owner)
                for k in _keyword_arguments(rule) if k in group}

    def _with_scalars(self, group: dict[str, Any], rule: Callable[..., Any],
                      extra: dict[str, float]) -> dict[str, Any]:
        """The rule's hyperparameters with this step's ``step_scalars`` (no copy without)."""
        hyper = self._hyperparameters(group, rule)
        return {**hyper, **extra} if extra else hyper

    def _group_work(self, group: dict[str, Any]) -> GroupWork:
        """This step's parameters with a gradient, and the group's batch if it still holds."""
        batch = self._batches.get(id(group))
        if batch is not None and not batch.configured_for(group, self.state, self.rule_for(group),
                                                          self.state_names(group)):
            batch = None
        if (batch is not None and batch.dense and native.module is not None
                and batch.compiled_check(native.module.check_group)):
            return GroupWork(group, batch.present, batch.params, None, batch, True)
        present, params, grads = with_grad(group["params"])
        if batch is not None and not batch.holds(group, self.state, present):
            batch = None
        if batch is not None and batch.ready(grads):  # (a sparse gradient is never ready)
            return GroupWork(group, present, params, grads, batch, True)
        return GroupWork(group, present, params, self._dense(group, grads), batch, False)

    def _dense(self, group: dict[str, Any], grads: list[Tensor]) -> list[Tensor]:
        """The gradients, sparse ones densified where this optimizer supports them (torch's
        errors elsewhere)."""
        if not any(g.is_sparse for g in grads):
            return grads
        name = type(self).__name__
        if group["fused"]:
            raise RuntimeError(f"{name}: fused=True does not support sparse gradients (as in "
                               "torch); leave fused unset")
        if not self.supports_sparse:
            raise RuntimeError(
                f"{name} does not support sparse gradients; use descend.SGD or "
                "descend.Adagrad, torch.optim.SparseAdam, or a dense embedding (sparse=False)."
            )
        if group.get("weight_decay", 0) != 0:  # torch refuses it too (SGD: add(sparse, dense))
            raise RuntimeError(f"{name}: the weight_decay option is not compatible with sparse "
                               "gradients; use weight_decay=0 for sparse parameters (a param "
                               "group of their own)")
        if group.get("eps", 1) == 0:  # 0/0 where the sum is still zero: torch skips those rows
            raise RuntimeError(f"{name}: sparse gradients need eps > 0 (rows no gradient has "
                               "touched would divide 0 by 0); pass eps=1e-10, the default")
        return [g.to_dense() if g.is_sparse else g for g in grads]

    def _remember(self, work: GroupWork, route: Route, fused: bool) -> None:
        """After a general step: the group's batch, for the next steps to run as one kernel
        call, where every tensor ran on the numba backend and it can prepare the run."""
        group, params, rule, names = work.group, work.params, route.rule, route.names
        self._batches.pop(id(group), None)
        if not fused:
            return
        prepared = engines.numba_backend().prepare(rule, params, work.gradients(), route.states,
                                                   names, route.keys)
        if prepared is None:
            return
        if len(self._batches) >= len(self.param_groups):  # groups gone since: forget theirs
            alive = {id(g) for g in self.param_groups}
            self._batches = {k: b for k, b in self._batches.items() if k in alive}
        self._batches[id(group)] = Batch(group, self.state, work.present, params, rule, names,
                                         prepared)
        native.load()  # the compiled checks, where they have been built

    @torch.compiler.disable  # a decision on the host: under torch.compile, one clean graph break
    def _all_finite(self, grads: list[Tensor]) -> bool:
        # Sharded (DTensor) gradients: every rank of the mesh must agree to skip; so must the
        # ranks of skip_group.
        return all_finite(grads, self.skip_group)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimization step; ``closure`` re-evaluates the model and returns the loss."""
        compiling = torch.compiler.is_compiling()
        if self.defaults["differentiable"] or compiling:
            return self._step_in_torch_ops(closure, step_as_tensor=compiling)
        return self._step(closure)

    def _step_in_torch_ops(self, closure: Callable[[], Any] | None, step_as_tensor: bool) -> Any:
        """The step as eager torch ops, one rule call per parameter, with step counts and tensor
        hyperparameters kept as tensors: what torch.compile traces into a graph for inductor to
        fuse (torch's own compiled-optimizer path), and what autograd differentiates through
        under ``differentiable=True``. No backend cache is read or written. (``step_as_tensor``
        is decided once, by ``step``: a frame torch.compile leaves to eager mode after a graph
        break must not read the counters as numbers, which would specialize on each value.)"""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        groups = []
        for group in self.param_groups:
            present = [p.grad is not None for p in group["params"]]
            params = [p for p in group["params"] if p.grad is not None]
            groups.append((group, params, self._dense(group, [p.grad for p in params]),
                           _rounding_keys(group, present)))
        if self.defaults["skip_nonfinite"] and not self._all_finite(
                [g for _, _, grads, _ in groups for g in grads]):
            return self._skip(loss)
        states = [self._states(group, params) for group, params, _, _ in groups]
        scalars = [{}] * len(groups)
        if self._has_step_scalars:
            scalars = self._host_scalars([GroupStep(group, params, grads, group_states)
                                          for (group, params, grads, _), group_states
                                          in zip(groups, states, strict=True)], step_as_tensor)
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            for (group, params, grads, keys), group_states, extra in zip(groups, states, scalars,
                                                                         strict=True):
                if not params:
                    continue
                with torch.no_grad():
                    reference.advance_steps([state["step"] for state in group_states])
                rule = self.rule_for(group)
                reference.apply(rule, params, grads, group_states, self.state_names(group),
                                {**self._hyperparameters(group, rule, tensors=True), **extra},
                                keys, step_as_tensor=step_as_tensor)
        return loss

    def _skip(self, loss: Any) -> Any:
        self.skipped_steps += 1
        warnings.warn(
            f"{type(self).__name__}: a gradient holds NaN or Inf; step skipped "
            f"({self.skipped_steps} so far), parameters and state unchanged.",
            UserWarning, stacklevel=3,
        )
        return loss

    @torch.no_grad()
    def _step(self, closure: Callable[[], Any] | None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [self._group_work(group) for group in self.param_groups]
        if self.defaults["skip_nonfinite"]:
            if not self._all_finite([g for w in work for g in w.gradients()]):
                return self._skip(loss)
        scalars, groups_before = self._scalars(work)
        # Where a group needs the general path, its backends are chosen before any group is
        # updated: an impl that cannot run a tensor refuses the step before anything changed.
        try:
            routes = {id(w.group): self._route(w, extra)
                      for w, extra in zip(work, scalars, strict=True) if w.params and not w.ready}
        except ValueError:
            _restore(work, groups_before)
            raise
        for w, extra in zip(work, scalars, strict=True):
            if not w.params:
                continue
            if w.ready and w.batch.launch(self._with_scalars(w.group, w.batch.rule, extra)):
                continue  # the usual step: the same tensors as at the last one
            route = routes.get(id(w.group)) or self._route(w, extra)
            fused = self._step_group(w, route)
            if not w.ready:  # no batch, or one whose tensors moved: remember this step's
                self._remember(w, route, fused)
        return loss

    def _states(self, group: dict[str, Any], params: list[Tensor]) -> list[dict[str, Any]]:
        """The parameters' state dicts, completed with what this group's configuration needs."""
        names = self.state_names(group)
        required = {"step", *names.everything}
        if self._stored_as.get(id(group), ()) != group["state_dtype"]:
            self._cast_state(group)
        states = []
        for p in params:
            if group["fused"]:
                _check_fused(p)
            state = self.state[p]
            if not state.keys() >= required:  # new, or short of a buffer or of the counter
                self._complete_state(p, state, group, names)
            states.append(state)
        return states

    # On the host, not traced: under torch.compile, one clean graph break. (Traced, dynamo would
    # bake the running values it reads from the param groups, schedule-free's weight_sum, into
    # the graph without a guard, and a reduction's .item(), Prodigy's, breaks the graph anyway.)
    @torch.compiler.disable
    @torch.no_grad()  # numbers: what they give is not differentiated
    def _host_scalars(self, groups: list[GroupStep], as_tensors: bool) -> list[dict[str, Any]]:
        """``step_scalars`` on the torch-ops path; under torch.compile (``as_tensors``) their
        numbers as 0-d tensors, graph inputs that change at every step without a recompile
        (a number would be specialized on, as a tensor lr is not)."""
        scalars = self.step_scalars(groups)
        if not as_tensors:
            return scalars
        return [{k: torch.tensor(v, dtype=torch.float64) if type(v) is float else v
                 for k, v in extra.items()} for extra in scalars]

    def _scalars(self, work: list[GroupWork]) -> tuple[list[dict[str, float]], list[dict] | None]:
        """This step's ``step_scalars`` for each group, and copies of the groups as they were
        before the hook ran (None where it is not overridden: nothing to compute or restore)."""
        if not self._has_step_scalars:
            return [{}] * len(work), None
        before = [dict(w.group) for w in work]
        steps = [GroupStep(w.group, w.params, w.gradients(),
                           w.batch.states if w.ready else self._states(w.group, w.params))
                 for w in work]
        return self.step_scalars(steps), before

    def _cast_state(self, group: dict[str, Any]) -> None:
        """The group's state buffers in their storage dtype: at the first step of a group, after
        a load, and after its ``state_dtype`` was changed."""
        for p in group["params"]:
            state = self.state.get(p)
            for buffer in self.state_schema if state else ():
                if buffer.name in state:
                    dtype = buffer.storage_dtype(p, group)
                    if state[buffer.name].dtype != dtype:
                        state[buffer.name] = state[buffer.name].to(dtype)
        self._stored_as[id(group)] = group["state_dtype"]

    def _route(self, work: GroupWork, extra: dict[str, float] | None = None) -> Route:
        """What the general path needs, found before any group is updated: the completed state
        dicts, the hyperparameters (with the group's ``step_scalars``, ``extra``), and the
        tensors by the backend that updates them. A ValueError where the group's ``impl``
        cannot run a tensor or trace the rule."""
        group, params = work.group, work.params
        rule, names, impl = self.rule_for(group), self.state_names(group), group["impl"]
        states = self._states(group, params)
        hyper = self._with_scalars(group, rule, extra or {})
        engines.check_impl(impl)  # a group's impl may have been set by hand since
        refusal = None
        if impl != "reference":
            try:  # a refusal is remembered for the configuration: one step count tells
                trace_for(rule, names, hyper, float(states[0]["step"]) + 1)
            except TraceError as e:
                refusal = e
        if refusal is None:
            parts = engines.partition(impl, params, work.gradients(), states, names)
        elif impl == "auto":  # a matrix rule (Muon, SOAP...): its torch ops, tensor by tensor
            engines.log.debug("impl='auto': %s; the reference backend runs it", refusal)
            parts = {reference: list(range(len(params)))}
        else:
            raise ValueError(f"impl={impl!r}: {refusal}. Use impl='reference' (or 'auto', which "
                             "falls back to it) for this rule.") from refusal
        return Route(rule, names, states, hyper, parts, _rounding_keys(group, work.present))

    def _step_group(self, work: GroupWork, route: Route) -> bool:
        """The general path: each tensor on the backend ``_route`` chose. True where all of
        them ran on the numba backend (the next steps can then run prepared)."""
        params, grads, impl = work.params, work.gradients(), work.group["impl"]
        rule, names, states, hyper, parts, keys = route
        steps = [state["step"] for state in states]
        reference.advance_steps(steps)  # one call: a per-tensor += costs more than a small update
        fused = list(parts) == [engines.numba_backend()]
        for backend, indices in parts.items():
            part = ([params[i] for i in indices], [grads[i] for i in indices],
                    [states[i] for i in indices])
            part_keys = None if keys is None else [keys[i] for i in indices]
            try:
                backend.apply(rule, *part, names, hyper, part_keys)
            except TraceError as e:  # raised before the backend wrote anything
                if impl != "auto":  # _route traced it: not expected; undo the step's count
                    torch._foreach_sub_(steps, 1)
                    raise
                engines.log.debug("impl='auto': %s; the reference backend runs it", e)
                reference.apply(rule, *part, names, hyper, part_keys)
                fused = False
        return fused


def _hooked_step(step: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
    """``step`` between the step hooks, as torch runs them."""
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

    self = args[0]
    for pre_hook in (*_global_optimizer_pre_hooks.values(),
                     *self._optimizer_step_pre_hooks.values()):
        result = pre_hook(self, args, kwargs)
        if result is not None:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise RuntimeError(f"{step} must return None or a tuple of (new_args, "
                                   f"new_kwargs), but got {result}.")
            args, kwargs = result
    out = step(*args, **kwargs)
    self._optimizer_step_code()
    for post_hook in (*self._optimizer_step_post_hooks.values(),
                      *_global_optimizer_post_hooks.values()):
        post_hook(self, args, kwargs)
    return out


class GroupStep(NamedTuple):
    """What ``Optimizer.step_scalars`` sees of one param group at one step."""

    group: dict[str, Any]
    params: list[Tensor]  # the group's parameters with a gradient
    grads: list[Tensor]  # their gradients (dense)
    states: list[dict[str, Any]]  # their state dicts, completed (buffers, step counter)


def _restore(work: list[GroupWork], before: list[dict] | None) -> None:
    """The groups as they were before ``step_scalars`` ran (a step refused after it)."""
    for w, saved in zip(work, before or (), strict=False):
        w.group.clear()
        w.group.update(saved)


class Route(NamedTuple):
    """A group's general-path step, decided before any group is updated (``_route``)."""

    rule: Callable[..., Any]
    names: state_schema.StateNames
    states: list[dict[str, Any]]
    hyper: dict[str, Any]
    parts: dict[Any, list[int]]  # backend -> indices of the tensors it updates
    keys: list[int] | None  # the tensors' stochastic-rounding streams (None: to nearest)


def _rounding_keys(group: dict[str, Any], present: list[bool]) -> list[int] | None:
    """The stream key of each parameter with a gradient (``present``), from the group's seed
    and the parameter's index in the group; None without stochastic rounding."""
    if not group["stochastic_rounding"]:
        return None
    streams = _streams.setdefault(_rounding_seed(group), [])
    if len(streams) < len(present):  # computed once per seed and index (Python hashing)
        streams += [precision.stream_key(group["rounding_seed"], i)
                    for i in range(len(streams), len(present))]
    return [key for key, has_grad in zip(streams, present, strict=False) if has_grad]


_streams: dict[int, list[int]] = {}  # seed -> the stream key of each parameter index


def _rounding_seed(group: dict[str, Any]) -> int:
    """The group's seed, drawn from torch's default generator the first time (only where
    stochastic rounding is on: otherwise an optimizer leaves the user's random stream
    untouched; a group switched on by hand later draws it at its first step)."""
    if group.get("rounding_seed") is None:
        group["rounding_seed"] = int(torch.randint(0, 2**32, (), dtype=torch.int64))
    return group["rounding_seed"]


def _saved_buffers(state_dict: dict[str, Any], names: set[str]) -> dict[tuple[Any, str], Tensor]:
    """The per-parameter state tensors of a state dict, by (parameter index, buffer name)."""
    return {(index, name): value for index, state in state_dict["state"].items()
            for name, value in state.items() if name in names and isinstance(value, Tensor)}


def _torch_add_param_group(optimizer: torch.optim.Optimizer, group: dict[str, Any]) -> None:
    """torch's add_param_group. torch wraps it in a dynamo-disable that imports torch._dynamo at
    its first call (about 0.5 s: most of a first step); while torch._dynamo is not imported,
    nothing is being compiled, so the function it wraps is called directly."""
    add = torch.optim.Optimizer.add_param_group
    if "torch._dynamo" not in sys.modules:
        add = getattr(add, "__wrapped__", add)
    add(optimizer, group)


def _as_numbers(name: str, value: Any, owner: str) -> Any:
    """A one-element tensor as a float, a tuple's tensors (tensor betas) item by item."""
    if isinstance(value, Tensor):
        return as_number(name, value, owner)
    if isinstance(value, tuple) and any(isinstance(x, Tensor) for x in value):
        return tuple(_as_numbers(f"{name}[{i}]", x, owner) for i, x in enumerate(value))
    return value


def _detached(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (tuple, list)):
        return type(value)(map(_detached, value))
    return value


def _check_fused(p: Tensor) -> None:
    """torch's check for fused=True: floating-point parameters on a device with fused kernels."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    devices = _get_fused_kernels_supported_devices()
    if not (p.device.type in devices and torch.is_floating_point(p)):
        raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of "
                           f"supported devices: {devices} but {p.dtype} and {p.device.type}")


@functools.cache
def constructor_defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls``'s constructor arguments, by name."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not p.empty}


_keywords: dict[Callable[..., Any], tuple[str, ...]] = {}


def _keyword_arguments(rule: Callable[..., Any]) -> tuple[str, ...]:
    # A plain dict, not functools.cache: torch.compile traces a dict lookup without a warning.
    names = _keywords.get(rule)
    if names is None:
        params = inspect.signature(rule).parameters.values()
        names = _keywords[rule] = tuple(p.name for p in params if p.kind is p.KEYWORD_ONLY)
    return names
