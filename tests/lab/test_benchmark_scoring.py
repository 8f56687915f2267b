"""The benchmark's scoring: a performance profile and AlgoPerf score computed by hand on a small
table, quantiles with infinite times, and the time to target of real runs read off their
curves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from descend.lab.benchmark import scoring, spaces
from descend.lab.benchmark.trial import run_trial
from descend.lab.benchmark.workloads import WORKLOADS, Workload, get

INF = math.inf
# Three workloads, three optimizers; z never reaches A's target, nobody reaches C's.
TABLE = {"A": {"x": 10.0, "y": 20.0, "z": INF},
         "B": {"x": 30.0, "y": 15.0, "z": 45.0},
         "C": {"x": INF, "y": INF, "z": INF}}


def test_ratios_to_the_fastest_by_hand():
    assert scoring.ratios(TABLE) == {"A": {"x": 1.0, "y": 2.0, "z": INF},
                                     "B": {"x": 2.0, "y": 1.0, "z": 3.0},
                                     "C": {"x": INF, "y": INF, "z": INF}}


def test_performance_profile_by_hand():
    rho = scoring.profile(TABLE, [1.0, 1.5, 2.0, 2.99, 3.0, 100.0])
    third = 1 / 3
    assert rho["x"] == pytest.approx([third, third, 2 * third, 2 * third, 2 * third, 2 * third])
    assert rho["y"] == pytest.approx([third, third, 2 * third, 2 * third, 2 * third, 2 * third])
    assert rho["z"] == pytest.approx([0, 0, 0, 0, third, third])


def test_benchmark_score_by_hand_and_as_the_area_under_the_profile():
    # x: A at r=1 gives (4-1)/3 = 1, B at r=2 gives 2/3, C nothing -> (1 + 2/3) / 3 = 5/9.
    # y: the same with A and B swapped; z: only B at r=3 -> (1/3) / 3 = 1/9.
    score = scoring.benchmark_score(TABLE)
    assert score == pytest.approx({"x": 5 / 9, "y": 5 / 9, "z": 1 / 9})
    taus = np.linspace(1, scoring.R_MAX, 30001)
    for name, rho in scoring.profile(TABLE, taus).items():
        area = np.trapezoid(rho, taus) / (scoring.R_MAX - 1)
        assert area == pytest.approx(score[name], abs=1e-3)


def test_fastest_everywhere_scores_one_and_never_scores_zero():
    table = {"A": {"x": 1.0, "y": 5.0}, "B": {"x": 2.0, "y": INF}}
    assert scoring.benchmark_score(table) == pytest.approx({"x": 1.0, "y": 0.0})


def test_median_and_quartiles_treat_never_as_infinitely_slow():
    assert scoring.median_iqr([3.0, 1.0, 2.0]) == (2.0, 1.5, 2.5)
    assert scoring.median_iqr([1.0, 2.0, INF]) == (2.0, 1.5, INF)
    assert scoring.median_iqr([1.0, INF, INF]) == (INF, INF, INF)
    for values in ([5.0, 1.0, 4.0, 2.0], [1.0, 2.0, 3.0, 4.0, 10.0]):
        assert scoring.median_iqr(values) == pytest.approx(
            tuple(np.percentile(values, [50, 25, 75])))


def _first_at_or_past(history, workload: Workload) -> dict | None:
    """The test's own reading of a curve: the first evaluation at or past the target."""
    for point in history:
        value = point[workload.metric]
        if value is not None and (value >= workload.target if workload.higher_is_better
                                  else value <= workload.target):
            return point
    return None


@pytest.mark.parametrize("name, optimizer, values", [
    ("quadratic", "momentum", {"lr": 0.01, "momentum": 0.9}),
    ("mnist1d", "adam", {"lr": 3e-3}),
])
def test_time_to_target_is_the_first_evaluation_at_or_past_the_target(name, optimizer, values):
    workload = get(name)
    outcome = run_trial(workload, optimizer, values, seed=0)
    hit = _first_at_or_past(outcome["history"], workload)
    assert hit is not None and outcome["reached"]
    assert outcome["steps_to_target"] == hit["step"]
    assert outcome["seconds_to_target"] == hit["seconds"]
    # Every evaluation before it is short of the target, and the run stopped at it.
    assert outcome["history"][-1] == hit
    assert all(p["step"] < hit["step"] for p in outcome["history"][:-1])
    assert "target reached" in outcome["stop_reason"]


def test_a_run_that_never_reaches_its_target_counts_as_infinitely_slow():
    workload = get("quadratic")
    outcome = run_trial(workload, "sgd", {"lr": 1e-6}, seed=0)
    assert outcome["error"] is None and not outcome["diverged"]
    assert _first_at_or_past(outcome["history"], workload) is None
    assert outcome["steps_to_target"] == INF and outcome["seconds_to_target"] == INF
    assert not outcome["reached"]
    assert outcome["steps"] == workload.epochs * 8  # the whole budget: 1000 / 128 -> 8 a epoch


def test_a_diverged_run_counts_as_infinitely_slow_not_as_a_crash():
    outcome = run_trial(get("quadratic"), "sgd", {"lr": 10.0}, seed=0)
    assert outcome["diverged"] and outcome["steps_to_target"] == INF


def test_every_workload_has_a_target_and_a_budget():
    assert len(WORKLOADS) >= 5
    for w in WORKLOADS.values():
        assert w.metric in ("val_accuracy", "val_loss") and w.epochs > 0
        assert w.max_seconds <= 60


def test_halton_points_are_quasi_random_reproducible_and_in_range():
    space = spaces.space("adam")
    points = spaces.halton_points(space, 8, seed="adam")
    assert points == spaces.halton_points(space, 8, seed="adam")
    lrs = sorted(p["lr"] for p in points)
    lr = next(p for p in space if p.name == "lr")
    assert all(lr.low <= v <= lr.high for v in lrs)
    # Quasi-random: 8 points cover the log range's 4 quarters twice each.
    quarters = [int(4 * math.log(v / lr.low) / math.log(lr.high / lr.low)) for v in lrs]
    assert sorted(quarters) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert spaces.hyperparameters("adam", {"lr": 1e-3, "beta1": 0.8}) == {
        "lr": 1e-3, "betas": (0.8, 0.999)}


def test_an_optimizer_without_a_declared_space_searches_lr_around_its_default():
    assert "rprop" not in spaces.SPACES
    (lr,) = spaces.space("rprop")
    assert (lr.name, lr.log) == ("lr", True)
    assert lr.low == pytest.approx(1e-3) and lr.high == pytest.approx(0.1)
