"""AdaDelta (Zeiler 2012; seed 000)."""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import regularized_gradient


def adadelta(
    p: Tensor, g: Tensor, *, square_avg: Tensor, acc_delta: Tensor, step: float,
    lr: float, rho: float, eps: float, weight_decay: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """AdaDelta: the units of the step come from a running RMS of past steps.

    E[g^2]  <- rho*E[g^2] + (1-rho)*g^2
    delta   <- RMS(delta)_{t-1} / RMS(g)_t * g     with RMS(x) = sqrt(E[x^2] + eps)
    E[dx^2] <- rho*E[dx^2] + (1-rho)*delta^2
    theta   <- theta - lr * delta                   (lr = 1 is Zeiler's algorithm)
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    mean_square_grad = rho * square_avg + (1 - rho) * g * g
    delta = (acc_delta + eps).sqrt() / (mean_square_grad + eps).sqrt() * g
    mean_square_delta = rho * acc_delta + (1 - rho) * delta * delta
    new_state = {"square_avg": mean_square_grad, "acc_delta": mean_square_delta}
    return p - lr * delta, new_state
