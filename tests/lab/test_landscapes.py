"""Landscapes and trajectories against computations by hand and the literature's minima."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import hessian

from descend.lab.landscapes import (
    ESCAPE_LOSS,
    LANDSCAPES,
    SEED_OPTIMIZERS,
    default_lr,
    get,
    landscape_spec,
    run_trajectory,
)
from descend.lab.spec import parse_spec

# f at a point, computed by hand from each function's formula.
HAND_VALUES = {
    "bowl": ((-4.0, 3.0), 25.0),
    "elongated-bowl": ((-4.5, 1.0), 20.25 + 25.0),
    "saddle": ((1.0, 2.0), 1.0 - 4.0),
    "rosenbrock": ((-2.0, 2.0), 9.0 + 100.0 * 4.0),
    "beale": ((3.0, 4.0), (1.5 - 3 + 12) ** 2 + (2.25 - 3 + 48) ** 2 + (2.625 - 3 + 192) ** 2),
    "himmelblau": ((0.0, 0.0), 121.0 + 49.0),
    "rastrigin": ((-2.0, 3.5), 20 + 4 - 10 + 12.25 + 10),
    "six-hump-camel": ((2.0, 1.0), (4 - 8.4 + 16 / 3) * 4 + 2 + 0),
}
# Global minimum values from the literature (Surjanovic and Bingham, sfu.ca/~ssurjano).
GLOBAL_VALUES = {"bowl": 0.0, "elongated-bowl": 0.0, "rosenbrock": 0.0, "beale": 0.0,
                 "himmelblau": 0.0, "rastrigin": 0.0, "six-hump-camel": -1.0316285}


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_function_matches_its_formula_by_hand(name):
    point, expected = HAND_VALUES[name]
    assert LANDSCAPES[name].value(point) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("name", [n for n in LANDSCAPES if not LANDSCAPES[n].is_saddle])
def test_listed_minima_are_minima_and_globals_have_the_known_value(name):
    landscape = LANDSCAPES[name]
    for m in landscape.minima:
        p = torch.tensor(m, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(landscape.fn(p), p)
        assert g.abs().max() < 1e-3, (m, g)  # stationary (minima listed to 6 digits)
        assert torch.linalg.eigvalsh(hessian(landscape.fn, p.detach())).min() > 0, m
    assert landscape.global_minima
    for m in landscape.global_minima:
        assert landscape.value(m) == pytest.approx(GLOBAL_VALUES[name], abs=1e-6)


def test_minima_counts_the_functions_are_known_for():
    assert len(LANDSCAPES["himmelblau"].global_minima) == 4
    camel = LANDSCAPES["six-hump-camel"]
    assert len(camel.global_minima) == 2 and len(camel.minima) == 6
    assert LANDSCAPES["saddle"].minima == [] and LANDSCAPES["saddle"].is_saddle


def test_bowl_gradient_descent_contracts_by_one_minus_two_lr_per_step():
    # f = x^2 + y^2, gradient 2p: p_k = (1 - 2 lr)^k p_0 = 0.8^k (-4, 3), distance 5 * 0.8^k.
    run = run_trajectory(LANDSCAPES["bowl"], "sgd:lr=0.1", steps=40, tol=0.01)
    k = np.arange(41)[:, None]
    np.testing.assert_allclose(run.points, 0.8**k * np.array([-4.0, 3.0]), rtol=1e-12,
                               atol=1e-300)
    expected = math.ceil(math.log(5 / 0.01) / math.log(1 / 0.8))  # 5 * 0.8^k <= 0.01
    assert expected == 28
    assert run.reached_step == expected and run.reached_minimum == (0.0, 0.0)
    assert run.ended_in == (0.0, 0.0) and not run.diverged
    np.testing.assert_allclose(run.losses, (run.points**2).sum(axis=1), rtol=1e-12)


def test_saddle_gradient_descent_escapes_when_the_hand_computation_says():
    # f = x^2 - y^2 from (1, 1e-3): x_k = (1 - 2 lr)^k, y_k = 1e-3 (1 + 2 lr)^k.
    lr = 0.1
    by_hand = next(k for k in range(1000)
                   if (1 - 2 * lr) ** (2 * k) - (1e-3 * (1 + 2 * lr) ** k) ** 2 <= ESCAPE_LOSS)
    assert by_hand == 38  # |y| passes 1 when 1.2^k > 1000
    run = run_trajectory(LANDSCAPES["saddle"], f"sgd:lr={lr}", steps=60)
    assert run.escaped and run.escaped_step == by_hand and not run.diverged
    assert run.points[10, 1] == pytest.approx(1e-3 * 1.2**10, rel=1e-12)
    # The seeds' claims: momentum and the adaptive methods leave the flat saddle sooner.
    momentum = run_trajectory(LANDSCAPES["saddle"], f"momentum:lr={lr}", steps=60)
    adam = run_trajectory(LANDSCAPES["saddle"], "adam:lr=0.05", steps=60)
    assert momentum.escaped_step < by_hand and adam.escaped_step < by_hand


def test_exactly_on_the_ridge_gradient_descent_stays_at_the_saddle():
    run = run_trajectory(LANDSCAPES["saddle"], "sgd:lr=0.1", steps=100, start=(1.0, 0.0))
    assert run.escaped is False and not run.diverged
    assert np.abs(run.points[-1]).max() < 1e-8  # converged onto the saddle point itself


def test_a_saddle_run_that_explodes_uphill_is_a_divergence_not_an_escape():
    # lr 3: x_k = (1 - 6)^k grows, y barely moves, the loss goes up without bound.
    run = run_trajectory(LANDSCAPES["saddle"], "sgd:lr=3", steps=100)
    assert run.diverged and not run.escaped and run.steps_run < 100


@pytest.mark.parametrize("start, minimum", [
    ((2.5, 2.5), (3.0, 2.0)), ((-2.0, 2.0), (-2.805118, 3.131312)),
    ((-3.0, -3.0), (-3.779310, -3.283186)), ((3.0, -1.0), (3.584428, -1.848126)),
])
def test_himmelblau_ends_in_the_minimum_of_its_basin(start, minimum):
    run = run_trajectory(LANDSCAPES["himmelblau"], "sgd:lr=0.01", steps=200, start=start)
    assert run.ended_in == minimum
    assert math.dist(run.points[-1], minimum) < 1e-4


def test_adam_follows_the_rosenbrock_valley_to_one_one():
    run = run_trajectory(LANDSCAPES["rosenbrock"], "adam:lr=0.5", steps=1200)
    assert run.reached_step is not None and run.reached_step > 200  # the valley is slow
    assert run.ended_in == (1.0, 1.0) and run.final_loss < 1e-4


def test_gradient_descent_beyond_two_over_curvature_diverges():
    # On the bowl p_k = (1 - 2 lr)^k p_0 = (-2)^k (-4, 3): |x_k| = 4 * 2^k leaves the
    # divergence box (10 half-widths = 50) at k = 4, where the run stops.
    run = run_trajectory(LANDSCAPES["bowl"], "sgd:lr=1.5", steps=100)
    assert run.diverged and run.reached_step is None and run.ended_in is None
    assert run.steps_run == 4 and run.points[-1].tolist() == [-64.0, 48.0]


@pytest.mark.parametrize("name", list(LANDSCAPES))
def test_default_learning_rates_make_progress_without_diverging(name):
    landscape = LANDSCAPES[name]
    for optimizer in SEED_OPTIMIZERS:
        run = run_trajectory(landscape, optimizer, steps=80)
        assert not run.diverged, optimizer
        assert run.final_loss < run.losses[0], optimizer


def test_a_spec_keeps_its_own_lr_and_gets_the_landscape_lr_otherwise():
    rosenbrock = LANDSCAPES["rosenbrock"]
    assert landscape_spec(rosenbrock, "adam:lr=0.05").hyperparameters == {"lr": 0.05}
    filled = landscape_spec(rosenbrock, parse_spec("adam:betas=0.8/0.9"))
    assert filled.hyperparameters == {"betas": (0.8, 0.9), "lr": default_lr(rosenbrock, "adam")}
    assert default_lr(rosenbrock, "adamw") == default_lr(rosenbrock, "adam")


def test_unknown_landscape_suggests_the_close_name():
    with pytest.raises(ValueError, match="Did you mean rosenbrock"):
        get("rosenbrok")


def test_bad_steps_and_tolerance_are_refused():
    with pytest.raises(ValueError, match="tol must be > 0"):
        run_trajectory(LANDSCAPES["bowl"], "sgd", tol=0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        run_trajectory(LANDSCAPES["bowl"], "sgd", steps=-1)
