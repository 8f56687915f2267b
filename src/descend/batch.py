"""One param group's step, remembered: the one cache of the step path.

On a small model (hundreds of tensors of a few thousand elements) the per-tensor Python work of a
step (which parameters have a gradient, their state, step counters, addresses) costs about as much
as the update itself. Between two steps of a training loop almost nothing changes: the same
parameters have gradients, with the same state dicts and buffers. After a step that ran on the
numba backend, a ``Batch`` remembers them (strong references: the optimizer holds them anyway)
together with the backend's prepared kernel run (``numba.Prepared``: the address table, the
selected trace and the step count it left), one per param group. At the next step one check
decides whether the same run applies: the same configuration, then by identity the same
parameters, state dicts and buffers, then the parameters' addresses and the gradients' layout
(in Python, or in one pass of the compiled check, ``descend.engines.native``). Anything else (a
new buffer, a state replaced by hand or by ``load_state_dict``, ``momentum`` turned on, a
parameter frozen) fails the check, the step takes the general path, and the batch is rebuilt.

One change is not looked for at every step: the memory of a state tensor moved under the same
tensor object (``share_memory_()``, ``.data = ...``, ``set_()`` on a state buffer). Reading every
buffer's address would cost two cache misses per buffer, 8-15% of a small model's Adam step;
``Optimizer.state_moved()`` (which ``Adagrad.share_memory`` calls) announces it instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import compress, repeat
from operator import attrgetter, is_, is_not, itemgetter
from typing import Any, NamedTuple

from torch import Tensor

from descend.state import scalars_of

grad_of = attrgetter("grad")


class Batch:
    """What one step of a group touched: parameters with a gradient, state dicts, buffers, and
    the backend's prepared run of them."""

    def __init__(self, group: dict[str, Any], state: dict, present: list[bool],
                 params: Sequence[Tensor], rule: Callable, names: tuple[str, ...],
                 prepared: Any) -> None:
        self.group, self.state, self.present = group, state, present
        self.all_params = list(group["params"])
        self.params = list(params)
        self.states = [state[p] for p in params]
        # The whole state by identity (keys and values, in order): a C-level pass that needs no
        # tensor hashing, unlike ``state[p]`` per parameter (torch's Tensor.__hash__ is Python).
        self.state_keys, self.state_values = list(state), list(state.values())
        self.rule, self.names, self.prepared = rule, names, prepared
        self.settings = _settings(group)
        self.columns = ("step", *names, *scalars_of(names))
        self.getters = [itemgetter(n) for n in self.columns]
        self.buffer_columns = [list(map(get, self.states)) for get in self.getters]
        # Every parameter had a gradient: the checks can run compiled (descend.engines.native).
        self.dense = all(present)

    def configured_for(self, group: dict[str, Any], state: dict, rule: Callable,
                       names: tuple[str, ...]) -> bool:
        """The same group and optimizer state, with the configuration the batch was made for."""
        return (group is self.group and state is self.state and rule is self.rule
                and names == self.names and _settings(group) == self.settings)

    def holds(self, group: dict[str, Any], state: dict, present: list[bool]) -> bool:
        """Whether this step (whose parameters with a gradient are ``present``) updates the
        same tensors as the step the batch was made at; after ``configured_for``."""
        all_params = group["params"]
        if (present != self.present
                or len(all_params) != len(self.all_params)
                or not all(map(is_, all_params, self.all_params))
                or len(state) != len(self.state_keys)
                or not all(map(is_, state, self.state_keys))
                or not all(map(is_, state.values(), self.state_values))):
            return False
        try:
            return all(all(map(is_, map(get, self.states), buffers))
                       for get, buffers in zip(self.getters, self.buffer_columns, strict=True))
        except KeyError:  # a buffer deleted by hand
            return False

    def compiled_check(self, check_group: Callable[..., bool]) -> bool:
        """``holds`` and ``ready`` of a dense batch in one call of the compiled ``check_group``,
        which also writes the gradients' addresses into the kernel's table."""
        table = self.prepared.table
        ok = check_group(self.group["params"], self.all_params, self.state, self.state_keys,
                         self.state_values, self.states, self.columns,
                         self.buffer_columns, table.param_address_pointer,
                         table.address_pointer, table.addresses.shape[1], table.dtype_witness)
        table.grad_addresses = []  # the gradient column was written here, not by refresh_grads
        return ok

    def ready(self, grads: list[Tensor]) -> bool:
        """Whether the prepared run can take this step (see ``launch``)."""
        return self.prepared.check(self.params, grads)

    def launch(self, hyper: dict[str, Any]) -> bool:
        """The step as one kernel call, after ``ready``; False (nothing done) where it needs
        the general path."""
        return self.prepared.launch(hyper)


def _settings(group: dict[str, Any]) -> tuple:
    """What the prepared run was built for besides the rule: the engine, and how state is
    stored and rounded."""
    return (group["impl"], group["state_dtype"], group["stochastic_rounding"],
            group.get("rounding_seed"))


def with_grad(all_params: list[Tensor]) -> tuple[list[bool], list[Tensor], list[Tensor]]:
    """Which parameters have a gradient, those parameters and their gradients."""
    grads = list(map(grad_of, all_params))
    present = list(map(is_not, grads, repeat(None)))
    if all(present):
        return present, list(all_params), grads
    return present, list(compress(all_params, present)), list(compress(grads, present))


class GroupWork(NamedTuple):
    """One group's part of a step: its parameters with a gradient, and its batch if it holds
    (``ready``: the batch's prepared run can take this step). ``grads`` is None where the
    compiled check ran instead of reading them: ``gradients()`` reads them then."""

    group: dict[str, Any]
    present: list[bool]
    params: list[Tensor]
    grads: list[Tensor] | None
    batch: Batch | None
    ready: bool

    def gradients(self) -> list[Tensor]:
        return self.grads if self.grads is not None else list(map(grad_of, self.params))
