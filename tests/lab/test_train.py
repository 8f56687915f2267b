"""The training loop on real tasks: it learns, it is deterministic, batch sizes mean what they
say, divergence is recorded, and full-batch SGD matches gradient descent computed by hand."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from descend.lab import tasks
from descend.lab.spec import parse_spec
from descend.lab.tasks.base import Split, Splits
from descend.lab.train import RunResult, train


@pytest.fixture(scope="module")
def mnist():
    return tasks.get("mnist")


def tiny(splits: Splits, n: int) -> Splits:
    return Splits(Split(splits.train.x[:n], splits.train.y[:n]), splits.val, splits.test)


def test_one_epoch_of_adam_learns_mnist(mnist):
    result = train(mnist, parse_spec("adam:lr=1e-3"), seed=0, epochs=1)
    assert not result.diverged
    assert result.final.test_accuracy > 0.80
    assert result.per_epoch[0].test_accuracy < 0.2  # the untrained model guesses
    assert result.steps == math.ceil(3500 / mnist.batch_size)
    assert 0 < result.step_seconds < result.seconds


def test_same_seed_same_run_other_seed_other_run(mnist):
    spec = parse_spec("momentum:lr=0.05")
    a, b, c = (train(mnist, spec, seed=s, epochs=1, splits=tiny(mnist.load(0), 600))
               for s in (3, 3, 4))
    assert a.curve == b.curve
    assert [p.test_loss for p in a.history] == [p.test_loss for p in b.history]
    assert a.curve != c.curve


@pytest.mark.parametrize(("batch_size", "steps_per_epoch"), [("full", 1), (1, 40), (16, 3)])
def test_batch_size_sets_steps_per_epoch(mnist, batch_size, steps_per_epoch):
    result = train(mnist, parse_spec("sgd:lr=0.01"), epochs=2, batch_size=batch_size,
                   splits=tiny(mnist.load(0), 40))
    assert result.steps == 2 * steps_per_epoch
    assert [p.epoch for p in result.per_epoch] == [0.0, 1.0, 2.0]
    assert result.batch_size == ("full" if batch_size == "full" else batch_size)


def test_huge_learning_rate_is_recorded_as_diverged_not_raised(mnist):
    result = train(mnist, parse_spec("sgd:lr=1e4"), epochs=1, splits=tiny(mnist.load(0), 256))
    assert result.diverged
    assert "diverged at step" in result.stop_reason
    assert result.steps < 256 // mnist.batch_size + 1
    assert all(math.isfinite(p.train_loss) for p in result.history)


def test_target_is_the_first_evaluation_at_or_above_it(mnist):
    result = train(mnist, parse_spec("adam:lr=1e-3"), epochs=1, target_accuracy=0.7)
    first = next(p for p in result.history if p.val_accuracy >= 0.7)
    assert result.target_val is not None
    assert (result.target_val.steps, result.target_val.seconds) == (first.step, first.seconds)
    never = train(mnist, parse_spec("sgd:lr=1e-6"), epochs=1, target_accuracy=0.99,
                  splits=tiny(mnist.load(0), 128))
    assert never.target_val is None and never.target_test is None


def test_time_budget_stops_the_run(mnist):
    result = train(mnist, parse_spec("sgd:lr=0.01"), epochs=50, batch_size=1, max_seconds=0.05)
    assert result.stop_reason.startswith("time budget")
    assert not result.diverged
    assert result.steps < 50 * 3500
    assert result.final.step == result.steps  # evaluated where it stopped


def test_full_batch_sgd_is_gradient_descent_by_hand():
    """On the noisy quadratic, the full-batch gradient of 0.5 mean (t - x)^T H (t - x) is
    H (t - mean x), so each epoch is exactly t <- t - lr H (t - mean x)."""
    task = tasks.get("quadratic")
    splits = task.load(0)
    lr, epochs = 0.01, 5
    result = train(task, parse_spec(f"sgd:lr={lr}"), seed=1, epochs=epochs, batch_size="full")
    theta = task.build_model(1).theta.detach().double()
    hessian, mean_x = task.build_model(1).hessian.double(), splits.train.x.double().mean(0)
    for _ in range(epochs):
        theta = theta - lr * hessian @ (theta - mean_x)
    expected = 0.5 * torch.einsum("ni,ij,nj->n", theta - splits.train.x.double(), hessian,
                                  theta - splits.train.x.double()).mean()
    assert result.final.train_loss == pytest.approx(expected.item(), rel=1e-4)


def test_result_round_trips_through_a_dict(mnist):
    result = train(mnist, parse_spec("adam"), epochs=1, splits=tiny(mnist.load(0), 64))
    assert RunResult.from_dict(result.to_dict()) == result


def test_bad_batch_size_is_a_clear_error(mnist):
    with pytest.raises(ValueError, match="'full'.*1.*positive integer"):
        train(mnist, parse_spec("sgd"), epochs=1, batch_size=0)


def test_nan_loss_is_recorded_as_diverged():
    """log(loss - 300) on the noisy quadratic turns NaN once training pushes the loss below
    300 (it starts near 349 and settles near 240)."""
    quadratic = tasks.get("quadratic")
    task = replace(quadratic, loss=lambda out, y: torch.log(out.mean() - 300))
    result = train(task, parse_spec("sgd:lr=0.01"), epochs=5)
    assert result.diverged and "is not finite" in result.stop_reason
    assert all(math.isfinite(loss) for _, loss in result.curve)


def test_on_epoch_sees_every_whole_epoch_and_the_curve_is_subsampled(mnist):
    seen = []
    result = train(mnist, parse_spec("sgd:lr=0.01"), epochs=2, batch_size=1,
                   splits=tiny(mnist.load(0), 300), on_epoch=seen.append)
    assert [p.epoch for p in seen] == [1.0, 2.0] and seen == result.per_epoch[1:]
    steps = [step for step, _ in result.curve]
    assert steps == sorted(steps) and steps[-1] == 600 and len(steps) <= 501


def test_schedule_free_steps_in_train_mode_and_is_evaluated_in_eval_mode(monkeypatch):
    """An optimizer with train() / eval() (schedule-free: the parameters hold y while training
    and the average x in eval mode) is put in train mode for its steps and in eval mode for
    every evaluation, and left in eval mode: the model then holds what was evaluated last."""
    import descend

    events = []
    for name in ("train", "eval", "step"):
        original = getattr(descend.SGDScheduleFree, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            events.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(descend.SGDScheduleFree, name, spy)
    task = tasks.get("quadratic")
    model = task.build_model(0)
    # (the warm-up's throwaway optimizer left out of the events)
    monkeypatch.setattr("descend.lab.train.warm_up", lambda *args: None)
    result = train(task, parse_spec("sgd-schedule-free:lr=0.05"), seed=0, epochs=3,
                   batch_size="full", evals_per_epoch=1, model=model)
    assert not result.diverged and result.steps == 3
    assert events == ["train", *["eval", "train", "step"] * 3, "eval", "train", "eval"]
    splits = task.load(0)
    with torch.no_grad():
        loss = task.loss(model(splits.train.x), splits.train.y).item()
    assert loss == pytest.approx(result.final.train_loss, rel=1e-6)
