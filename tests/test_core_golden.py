"""Golden values: each algorithm computed by hand from the seed formulas, in plain Python floats.

The hand computations are written from the papers' algorithms (not from descend.rules) on a
scalar problem; descend must reproduce them to 1e-12. Where torch has no counterpart (textbook
momentum under a schedule, RMSprop with Nesterov momentum) this is the evidence of exactness.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

import descend

REL = 1e-12


def grad_f(x: float) -> float:
    """Gradient of the non-quadratic f(x) = log cosh(x) + 0.1 x^2 + 0.3 x."""
    return math.tanh(x) + 0.2 * x + 0.3


def descend_trajectory(make_opt: Callable, x0: float, steps: int,
                       lrs: list[float] | None = None, grad: Callable = grad_f) -> list[float]:
    """Runs a descend optimizer on a scalar parameter; ``lrs`` sets the lr before each step."""
    x = torch.tensor(x0, dtype=torch.float64)
    opt = make_opt([x])
    out = []
    for t in range(steps):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[t]
        x.grad = torch.tensor(grad(x.item()), dtype=torch.float64)
        opt.step()
        out.append(x.item())
    return out


def assert_trajectory(actual: list[float], expected: list[float], rel: float = REL) -> None:
    assert actual == pytest.approx(expected, rel=rel, abs=1e-300)


# ---- SGD: the two forms of momentum -----------------------------------------------------------

SCHEDULE = [0.1 * 0.9**t for t in range(30)]  # the lr changes at every step


def textbook_momentum(x: float, lrs: list[float], mu: float, nesterov: bool = False,
                      dampening: float = 0.0) -> list[float]:
    """Seeds / Keras / Goodfellow Alg. 8.2: v <- mu v - lr g ; x <- x + v. Nesterov (Keras):
    x <- x + mu v - lr g."""
    v, out = 0.0, []
    for t, lr in enumerate(lrs):
        g = grad_f(x)
        v = -lr * g if t == 0 else mu * v - lr * (1 - dampening) * g
        x = x + (mu * v - lr * g if nesterov else v)
        out.append(x)
    return out


def torch_form_momentum(x: float, lrs: list[float], mu: float) -> list[float]:
    """Sutskever et al. as implemented by torch: b <- mu b + g ; x <- x - lr b."""
    b, out = 0.0, []
    for lr in lrs:
        b = mu * b + grad_f(x)
        x = x - lr * b
        out.append(x)
    return out


@pytest.mark.parametrize("nesterov", [False, True])
def test_textbook_momentum_under_a_schedule(nesterov):
    expected = textbook_momentum(2.0, SCHEDULE, 0.9, nesterov)
    actual = descend_trajectory(
        lambda p: descend.SGD(p, lr=0.1, momentum=0.9, nesterov=nesterov,
                              momentum_form="textbook"), 2.0, len(SCHEDULE), SCHEDULE)
    assert_trajectory(actual, expected)


def test_textbook_momentum_with_dampening():
    expected = textbook_momentum(2.0, SCHEDULE, 0.9, dampening=0.3)
    actual = descend_trajectory(
        lambda p: descend.SGD(p, lr=0.1, momentum=0.9, dampening=0.3, momentum_form="textbook"),
        2.0, len(SCHEDULE), SCHEDULE)
    assert_trajectory(actual, expected)


def test_torch_form_momentum_under_a_schedule_matches_hand_and_torch():
    expected = torch_form_momentum(2.0, SCHEDULE, 0.9)
    actual = descend_trajectory(lambda p: descend.SGD(p, lr=0.1, momentum=0.9),
                                2.0, len(SCHEDULE), SCHEDULE)
    reference = descend_trajectory(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                                   2.0, len(SCHEDULE), SCHEDULE)
    assert_trajectory(actual, expected)
    assert_trajectory(reference, expected)


def test_the_two_forms_differ_under_a_schedule_and_agree_at_constant_lr():
    scheduled = {form: descend_trajectory(
        lambda p, f=form: descend.SGD(p, lr=0.1, momentum=0.9, momentum_form=f),
        2.0, len(SCHEDULE), SCHEDULE) for form in ("torch", "textbook")}
    gap = abs(scheduled["torch"][-1] - scheduled["textbook"][-1])
    assert gap > 1e-2 * abs(scheduled["torch"][-1]), "a schedule must separate the two forms"

    constant = [0.1] * 30
    for nesterov in (False, True):
        runs = [descend_trajectory(
            lambda p, f=form, n=nesterov: descend.SGD(p, lr=0.1, momentum=0.9, nesterov=n,
                                                      momentum_form=f), 2.0, 30, constant)
            for form in ("torch", "textbook")]
        assert_trajectory(runs[1], runs[0])
    assert_trajectory(runs[0], textbook_momentum(2.0, constant, 0.9, nesterov=True))


def test_plain_gradient_descent_follows_the_lr_it_is_given():
    x, expected = 2.0, []
    for lr in SCHEDULE:
        x = x - lr * grad_f(x)
        expected.append(x)
    actual = descend_trajectory(lambda p: descend.SGD(p, lr=0.1), 2.0, len(SCHEDULE), SCHEDULE)
    assert_trajectory(actual, expected)


# ---- RMSprop with Nesterov momentum: Goodfellow et al., Deep Learning, Algorithm 8.6 ---------

def goodfellow_8_6(theta: float, lr: float, rho: float, alpha: float, steps: int,
                   gradient_at_look_ahead: bool = True,
                   lrs: list[float] | None = None) -> list[float]:
    """Algorithm 8.6 as printed: theta~ = theta + alpha v ; g = grad(theta~) ;
    r <- rho r + (1-rho) g^2 ; v <- alpha v - lr/sqrt(r) g ; theta <- theta + v (the learning
    rate of step t is ``lrs[t]`` where given). Returns the look-ahead points theta + alpha v,
    which descend's parameters are."""
    v = r = 0.0
    out = []
    for t in range(steps):
        lr = lrs[t] if lrs is not None else lr
        g = grad_f(theta + alpha * v if gradient_at_look_ahead else theta)
        r = rho * r + (1 - rho) * g * g
        v = alpha * v - lr / math.sqrt(r) * g
        theta = theta + v
        out.append(theta + alpha * v)
    return out


def test_rmsprop_nesterov_is_goodfellow_algorithm_8_6():
    expected = goodfellow_8_6(2.0, lr=0.05, rho=0.9, alpha=0.9, steps=40)
    # eps=0: Algorithm 8.6 has no epsilon in 1/sqrt(r)
    actual = descend_trajectory(
        lambda p: descend.RMSprop(p, lr=0.05, alpha=0.9, eps=0.0, momentum=0.9, nesterov=True),
        2.0, 40)
    assert_trajectory(actual, expected, rel=1e-11)


def test_rmsprop_nesterov_gradient_point_matters():
    """Evaluating the gradient at theta instead of the look-ahead point gives another path, so
    the test above can tell the two apart."""
    at_theta = goodfellow_8_6(2.0, lr=0.05, rho=0.9, alpha=0.9, steps=40,
                              gradient_at_look_ahead=False)
    actual = descend_trajectory(
        lambda p: descend.RMSprop(p, lr=0.05, alpha=0.9, eps=0.0, momentum=0.9, nesterov=True),
        2.0, 40)
    assert max(abs(a - b) for a, b in zip(actual, at_theta, strict=True)) > 1e-3


# A learning rate that changes at every step (a warm-up, then a decay with a wobble).
RMSPROP_SCHEDULE = [0.05 * min(1.0, (t + 1) / 10) * (0.97**t) * (1 + 0.3 * math.sin(t))
                    for t in range(40)]


def _rmsprop_nesterov(momentum_form: str):
    return lambda p: descend.RMSprop(p, lr=0.05, alpha=0.9, eps=0.0, momentum=0.9,
                                     nesterov=True, momentum_form=momentum_form)


def test_rmsprop_textbook_form_is_algorithm_8_6_under_a_schedule():
    """momentum_form="textbook" puts the learning rate inside the velocity, as Algorithm 8.6
    does: it follows the algorithm under a learning rate that changes at every step."""
    expected = goodfellow_8_6(2.0, lr=0.0, rho=0.9, alpha=0.9, steps=40, lrs=RMSPROP_SCHEDULE)
    actual = descend_trajectory(_rmsprop_nesterov("textbook"), 2.0, 40, RMSPROP_SCHEDULE)
    assert_trajectory(actual, expected, rel=1e-11)


def test_rmsprop_torch_form_leaves_algorithm_8_6_under_a_schedule_and_not_at_constant_lr():
    """torch's form rescales the velocity already built up when the learning rate changes:
    under the schedule it ends away from Algorithm 8.6; at a constant rate both forms are it."""
    expected = goodfellow_8_6(2.0, lr=0.0, rho=0.9, alpha=0.9, steps=40, lrs=RMSPROP_SCHEDULE)
    torch_form = descend_trajectory(_rmsprop_nesterov("torch"), 2.0, 40, RMSPROP_SCHEDULE)
    assert max(abs(a - b) for a, b in zip(torch_form, expected, strict=True)) > 1e-3
    constant = goodfellow_8_6(2.0, lr=0.05, rho=0.9, alpha=0.9, steps=40)
    for form in ("torch", "textbook"):
        assert_trajectory(descend_trajectory(_rmsprop_nesterov(form), 2.0, 40), constant,
                          rel=1e-11)


def test_rmsprop_textbook_momentum_without_nesterov_by_hand():
    """v <- mu v - lr_t g/sqrt(r) ; theta <- theta + v, the gradient at theta."""
    theta, v, r, expected = 2.0, 0.0, 0.0, []
    for lr in RMSPROP_SCHEDULE:
        g = grad_f(theta)
        r = 0.9 * r + 0.1 * g * g
        v = 0.9 * v - lr / math.sqrt(r) * g
        theta += v
        expected.append(theta)
    actual = descend_trajectory(
        lambda p: descend.RMSprop(p, lr=0.05, alpha=0.9, eps=0.0, momentum=0.9,
                                  momentum_form="textbook"), 2.0, 40, RMSPROP_SCHEDULE)
    assert_trajectory(actual, expected, rel=1e-11)


def test_rmsprop_hinton():
    """Hinton's lecture 6e: E[g^2] <- a E[g^2] + (1-a) g^2 ; x <- x - lr g/(sqrt(E[g^2]) + eps)."""
    x, ms, expected = 2.0, 0.0, []
    for _ in range(30):
        g = grad_f(x)
        ms = 0.9 * ms + 0.1 * g * g
        x = x - 0.05 * g / (math.sqrt(ms) + 1e-8)
        expected.append(x)
    actual = descend_trajectory(lambda p: descend.RMSprop(p, lr=0.05, alpha=0.9), 2.0, 30)
    assert_trajectory(actual, expected)


# ---- AdaDelta (Zeiler 2012, Algorithm 1) -------------------------------------------------------

def test_adadelta_zeiler_algorithm_1():
    rho, eps = 0.95, 1e-6
    x, eg2, edx2, expected = 2.0, 0.0, 0.0, []
    for _ in range(30):
        g = grad_f(x)
        eg2 = rho * eg2 + (1 - rho) * g * g
        dx = -math.sqrt(edx2 + eps) / math.sqrt(eg2 + eps) * g
        edx2 = rho * edx2 + (1 - rho) * dx * dx
        x = x + dx
        expected.append(x)
    actual = descend_trajectory(lambda p: descend.Adadelta(p, rho=rho, eps=eps), 2.0, 30)
    assert_trajectory(actual, expected)


# ---- AdaGrad (Duchi et al. 2011) with torch's lr_decay ------------------------------------------

def test_adagrad_with_lr_decay_and_initial_accumulator():
    lr, decay, g0, eps = 0.5, 0.1, 0.2, 1e-10
    x, acc, expected = 2.0, g0, []
    for t in range(1, 31):
        g = grad_f(x)
        acc = acc + g * g
        x = x - lr / (1 + (t - 1) * decay) * g / (math.sqrt(acc) + eps)
        expected.append(x)
    actual = descend_trajectory(
        lambda p: descend.Adagrad(p, lr=lr, lr_decay=decay, initial_accumulator_value=g0),
        2.0, 30)
    assert_trajectory(actual, expected)


# ---- Adam (Kingma and Ba 2015, Algorithm 1) -----------------------------------------------------

def adam_by_hand(x: float, steps: int, lr: float, b1: float, b2: float, eps: float,
                 decoupled_decay: float = 0.0) -> list[float]:
    m = v = 0.0
    out = []
    for t in range(1, steps + 1):
        g = grad_f(x)
        x = x * (1 - lr * decoupled_decay)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        x = x - lr * m_hat / (math.sqrt(v_hat) + eps)
        out.append(x)
    return out


def test_adam_bias_correction_at_steps_1_2_3():
    expected = adam_by_hand(2.0, 3, lr=0.1, b1=0.9, b2=0.999, eps=1e-8)
    actual = descend_trajectory(lambda p: descend.Adam(p, lr=0.1), 2.0, 3)
    assert_trajectory(actual, expected)
    # without bias correction the first step would be lr*0.1 g/(sqrt(0.001) |g|) ~ 3.16 lr;
    # with it, the first step is lr * g/(|g| + eps): almost exactly lr
    assert 2.0 - actual[0] == pytest.approx(0.1 * (1 - 1e-8 / abs(grad_f(2.0))), rel=1e-12)


def test_adam_constant_gradient_steps_by_exactly_lr():
    """With a constant gradient g the bias-corrected moments are exactly g and g^2 at every
    step, so x_t = x_0 - t lr g/(|g| + eps)."""
    actual = descend_trajectory(lambda p: descend.Adam(p, lr=0.01, eps=1e-8), 1.0, 3,
                                grad=lambda x: 0.5)
    step = 0.01 * 0.5 / (0.5 + 1e-8)
    assert_trajectory(actual, [1.0 - step, 1.0 - 2 * step, 1.0 - 3 * step], rel=1e-14)


def test_adamw_decoupled_weight_decay():
    expected = adam_by_hand(2.0, 20, lr=0.1, b1=0.8, b2=0.99, eps=1e-8, decoupled_decay=0.3)
    actual = descend_trajectory(
        lambda p: descend.AdamW(p, lr=0.1, betas=(0.8, 0.99), weight_decay=0.3), 2.0, 20)
    assert_trajectory(actual, expected)
