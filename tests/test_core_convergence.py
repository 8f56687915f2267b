"""Known convergence rates on a quadratic (issue 2, section 4).

f(x) = 0.5 x^T A x with A = diag(l1, ln) = diag(1, 100), condition number k = 100, x0 = (1, 1).

* Gradient descent with step 2/(l1+ln) multiplies each coordinate by
  1 - 2 l_i/(l1+ln) = +-(k-1)/(k+1) every step, so ||x_t|| = ((k-1)/(k+1))^t ||x_0|| exactly.
* Heavy-ball momentum with the optimal a = (2/(sqrt(l1)+sqrt(ln)))^2 and
  mu = ((sqrt(k)-1)/(sqrt(k)+1))^2 contracts by (sqrt(k)-1)/(sqrt(k)+1) (Goh, "Why Momentum Really
  Works", Distill 2017). At these values both eigenvalues of the iteration are double roots of
  modulus sqrt(mu), so the error is exactly (c0 + c1 t) r^t: the empirical rate is fitted as
  log||x_t|| = c + t log r + log t over many steps. In torch's form lr = a and momentum = mu.
"""

from __future__ import annotations

import math

import pytest
import torch

import descend

L1, LN = 1.0, 100.0
KAPPA = LN / L1
GD_RATE = (KAPPA - 1) / (KAPPA + 1)
MOMENTUM_RATE = (math.sqrt(KAPPA) - 1) / (math.sqrt(KAPPA) + 1)
STEPS = 1200  # r^1200 ~ 1e-105: far from float64 underflow, deep in the asymptotic regime


def error_norms(optimizer_factory, steps: int = STEPS) -> torch.Tensor:
    """||x_t|| for t = 0..steps, running a descend optimizer on f(x) = 0.5 x^T A x."""
    curvature = torch.tensor([L1, LN], dtype=torch.float64)
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = optimizer_factory([x])
    norms = [x.detach().norm().item()]
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (curvature * x * x).sum()).backward()
        opt.step()
        norms.append(x.detach().norm().item())
    return torch.tensor(norms, dtype=torch.float64)


def fitted_rate(norms: torch.Tensor, polynomial_factor: bool, start: int = 100) -> float:
    """exp of the least-squares slope of log||x_t|| in t (with a log t term when the error has
    a t factor), over t >= start."""
    t = torch.arange(len(norms), dtype=torch.float64)[start:]
    columns = [torch.ones_like(t), t] + ([t.log()] if polynomial_factor else [])
    fit = torch.linalg.lstsq(torch.stack(columns, 1), norms[start:].log().unsqueeze(1))
    return math.exp(fit.solution[1].item())


def test_gradient_descent_contracts_by_k_minus_1_over_k_plus_1():
    norms = error_norms(lambda p: descend.SGD(p, lr=2 / (L1 + LN)))
    per_step = norms[1:] / norms[:-1]
    torch.testing.assert_close(per_step, torch.full_like(per_step, GD_RATE), rtol=1e-12, atol=0)
    assert (norms[-1] / norms[0]).item() ** (1 / STEPS) == pytest.approx(GD_RATE, rel=1e-12)
    assert fitted_rate(norms, polynomial_factor=False) == pytest.approx(GD_RATE, rel=1e-12)


@pytest.mark.parametrize("form", ["torch", "textbook"])
def test_heavy_ball_contracts_by_sqrt_k_rate(form):
    a = (2 / (math.sqrt(L1) + math.sqrt(LN))) ** 2
    mu = ((math.sqrt(KAPPA) - 1) / (math.sqrt(KAPPA) + 1)) ** 2
    norms = error_norms(lambda p: descend.SGD(p, lr=a, momentum=mu, momentum_form=form))

    rate = fitted_rate(norms, polynomial_factor=True)
    assert rate == pytest.approx(MOMENTUM_RATE, rel=1e-5)
    # the error divided by r^t grows linearly: the t factor of a double root, nothing faster
    scaled = norms / MOMENTUM_RATE ** torch.arange(len(norms), dtype=torch.float64)
    increments = scaled.diff()[STEPS // 2:]
    torch.testing.assert_close(increments, increments[-1].expand_as(increments), rtol=1e-3,
                               atol=0)

    gd_rate = fitted_rate(error_norms(lambda p: descend.SGD(p, lr=2 / (L1 + LN))), False)
    assert rate < gd_rate - 0.1, "momentum must converge strictly faster than GD"
    assert (norms[-1] / norms[0]).item() ** (1 / STEPS) < gd_rate


def test_a_wrong_momentum_is_slower_than_the_optimal_one():
    """The rate measurement can tell a suboptimal momentum from the optimal one: with mu = 0.9
    both eigenvalue pairs are complex of modulus sqrt(0.9) ~ 0.949 > 9/11."""
    a = (2 / (math.sqrt(L1) + math.sqrt(LN))) ** 2
    norms = error_norms(lambda p: descend.SGD(p, lr=a, momentum=0.9))
    assert fitted_rate(norms, polynomial_factor=False) == pytest.approx(math.sqrt(0.9), rel=1e-3)
