"""One place that knows every optimizer by name: class, defaults, update rule and intuition.

The lab's cheat sheet, reports and command-line parser read from here.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from descend.optimizer import IMPLEMENTATION_KEYWORDS, Optimizer
from descend.optimizers import SGD, Adadelta, Adagrad, Adam, AdamW, RMSprop


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
        sig = inspect.signature(self.cls.__init__)
        values = {n: p.default for n, p in sig.parameters.items()
                  if p.default is not p.empty and n not in _PLUMBING}
        return {**values, **self.overrides}


# Keywords every optimizer takes that are not hyperparameters of its algorithm.
_PLUMBING = {*IMPLEMENTATION_KEYWORDS, "skip_nonfinite", "impl"}

_ENTRIES = [
    Entry("sgd", SGD, "A blind climber steps straight down the local slope.",
          r"\theta \leftarrow \theta - \eta\, g_t",
          source="Robbins and Monro 1951"),
    Entry("momentum", SGD, "A heavy ball: velocity accumulates along consistent slopes and "
          "damps zig-zags across a narrow valley.",
          r"v \leftarrow \mu v + g_t;\quad \theta \leftarrow \theta - \eta\, v",
          {"momentum": 0.9}, "Polyak 1964"),
    Entry("nesterov", SGD, "Momentum that looks ahead: the gradient is taken where the "
          "velocity is about to carry you, so it brakes before overshooting.",
          r"v \leftarrow \mu v + g_t;\quad \theta \leftarrow \theta - \eta\,(g_t + \mu v)",
          {"momentum": 0.9, "nesterov": True}, "Nesterov 1983; Sutskever et al. 2013"),
    Entry("adagrad", Adagrad, "Each coordinate's step shrinks with the total of its squared "
          "gradients: rare features keep large steps.",
          r"G \leftarrow G + g_t^2;\quad \theta \leftarrow \theta - \frac{\eta}{\sqrt{G}+"
          r"\epsilon}\, g_t",
          source="Duchi, Hazan and Singer 2011"),
    Entry("rmsprop", RMSprop, "AdaGrad with a fading memory: divide by a running RMS of "
          "recent gradients so steps do not vanish.",
          r"E[g^2] \leftarrow \alpha E[g^2] + (1-\alpha) g_t^2;\quad \theta \leftarrow \theta"
          r" - \frac{\eta}{\sqrt{E[g^2]}+\epsilon}\, g_t",
          source="Hinton 2012, Coursera lecture 6e"),
    Entry("rmsprop-nesterov", RMSprop, "RMSprop's per-coordinate scaling plus Nesterov "
          "momentum's look-ahead.",
          r"E[g^2] \leftarrow \alpha E[g^2] + (1-\alpha) g_t^2;\ v \leftarrow \mu v + "
          r"\frac{g_t}{\sqrt{E[g^2]}+\epsilon};\ \theta \leftarrow \theta - \eta\left("
          r"\frac{g_t}{\sqrt{E[g^2]}+\epsilon} + \mu v\right)",
          {"lr": 1e-3, "momentum": 0.9, "nesterov": True},
          "Goodfellow, Bengio and Courville 2016, Algorithm 8.6"),
    Entry("adadelta", Adadelta, "Steps measured in the units of the parameters: the ratio of "
          "the RMS of past steps to the RMS of gradients, no learning rate needed.",
          r"\Delta\theta = -\frac{\mathrm{RMS}(\Delta\theta)_{t-1}}{\mathrm{RMS}(g)_t}\, g_t;"
          r"\quad \theta \leftarrow \theta + \eta\, \Delta\theta",
          source="Zeiler 2012"),
    Entry("adam", Adam, "Momentum on the gradient and RMSprop on its scale, both "
          "bias-corrected for their zero start.",
          r"m \leftarrow \beta_1 m + (1-\beta_1) g_t;\ v \leftarrow \beta_2 v + (1-\beta_2)"
          r" g_t^2;\ \theta \leftarrow \theta - \eta\,\frac{m/(1-\beta_1^t)}{\sqrt{v/(1-"
          r"\beta_2^t)}+\epsilon}",
          source="Kingma and Ba 2015"),
    Entry("adamw", AdamW, "Adam whose weight decay shrinks the weights directly instead of "
          "passing through the adaptive scaling.",
          r"\theta \leftarrow \theta(1-\eta\lambda) - \eta\,\frac{\hat m}{\sqrt{\hat v}+"
          r"\epsilon}",
          source="Loshchilov and Hutter 2019"),
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
