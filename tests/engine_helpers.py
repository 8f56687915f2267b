"""Helpers shared by the backend tests: the same training on two backends, side by side."""

from __future__ import annotations

from collections.abc import Callable

import torch

from descend.optimizer import constructor_defaults

STEPS = 5


def make_params(dtype: torch.dtype = torch.float32, seed: int = 0) -> list[torch.Tensor]:
    """A weight, a bias, a 3-d tensor and one of 40,000 elements (cut between two kernel chunks,
    more than one thread's share of an elementwise op)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 5), (5,), (3, 4, 2), (40_000,)]
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_()
            for s in shapes]


def twins(params: list[torch.Tensor]) -> list[torch.Tensor]:
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in params]


def set_grads(step: int, *param_lists: list[torch.Tensor], skip=lambda i, step: False) -> None:
    """The same pseudo-random gradient for the i-th parameter of each list (None if skipped)."""
    for i, p in enumerate(param_lists[0]):
        g = None
        if not skip(i, step):
            gen = torch.Generator().manual_seed(1000 * step + i)
            real = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            g = (torch.complex(real, real.flip(-1)) if p.is_complex() else real).to(
                p.device, p.dtype)
        for params in param_lists:
            params[i].grad = None if g is None else g.clone()


def groups(config, params: list[torch.Tensor]) -> list[dict]:
    """Two groups with different hyperparameters, as in the core table (where both groups
    must share one lr, Prodigy, the second takes the constructor's: the same value and type)."""
    lr = float(config.effective_kwargs().get("lr", constructor_defaults(config.cls)["lr"]))
    factor = config.info.second_lr_factor
    second = {} if factor == 1.0 else {"lr": lr * factor}
    return [{"params": params[:2]},
            {"params": params[2:], **second, **config.info.second_group}]


def builder(config, grouped: bool = False) -> Callable:
    """``build(params, impl)`` for ``run_pair``: the config's optimizer, in two param groups
    with different hyperparameters if ``grouped``."""
    return lambda ps, impl: config.build(groups(config, ps) if grouped else ps, impl=impl)


def run_pair(impl: str, build: Callable, params: list[torch.Tensor], steps: int = STEPS,
             skip=lambda i, s: False, each_step=None):
    """The same training with ``impl`` and with the reference backend: the two optimizers."""
    p_tested, p_ref = params, twins(params)
    tested, ref = build(p_tested, impl), build(p_ref, "reference")
    for step in range(steps):
        set_grads(step, p_tested, p_ref, skip=skip)
        for opt in (tested, ref):
            if each_step:
                each_step(opt, step)
            opt.step()
    return tested, ref
