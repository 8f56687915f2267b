"""Gradient descent, momentum and Nesterov momentum (seeds 001 and 002).

Two equivalent ways to write momentum exist. They agree at a constant learning rate and differ
when a schedule changes it, because the learning rate enters the velocity in one of them only:

* torch form (torch.optim, Sutskever et al. 2013 as implemented by PyTorch):
  ``b <- mu*b + (1-dampening)*g ;  theta <- theta - lr*b``
* textbook form (the seeds, Keras, Goodfellow et al. "Deep Learning" Alg. 8.2):
  ``v <- mu*v - lr*g ;  theta <- theta + v``
"""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import regularized_gradient


def sgd(
    p: Tensor, g: Tensor, *, momentum_buffer: Tensor | None = None, step: float,
    lr: float, momentum: float, dampening: float, nesterov: bool,
    weight_decay: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SGD in torch's form.

    theta <- theta - lr * g                                     (plain gradient descent)
    b <- g at the first step, then b <- mu*b + (1-dampening)*g  (momentum, Polyak 1964)
    theta <- theta - lr * b                                     (heavy ball)
    theta <- theta - lr * (g + mu*b)                            (Nesterov 1983, look-ahead form)
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    if momentum == 0:
        return p - lr * g, {}
    # b starts at zero, so without dampening the first step needs no case of its own (and
    # torch.compile sees no branch on the step count).
    if dampening != 0 and step == 1:
        b = g
    else:
        b = momentum * momentum_buffer + (1 - dampening) * g
    direction = g + momentum * b if nesterov else b
    return p - lr * direction, {"momentum_buffer": b}


def sgd_textbook(
    p: Tensor, g: Tensor, *, velocity: Tensor | None = None, step: float,
    lr: float, momentum: float, dampening: float, nesterov: bool,
    weight_decay: float, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """SGD in the seeds' (and Keras') form: the learning rate lives inside the velocity.

    v <- mu*v - lr*(1-dampening)*g    (v_1 = -lr*g)
    theta <- theta + v                 (momentum)
    theta <- theta + mu*v - lr*g       (Nesterov: the step taken from the look-ahead point)
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    if momentum == 0:
        return p - lr * g, {}
    if dampening != 0 and step == 1:  # v starts at zero: see sgd
        v = -lr * g
    else:
        v = momentum * velocity - lr * (1 - dampening) * g
    delta = momentum * v - lr * g if nesterov else v
    return p + delta, {"velocity": v}
