"""RMSprop (Hinton, Coursera lecture 6e, 2012), with momentum and with Nesterov momentum.

RMSprop with Nesterov momentum is Algorithm 8.6 of Goodfellow, Bengio and Courville, "Deep
Learning" (2016), shown in seed 000. The textbook evaluates the gradient at the look-ahead point
theta~ = theta + mu*v. Here the parameters *are* that look-ahead point (phi = theta + mu*v), the
reparametrization torch uses for SGD with Nesterov; in it the update reads

    b <- mu*b + g/rms ;  phi <- phi - lr*(g/rms + mu*b)      with g = grad L(phi),

which visits exactly the look-ahead points of the textbook algorithm (v = -lr*b) at a constant
learning rate, and needs no second gradient evaluation or extra buffer.
"""

from __future__ import annotations

from torch import Tensor

from descend.rules.common import regularized_gradient


def rmsprop(
    p: Tensor, g: Tensor, *, square_avg: Tensor, momentum_buffer: Tensor | None = None,
    grad_avg: Tensor | None = None, step: float,
    lr: float, alpha: float, eps: float, weight_decay: float, momentum: float,
    centered: bool, nesterov: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """RMSprop: divide the gradient by a running RMS of recent gradients.

    E[g^2] <- alpha*E[g^2] + (1-alpha)*g^2
    E[g]   <- alpha*E[g] + (1-alpha)*g                  (centered only)
    rms    <- sqrt(E[g^2] - E[g]^2) + eps               (sqrt(E[g^2]) + eps if not centered)
    theta  <- theta - lr * g/rms                        (no momentum)
    b <- mu*b + g/rms ; theta <- theta - lr*b           (momentum)
    b <- mu*b + g/rms ; theta <- theta - lr*(g/rms + mu*b)   (Nesterov momentum)
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    scaled, new_state = _scaled_gradient(g, square_avg, grad_avg, alpha, eps, centered)
    if momentum == 0:
        return p - lr * scaled, new_state
    b = momentum * momentum_buffer + scaled
    new_state["momentum_buffer"] = b
    direction = scaled + momentum * b if nesterov else b
    return p - lr * direction, new_state


def rmsprop_textbook(
    p: Tensor, g: Tensor, *, square_avg: Tensor, velocity: Tensor | None = None,
    grad_avg: Tensor | None = None, step: float,
    lr: float, alpha: float, eps: float, weight_decay: float, momentum: float,
    centered: bool, nesterov: bool, maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """RMSprop with the learning rate inside the velocity, as Goodfellow et al. write it
    (Algorithm 8.6 with Nesterov momentum; the same without the look-ahead otherwise).

    v <- mu*v - lr * g/rms ;  theta <- theta + v                (momentum)
    v <- mu*v - lr * g/rms ;  phi <- phi + mu*v - lr * g/rms    (Nesterov: phi = theta + mu*v,
                                                                 the look-ahead point, g at phi)
    At a constant learning rate this is the torch form (v = -lr*b); under a schedule a new
    learning rate only scales new steps, as in Algorithm 8.6.
    """
    g = regularized_gradient(g, p, weight_decay, maximize)
    scaled, new_state = _scaled_gradient(g, square_avg, grad_avg, alpha, eps, centered)
    if momentum == 0:
        return p - lr * scaled, new_state
    v = momentum * velocity - lr * scaled
    new_state["velocity"] = v
    delta = momentum * v - lr * scaled if nesterov else v
    return p + delta, new_state


def _scaled_gradient(g: Tensor, square_avg: Tensor, grad_avg: Tensor | None, alpha: float,
                     eps: float, centered: bool) -> tuple[Tensor, dict[str, Tensor]]:
    """g / rms, and the new running averages."""
    mean_square = alpha * square_avg + (1 - alpha) * g * g
    new_state = {"square_avg": mean_square}
    variance = mean_square
    if centered:
        mean = alpha * grad_avg + (1 - alpha) * g
        new_state["grad_avg"] = mean
        variance = mean_square - mean * mean
    return g / (variance.sqrt() + eps), new_state
