"""Model builders and losses shared by the tasks (a leading underscore keeps this module out of
task discovery)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(*widths: int, seed: int) -> nn.Sequential:
    """A ReLU multilayer perceptron ``widths[0] -> ... -> widths[-1]`` with PyTorch's default
    initialization, drawn from ``seed`` (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(widths) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


def mean_loss(per_sample: Tensor, _targets: Tensor) -> Tensor:
    """The loss of models that output their own loss per example (no targets)."""
    return per_sample.mean()
