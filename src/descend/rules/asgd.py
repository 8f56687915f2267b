"""ASGD (Polyak and Juditsky 1992): SGD with a decaying step, and the average of its iterates."""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import at_least, regularized_gradient


def asgd(
    p: Tensor, g: Tensor, *, ax: Tensor, eta: float, mu: float, step: float,
    lr: float, lambd: float, alpha: float, t0: float, weight_decay: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor | float]]:
    """Averaged SGD, as torch.optim.ASGD computes it.

    theta <- theta * (1 - lambda eta_t) - eta_t g
    ax <- ax + mu_t (theta - ax)                   (the average of the iterates since step t0)
    eta_{t+1} = lr / (1 + lambda lr t)^alpha;   mu_{t+1} = 1 / max(1, t - t0)
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    p = p * (1 - lambd * eta) - eta * g
    # torch copies theta while mu is 1: ax + 1 * (theta - ax) is theta up to one rounding
    ax = ax + (p - ax) * mu
    new_eta = lr / (1 + lambd * lr * step) ** alpha
    return p, {"ax": ax, "eta": new_eta, "mu": 1 / at_least(step - t0, 1.0)}
