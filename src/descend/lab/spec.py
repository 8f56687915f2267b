"""Optimizer specs on the command line: ``NAME[:KEY=VALUE,KEY=VALUE]``.

``adam:lr=3e-4,betas=0.9/0.99`` is Adam with lr 3e-4 and betas (0.9, 0.99). Values are numbers,
``true``/``false``, tuples written with ``/``, or plain words (``momentum_form=textbook``).
``state_dtype`` takes a dtype's name (``adam:state_dtype=bfloat16``), and
``sgd:stochastic_rounding=true`` rounds low-precision stores stochastically.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch

from descend import precision
from descend.registry import Entry, entry

# The optimizers of the seed articles, in their order: compare's default set, the landscapes'
# rate table's columns, the figures' colour order.
SEED_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop-nesterov",
                   "adadelta", "adam")


@dataclass(frozen=True)
class OptimizerSpec:
    """A registry name plus the hyperparameters the user set; ``label`` is what reports show."""

    name: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    @property
    def entry(self) -> Entry:
        return entry(self.name)

    @property
    def label(self) -> str:
        if not self.hyperparameters:
            return self.name
        items = ",".join(f"{k}={_show(v)}" for k, v in self.hyperparameters.items())
        return f"{self.name}:{items}"

    def with_lr(self, lr: float) -> OptimizerSpec:
        return OptimizerSpec(self.name, {**self.hyperparameters, "lr": lr})

    def without_lr(self) -> OptimizerSpec:
        return OptimizerSpec(self.name, {k: v for k, v in self.hyperparameters.items()
                                         if k != "lr"})

    def build(self, params: Any) -> torch.optim.Optimizer:
        """The optimizer, ready to take training steps (``set_mode``)."""
        from descend.registry import create

        optimizer = create(self.name, params, **self.hyperparameters)
        set_mode(optimizer, train=True)
        return optimizer


def set_mode(optimizer: torch.optim.Optimizer, train: bool) -> None:
    """``optimizer.train()`` or ``optimizer.eval()`` where the optimizer has them (the
    schedule-free ones: in train mode the parameters hold the point gradients are taken at, in
    eval mode the average to evaluate); nothing for the others."""
    switch = getattr(optimizer, "train" if train else "eval", None)
    if callable(switch):
        switch()


# The values ``state_dtype`` accepts on the command line.
STATE_DTYPES = precision.STORAGE_BY_NAME


def _show(v: Any) -> str:
    if isinstance(v, torch.dtype):
        return precision.dtype_name(v)
    if isinstance(v, tuple):
        return "/".join(_show(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)


def _value(text: str) -> Any:
    if "/" in text:
        return tuple(_value(part) for part in text.split("/"))
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_spec(text: str) -> OptimizerSpec:
    """Parses ``NAME[:K=V,...]``; raises ValueError with the allowed names and keys."""
    name, _, rest = text.strip().partition(":")
    e = entry(name)  # unknown names fail here, with a did-you-mean
    allowed = [n for n, p in inspect.signature(e.cls.__init__).parameters.items()
               if n not in ("self", "params")]
    hyperparameters: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not value.strip():
            raise ValueError(f"malformed hyperparameter {item!r} in {text!r}: write KEY=VALUE, "
                             "e.g. adam:lr=3e-4,betas=0.9/0.99")
        if key not in allowed:
            raise ValueError(f"{e.name} has no hyperparameter {key!r}; allowed: "
                             f"{', '.join(allowed)}")
        hyperparameters[key] = (_state_dtype(value.strip(), text) if key == "state_dtype"
                                else _value(value.strip()))
    return OptimizerSpec(e.name, hyperparameters)


def _state_dtype(text: str, spec: str) -> torch.dtype:
    name = text.lower().removeprefix("torch.")
    if name not in STATE_DTYPES:
        raise ValueError(f"state_dtype={text} in {spec!r} is not a storage dtype; use one of "
                         f"{', '.join(STATE_DTYPES)}, e.g. adam:state_dtype=bfloat16")
    return STATE_DTYPES[name]
