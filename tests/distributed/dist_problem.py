"""The training problem every distributed test runs, shared by the ranks and the test process.

A small MLP with six parameter tensors (the last layer has 3 rows, so FSDP2 shards it unevenly
over 2 ranks), a batch per step that depends only on the step, and one optimizer configuration
per core optimizer form. One process on the whole batch is the reference; each of W ranks trains
on its 1/W slice, and the mean-reduced gradients make the two identical in exact arithmetic.

The comparison runs in float64: in float32 the all-reduced mean gradient (summed in another
order) differs from the one-process gradient by rounding, and RMSprop's first step amplifies that
10x (1/sqrt(1 - alpha)) and Nesterov more, past rtol 1e-5 without any bug. float64 keeps the
comparison about the algorithm. float32 runs compare the default engine with the reference
engine on the same ranks, where the gradients are identical.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import torch
from torch import Tensor, nn

import descend
from descend.distributed import load_checkpoint, save_checkpoint

IN, HIDDEN, OUT = 6, 16, 3
GLOBAL_BATCH = 8
STEPS = 5

# name -> (descend class, hyperparameters); every core optimizer and configuration.
CONFIGS: dict[str, tuple[str, dict]] = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd-momentum": ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=1e-2)),
    "sgd-nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    "sgd-textbook": ("SGD", dict(lr=0.1, momentum=0.9, momentum_form="textbook")),
    "adagrad": ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    "rmsprop": ("RMSprop", dict(lr=1e-2)),
    "rmsprop-momentum": ("RMSprop", dict(lr=1e-2, momentum=0.9, weight_decay=1e-2)),
    "rmsprop-centered": ("RMSprop", dict(lr=1e-2, momentum=0.5, centered=True)),
    "rmsprop-nesterov": ("RMSprop", dict(lr=1e-2, momentum=0.9, nesterov=True)),
    "adadelta": ("Adadelta", dict(lr=1.0, weight_decay=1e-2)),
    "adam": ("Adam", dict(lr=1e-2)),
    "adam-amsgrad": ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=1e-2)),
    "adamw": ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
}
IMPLS = ("reference", "auto")  # auto: whatever engine descend picks by default
RUNS = [(config, impl) for config in CONFIGS for impl in IMPLS]
# Checkpoints are about state, not engines: each configuration once, the engines alternating.
CHECKPOINT_RUNS = [(config, IMPLS[i % 2]) for i, config in enumerate(CONFIGS)]
CHECKPOINT_STEP = 3  # save after steps 0..2, then train steps 3..5
RESUMED_STEPS = range(CHECKPOINT_STEP, 2 * CHECKPOINT_STEP)


def build_model(dtype: torch.dtype = torch.float64) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(IN, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
        nn.Linear(HIDDEN, OUT),
    ).to(dtype)


def build_matrix_model(dtype: torch.dtype = torch.float64) -> nn.Module:
    """The MLP without biases: Muon takes weight matrices only."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(IN, HIDDEN, bias=False), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN, bias=False),
        nn.Tanh(), nn.Linear(HIDDEN, OUT, bias=False),
    ).to(dtype)


# Muon orthogonalizes each whole matrix: under FSDP2 every rank gathers it (issue 10).
MUON_RUNS = {"muon": dict(lr=0.02), "muon-adamw-rms": dict(
    lr=0.02, nesterov=False, adjust_lr_fn="match_rms_adamw")}


def muon_single_process(config: str, impl: str = "reference") -> dict[str, Tensor]:
    model = build_matrix_model()
    train(model, descend.Muon(model.parameters(), impl=impl, **MUON_RUNS[config]), range(STEPS))
    return full_parameters(model)


def make_optimizer(params, config: str, impl: str, *,
                   optimizer_class: Callable | None = None, **extra) -> torch.optim.Optimizer:
    """``descend.<Class>(params, **hyperparameters)``, or ``optimizer_class(params,
    optimizer_class=descend.<Class>, ...)`` for wrappers such as ZeroRedundancyOptimizer."""
    name, hyperparameters = CONFIGS[config]
    cls = getattr(descend, name)
    if optimizer_class is not None:
        return optimizer_class(params, optimizer_class=cls, impl=impl, **hyperparameters,
                               **extra)
    return cls(params, impl=impl, **hyperparameters, **extra)


def batch(step: int, rank: int = 0, world_size: int = 1,
          dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """This rank's contiguous slice of the global batch of ``step``."""
    generator = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(GLOBAL_BATCH, IN, generator=generator, dtype=dtype)
    y = torch.randn(GLOBAL_BATCH, OUT, generator=generator, dtype=dtype)
    size = GLOBAL_BATCH // world_size
    return x[rank * size:(rank + 1) * size], y[rank * size:(rank + 1) * size]


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: Iterable[int],
          rank: int = 0, world_size: int = 1) -> None:
    dtype = next(model.parameters()).dtype
    for step in steps:
        x, y = batch(step, rank, world_size, dtype)
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()


def full_parameters(model: nn.Module) -> dict[str, Tensor]:
    """Parameter name (without DDP's ``module.`` prefix) -> whole tensor, gathered from shards."""
    out = {}
    for name, p in model.named_parameters():
        whole = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name.removeprefix("module.")] = whole.detach().clone()
    return out


def single_process(config: str, steps: Iterable[int] = range(STEPS)) -> dict[str, Tensor]:
    """The reference: one process, the whole batch, the reference engine."""
    model = build_model()
    train(model, make_optimizer(model.parameters(), config, "reference"), steps)
    return full_parameters(model)


def mismatches(actual: dict[str, Tensor], expected: dict[str, Tensor], what: str,
               rtol: float = 1e-5, atol: float = 1e-9) -> list[str]:
    """One line per parameter of ``actual`` that differs from ``expected`` beyond rtol/atol."""
    lines = []
    for name, want in expected.items():
        got = actual[name]
        if not torch.allclose(got, want, rtol=rtol, atol=atol):
            error = ((got - want).abs() / (want.abs() + atol)).max().item()
            lines.append(f"{what}: {name} differs (max relative error {error:.2e})")
    return lines


def one_process_checkpoint_run(config: str, impl: str, out: Path,
                               resume_from: Path | None = None) -> dict[str, Tensor]:
    """Without a process group: train steps 0..2 and save to out/1proc/<config>/<impl> (or load
    ``resume_from`` instead), then train steps 3..5."""
    model = build_model()
    optimizer = make_optimizer(model.parameters(), config, impl)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DCP warns that it runs without a process group
        if resume_from is None:
            train(model, optimizer, range(CHECKPOINT_STEP))
            save_checkpoint(out / "1proc" / config / impl, model, optimizer)
        else:
            load_checkpoint(resume_from, model, optimizer)
    train(model, optimizer, RESUMED_STEPS)
    steps = {float(s["step"]) for s in optimizer.state.values()}
    assert steps == {2.0 * CHECKPOINT_STEP}, f"{config}/{impl}: state['step'] values {steps}"
    return full_parameters(model)
