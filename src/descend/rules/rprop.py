"""Rprop (Riedmiller and Braun 1993), as torch.optim.Rprop computes it (Rprop without
weight-backtracking, "Rprop-" in Igel and Husken's naming)."""

from __future__ import annotations

import torch
from torch import Tensor


def rprop(
    p: Tensor, g: Tensor, *, prev: Tensor, step_size: Tensor, step: float,
    lr: float, etas: tuple[float, float], step_sizes: tuple[float, float], maximize: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Rprop: only the sign of the gradient is used; each weight's own step grows while the
    sign holds and shrinks when it flips.

    s = sign(g * g_prev)
    Delta <- clamp(Delta * (eta+ if s > 0, eta- if s < 0, 1 if s = 0), Delta_min, Delta_max)
    g <- 0 where s < 0 (no step, and no sign to compare with at the next step)
    theta <- theta - sign(g) * Delta ;  g_prev <- g
    """
    eta_minus, eta_plus = etas
    if maximize:
        g = -g
    s = (g * prev).sign()
    # (s + 1 is 1 where s = 0; a number never changes the tensor's dtype in torch.where)
    factor = torch.where(s > 0, eta_plus, torch.where(s < 0, eta_minus, s + 1))
    new_step_size = (step_size * factor).clamp(step_sizes[0], step_sizes[1])
    g = torch.where(s < 0, 0.0, g)
    return p - g.sign() * new_step_size, {"prev": g, "step_size": new_step_size}
