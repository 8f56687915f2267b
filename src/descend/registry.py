"""One place that knows every optimizer by name: class, defaults, update rule and intuition.

Each class declares its own listings (``descend.optimizer.Listing``); this module gathers them.

The lab's cheat sheet, reports and command-line parser read from here.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import Tensor

from descend import optimizers
from descend.optimizer import IMPLEMENTATION_KEYWORDS, Optimizer, constructor_defaults


@dataclass(frozen=True)
class Entry:
    """A registered optimizer: ``cls(params, **overrides, **user_hyperparameters)``."""

    name: str
    cls: type[Optimizer]
    intuition: str
    latex: str
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def defaults(self) -> dict[str, Any]:
        """The hyperparameters this entry runs with when the user gives none."""
        values = constructor_defaults(self.cls)
        return {**{n: v for n, v in values.items() if n not in _PLUMBING}, **self.overrides}


# Keywords every optimizer takes that are not hyperparameters of its algorithm.
_PLUMBING = {*IMPLEMENTATION_KEYWORDS, "skip_nonfinite", "impl", "state_dtype",
             "stochastic_rounding"}

_ENTRIES = [
    Entry(cls=cls, **asdict(listing))
    for cls in map(vars(optimizers).get, optimizers.__all__)
    for listing in vars(cls).get("listings", ())  # declared by the class itself, not inherited
]

REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}


def available() -> list[str]:
    """Names of the registered optimizers, in the order the seeds introduce them."""
    return list(REGISTRY)


def entry(name: str) -> Entry:
    """The registry entry for ``name``, or a ValueError that suggests the closest names."""
    try:
        return REGISTRY[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), REGISTRY, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown optimizer {name!r}; available: {', '.join(REGISTRY)}.{hint}"
        ) from None


def create(name: str, params: Iterable[Tensor] | Iterable[dict[str, Any]],
           **hyperparameters: Any) -> Optimizer:
    """Builds the optimizer registered as ``name``; ``hyperparameters`` override its defaults."""
    e = entry(name)
    return e.cls(params, **{**e.overrides, **hyperparameters})
