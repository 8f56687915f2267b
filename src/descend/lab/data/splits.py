"""Deterministic, stratified train / validation / test splits of in-memory arrays."""

from __future__ import annotations

import numpy as np
import torch

from descend.lab.tasks.base import Split, Splits


def stratified_split(x: np.ndarray, y: np.ndarray, sizes: tuple[int, int, int],
                     seed: int = 0) -> Splits:
    """Splits ``(x, y)`` into train / val / test of the given sizes, each with the class mix of
    the whole set (every class is shuffled with ``seed`` and dealt out in proportion)."""
    n_train, n_val, n_test = sizes
    if n_train + n_val + n_test > len(x):
        raise ValueError(f"split sizes {sizes} need {sum(sizes)} examples; only {len(x)} exist")
    rng = np.random.default_rng(seed)
    # Interleave the classes: a stable sort by (rank within class / class size) puts every
    # prefix of the ordering close to the overall class mix.
    position = np.empty(len(y), dtype=np.float64)
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        members = members[rng.permutation(len(members))]
        position[members] = (np.arange(len(members)) + rng.random()) / len(members)
    order = np.argsort(position, kind="stable")
    bounds = np.cumsum([0, n_val, n_test, n_train])
    val, test, train = (order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return Splits(train=to_split(x[train], y[train]), val=to_split(x[val], y[val]),
                  test=to_split(x[test], y[test]))


def to_split(x: np.ndarray, y: np.ndarray) -> Split:
    """float32 inputs, int64 class labels (float32 for regression targets)."""
    y_tensor = torch.from_numpy(np.ascontiguousarray(y))
    y_tensor = y_tensor.long() if not y_tensor.is_floating_point() else y_tensor.float()
    return Split(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), y_tensor)
