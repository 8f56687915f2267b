"""Schedule-free SGD and AdamW (Defazio, Yang, Mehta, Mishchenko, Khaled and Cutkosky 2024,
"The Road Less Scheduled"), as schedulefree 1.4.1 computes them.

Three sequences: z (the base optimizer's iterate, kept in the state), x (the average of the z's,
what is evaluated) and y = (1 - beta) z + beta x (where gradients are taken, what the parameter
holds in train mode). The parameter is y; x is never stored: y moves as x would and then y is
interpolated again. The average's weight c = w_t / sum w (``ckp1``) and the warmed-up lr are
group-level scalars (``ScheduleFree.step_scalars``).
"""

from __future__ import annotations

from torch import Tensor


def averaged_step(y: Tensor, g: Tensor, z: Tensor, *, momentum: float, weight_decay: float,
                  lr: float, ckp1: float) -> tuple[Tensor, dict[str, Tensor]]:
    """The schedule-free step of y and z for a preconditioned gradient g.

    g <- g + lambda * y                      (weight decay at y)
    y <- (1 - c) y + c z + lr (beta (1 - c) - 1) g
    z <- z - lr g
    """
    if weight_decay != 0:
        g = g + weight_decay * y
    y = y + ckp1 * (z - y)  # torch.lerp(y, z, c)
    return y + lr * (momentum * (1 - ckp1) - 1) * g, {"z": z - lr * g}


def sgd_schedule_free(
    p: Tensor, g: Tensor, *, z: Tensor, step: float, momentum: float, weight_decay: float,
    scheduled_lr: float, ckp1: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Schedule-free SGD: ``averaged_step`` of the raw gradient, with lr the warmed-up lr."""
    return averaged_step(p, g, z, momentum=momentum, weight_decay=weight_decay,
                         lr=scheduled_lr, ckp1=ckp1)


def adamw_schedule_free(
    p: Tensor, g: Tensor, *, z: Tensor, exp_avg_sq: Tensor, step: float,
    betas: tuple[float, float], eps: float, weight_decay: float, scheduled_lr: float,
    ckp1: float, bias_correction2: float,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Schedule-free AdamW: ``averaged_step`` (momentum beta1) of the gradient divided by
    Adam's denominator.

    v <- beta2 v + (1 - beta2) g^2 ;  g <- g / (sqrt(v / (1 - beta2^k)) + eps)
    (k: the group's step count; no first moment: the averaging is the momentum)
    """
    beta1, beta2 = betas
    v = beta2 * exp_avg_sq + (1 - beta2) * g * g
    g = g / ((v / bias_correction2).sqrt() + eps)
    y, buffers = averaged_step(p, g, z, momentum=beta1, weight_decay=weight_decay,
                               lr=scheduled_lr, ckp1=ckp1)
    return y, {**buffers, "exp_avg_sq": v}
