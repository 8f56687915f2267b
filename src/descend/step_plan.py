"""A param group's step, prepared once and checked at each step with a few C-level passes.

On a small model (hundreds of tensors of a few thousand elements) the per-tensor Python work of a
step (which parameters have a gradient, their state, step counters, addresses) costs about as much
as the update itself. Between two steps of a training loop almost nothing changes: the same
parameters have gradients, with the same state dicts and buffers. A ``GroupPlan`` remembers them
(strong references: the optimizer holds them anyway) and, at each step, checks by identity that
they are still the ones to update; the engine's prepared batch then checks addresses and
gradients and runs one kernel call. Anything else (a new buffer, a state replaced by hand or by
``load_state_dict``, ``momentum`` turned on, a parameter frozen) fails a check, and the step takes
the general path, after which the plan is rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import attrgetter, is_, is_not, itemgetter
from typing import Any, NamedTuple

from torch import Tensor

grad_of = attrgetter("grad")


class GroupPlan:
    """What one step of a group touched: parameters with a gradient, state dicts, buffers."""

    def __init__(self, group: dict[str, Any], state: dict, present: list[bool],
                 params: Sequence[Tensor], rule: Callable, names: tuple[str, ...],
                 engine: Any, prepared: Any) -> None:
        self.group, self.state, self.present = group, state, present
        self.all_params = list(group["params"])
        self.params = list(params)
        self.states = [state[p] for p in params]
        # The whole state by identity (keys and values, in order): a C-level pass that needs no
        # tensor hashing, unlike ``state[p]`` per parameter (torch's Tensor.__hash__ is Python).
        self.state_keys, self.state_values = list(state), list(state.values())
        self.rule, self.names, self.engine, self.prepared = rule, names, engine, prepared
        self.buffers = [(itemgetter(n), list(map(itemgetter(n), self.states)))
                        for n in ("step", *names)]

    def holds(self, group: dict[str, Any], state: dict, all_params: list[Tensor],
              present: list[bool], rule: Callable, names: tuple[str, ...], engine: Any) -> bool:
        """Whether this step updates the same tensors as the step the plan was made at."""
        if (group is not self.group or state is not self.state or present != self.present
                or rule is not self.rule or names != self.names or engine is not self.engine
                or len(all_params) != len(self.all_params)
                or not all(map(is_, all_params, self.all_params))
                or len(state) != len(self.state_keys)
                or not all(map(is_, state, self.state_keys))
                or not all(map(is_, state.values(), self.state_values))):
            return False
        try:
            return all(all(map(is_, map(get, self.states), buffers))
                       for get, buffers in self.buffers)
        except KeyError:  # a buffer deleted by hand
            return False

    def ready(self, grads: list[Tensor]) -> bool:
        """Whether the engine's prepared batch can run this step (see ``launch``)."""
        return self.prepared is not None and self.prepared.check(self.params, grads)

    def launch(self, hyper: dict[str, Any]) -> bool:
        """The step as one kernel call, after ``ready``; False (nothing done) where it needs
        the general path."""
        return self.prepared.launch(hyper)


def with_grad(all_params: list[Tensor]) -> tuple[list[bool], list[Tensor], list[Tensor]]:
    """Which parameters have a gradient, those parameters and their gradients."""
    grads = list(map(grad_of, all_params))
    present = list(map(is_not, grads, repeat(None)))
    if all(present):
        return present, list(all_params), grads
    return present, list(compress(all_params, present)), list(compress(grads, present))


class GroupWork(NamedTuple):
    """One group's part of a step: its parameters with a gradient, and its plan if it holds
    (``ready``: the plan's prepared batch can run this step)."""

    group: dict[str, Any]
    present: list[bool]
    params: list[Tensor]
    grads: list[Tensor]
    plan: GroupPlan | None
    ready: bool
