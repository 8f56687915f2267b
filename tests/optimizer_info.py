"""One declarative table of optimizer configurations, run through the generic core tests.

Like torch's ``OptimizerInfo`` (torch/testing/_internal/common_optimizers.py): each row names a
descend optimizer, its torch.optim counterpart (None where torch has no such algorithm) and the
configurations that exercise every branch of its rule. ``CONFIGS`` flattens the table into
parametrizable cases; every generic test takes a ``Config``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from torch import nn

import descend

# The engine the table runs on. The reference engine by default (it is the rule, as written, and
# fast on tiny tensors); DESCEND_TEST_IMPL=auto runs the whole table on the default engine.
# test_core_torch_parity also runs the representatives on every engine.
IMPL = os.environ.get("DESCEND_TEST_IMPL", "reference")

@dataclass(frozen=True)
class OptimizerInfo:
    """A descend optimizer, its torch twin, its configurations and how to vary a second group."""

    cls: type[descend.Optimizer]
    torch_cls: type[torch.optim.Optimizer] | None
    configs: tuple[dict[str, Any], ...]
    # hyperparameters of the second param group (on top of lr * 0.5), so groups really differ
    second_group: dict[str, Any] = field(default_factory=dict)
    # what lr_scheduler.OneCycleLR / CyclicLR can cycle: "momentum", "betas" or None
    cycles: str | None = None
    # where torch lacks the algorithm: the reference package's class (a test-only dependency)
    reference: Callable[..., torch.optim.Optimizer] | None = None
    # False where lr only sets the first step's size (Rprop: the steps then adapt on their own),
    # or where a group's steps do not scale with its own lr (Prodigy: one d * max lr for all)
    lr_scales_steps: bool = True
    # False for matrix methods (matmul, eigh) and rules that reduce over a tensor (Lamb's and
    # LARS's norms): the traced engines (foreach, numba) refuse the rule, impl="auto" runs it on
    # the reference engine; the engine-vs-engine tests leave these rows out (TRACEABLE_CONFIGS),
    # test_matrix_optimizers and test_engine_exactness check the refusal and the fallback.
    traceable: bool = True
    # False where torch (or the package) refuses complex parameters, as descend then does.
    supports_complex: bool = True
    # Which parameters the optimizer takes (Muon: 2-D ones only); the table gives it those of
    # the model and leaves the rest alone, as a real model gives them to AdamW.
    takes: Callable[[torch.Tensor], bool] | None = None
    # The lower precisions ("float32", "bfloat16") whose runs depart from a higher precision's
    # beyond what rounding elementwise explains (test_core_dtypes), and why; the rows are left
    # out of those comparisons and checked against their reference in that precision instead
    # (test_matrix_optimizers).
    rounding_sensitive: tuple[str, ...] = ()
    # What a NaN gradient raises where it does not reach the parameters (SOAP's first step
    # decomposes the gradient's statistics; the package raises there too)
    nonfinite_raises: str | None = None
    # The reference's state value (by name) in descend's layout, where the two differ (SOAP).
    reference_state: Callable[[str, Any], Any] = lambda name, value: value
    # the second group's lr, relative to the first's (Prodigy: equal lrs, or it refuses)
    second_lr_factor: float = 0.5
    # False where the algorithm itself rests on differences below float32's resolution, so
    # that a float32 or bfloat16 run cannot track the float64 one (Prodigy: d comes from
    # <g, p0 - p> while p has moved by ~d0 = 1e-6 of itself); test_core_dtypes leaves it out of
    # those comparisons, and the float64 runs are compared with the package
    tracks_across_dtypes: bool = True


@dataclass(frozen=True)
class Config:
    """One row of the table: builds the descend optimizer and, where one exists, torch's."""

    id: str
    info: OptimizerInfo
    kwargs: dict[str, Any]
    registry_name: str | None = None

    @property
    def cls(self) -> type[descend.Optimizer]:
        return self.info.cls

    def taken(self, params: Iterable[Any]) -> list[Any]:
        """The parameters (or param groups) this optimizer takes (``OptimizerInfo.takes``)."""
        takes = self.info.takes
        if takes is None:
            return params
        def tensor(p: Any) -> torch.Tensor:  # (named_parameters gives (name, tensor) pairs)
            return p[1] if isinstance(p, tuple) else p

        return [{**p, "params": [q for q in p["params"] if takes(tensor(q))]}
                if isinstance(p, dict) else p
                for p in params if isinstance(p, dict) or takes(tensor(p))]

    def build(self, params: Iterable[Any], **extra: Any) -> descend.Optimizer:
        """The optimizer, ready to train (schedule-free ones in train mode, as their users
        must put them)."""
        extra.setdefault("impl", IMPL)
        params = self.taken(params)
        if self.registry_name is not None:
            return training(descend.create(self.registry_name, params, **self.kwargs, **extra))
        return training(self.cls(params, **self.kwargs, **extra))

    def effective_kwargs(self) -> dict[str, Any]:
        """The hyperparameters this config runs with, registry overrides included."""
        if self.registry_name is None:
            return dict(self.kwargs)
        return {**descend.REGISTRY[self.registry_name].overrides, **self.kwargs}

    @property
    def has_torch(self) -> bool:
        kw = self.effective_kwargs()
        descend_only = kw.get("momentum_form", "torch") != "torch" or (
            self.cls is descend.RMSprop and kw.get("nesterov", False))
        return self.info.torch_cls is not None and not descend_only

    def build_reference(self, params: Iterable[Any]) -> torch.optim.Optimizer:
        """The reference package's optimizer with this config's hyperparameters, ready to
        train."""
        return training(self.info.reference(self.taken(params), **self.effective_kwargs()))

    def build_torch(self, params: Iterable[Any], **extra: Any) -> torch.optim.Optimizer:
        kw = {k: v for k, v in self.effective_kwargs().items() if k != "momentum_form"}
        return self.info.torch_cls(self.taken(params), **kw, **extra)

    def groups(self, model: nn.Module) -> list[dict[str, Any]]:
        """Two param groups with different hyperparameters: first layer, then the rest."""
        first, *rest = [m for m in model if isinstance(m, nn.Linear)]
        lr = float(self.effective_kwargs().get("lr", _default(self.cls, "lr")))
        return [
            {"params": list(first.parameters())},
            {"params": [p for m in rest for p in m.parameters()],
             "lr": lr * self.info.second_lr_factor,
             **self.info.second_group},
        ]


def training(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``opt`` in train mode where it has one (schedule-free: the parameters hold y)."""
    if callable(getattr(opt, "train", None)):
        opt.train()
    return opt


def _default(cls: type, name: str) -> Any:
    import inspect

    return inspect.signature(cls.__init__).parameters[name].default


def _package(module: str, name: str) -> Callable[..., torch.optim.Optimizer]:
    """A reference package's optimizer class (the dev extra), imported when a test builds it."""
    def build(params: Any, **kwargs: Any) -> torch.optim.Optimizer:
        return getattr(importlib.import_module(module), name)(params, **kwargs)
    return build


SGD_INFO = OptimizerInfo(
    descend.SGD, torch.optim.SGD,
    (
        {"lr": 0.05},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.05, "momentum": 0.5, "weight_decay": 0.1},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05, "maximize": True},
        {"lr": 0.05, "maximize": True},
        {"lr": 0.05, "momentum": 0.9, "momentum_form": "textbook"},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "momentum_form": "textbook"},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.1,
         "momentum_form": "textbook"},
    ),
    second_group={"weight_decay": 0.02, "momentum": 0.5},
    cycles="momentum",
)
ADAGRAD_INFO = OptimizerInfo(
    descend.Adagrad, torch.optim.Adagrad,
    (
        {"lr": 0.1},
        {"lr": 0.1, "lr_decay": 0.05},
        {"lr": 0.1, "initial_accumulator_value": 0.5},
        {"lr": 0.1, "weight_decay": 0.1},
        {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.05,
         "maximize": True},
    ),
    second_group={"eps": 1e-3, "lr_decay": 0.02},
)
RMSPROP_INFO = OptimizerInfo(
    descend.RMSprop, torch.optim.RMSprop,
    (
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.9},
        {"lr": 0.01, "centered": True},
        {"lr": 0.01, "momentum": 0.9, "centered": True},
        {"lr": 0.01, "momentum": 0.9, "nesterov": True},
        {"lr": 0.01, "momentum": 0.9, "nesterov": True, "centered": True},
        {"lr": 0.01, "weight_decay": 0.1, "alpha": 0.9},
        {"lr": 0.01, "momentum": 0.5, "maximize": True},
        {"lr": 0.01, "momentum": 0.9, "momentum_form": "textbook"},
        {"lr": 0.01, "momentum": 0.9, "nesterov": True, "centered": True,
         "momentum_form": "textbook"},
    ),
    second_group={"alpha": 0.9, "eps": 1e-6},
    cycles="momentum",
)
ADADELTA_INFO = OptimizerInfo(
    descend.Adadelta, torch.optim.Adadelta,
    (
        {},
        {"lr": 0.5, "rho": 0.8},
        {"lr": 1.0, "weight_decay": 0.1},
        {"lr": 1.0, "eps": 1e-4, "maximize": True},
    ),
    second_group={"rho": 0.7},
)
ADAM_INFO = OptimizerInfo(
    descend.Adam, torch.optim.Adam,
    (
        {"lr": 0.01},
        {"lr": 0.01, "amsgrad": True},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "amsgrad": True, "weight_decay": 0.05},
    ),
    second_group={"betas": (0.8, 0.99)},
    cycles="betas",
)
ADAMW_INFO = OptimizerInfo(
    descend.AdamW, torch.optim.AdamW,
    (
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    ),
    second_group={"weight_decay": 0.0},
    cycles="betas",
)
ADAMAX_INFO = OptimizerInfo(
    descend.Adamax, torch.optim.Adamax,
    (
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6},
    ),
    second_group={"betas": (0.8, 0.99)},
    cycles="betas",
)
RADAM_INFO = OptimizerInfo(
    descend.RAdam, torch.optim.RAdam,
    (
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.01, "betas": (0.8, 0.9), "maximize": True},
    ),
    second_group={"betas": (0.8, 0.99)},
    cycles="betas",
)
NADAM_INFO = OptimizerInfo(
    descend.NAdam, torch.optim.NAdam,
    (
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 0.01, "betas": (0.8, 0.99), "momentum_decay": 0.05, "maximize": True},
    ),
    second_group={"betas": (0.8, 0.99), "momentum_decay": 0.01},
    cycles="betas",
)
ASGD_INFO = OptimizerInfo(
    descend.ASGD, torch.optim.ASGD,
    (
        {"lr": 0.05},
        {"lr": 0.05, "t0": 10, "lambd": 0.01},  # the average starts at step 10
        {"lr": 0.05, "t0": 5, "alpha": 0.5, "weight_decay": 0.1, "maximize": True},
    ),
    second_group={"lambd": 1e-3, "t0": 20},
)
RPROP_INFO = OptimizerInfo(
    descend.Rprop, torch.optim.Rprop,
    (
        {"lr": 0.01},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "etas": (0.3, 1.5), "step_sizes": (1e-4, 0.02)},
    ),
    second_group={"etas": (0.4, 1.1)},
    lr_scales_steps=False,
)
LION_INFO = OptimizerInfo(
    descend.Lion, None,
    (
        {"lr": 1e-3},
        {"lr": 1e-3, "weight_decay": 0.1},
        {"lr": 1e-3, "weight_decay": 0.1, "decoupled_weight_decay": True},
        {"lr": 1e-3, "betas": (0.95, 0.98)},
    ),
    second_group={"betas": (0.8, 0.99), "weight_decay": 0.05},
    cycles="betas",
    reference=_package("lion_pytorch", "Lion"),  # lion-pytorch 0.2.5
)
ADEMAMIX_INFO = OptimizerInfo(
    descend.AdEMAMix, None,
    (
        {"lr": 1e-3},
        {"lr": 1e-3, "t_alpha_beta3": 20.0},
        {"lr": 1e-3, "weight_decay": 0.1, "weight_decouple": True},
        {"lr": 1e-3, "weight_decay": 0.1},
        {"lr": 1e-3, "maximize": True, "alpha": 2.0, "weight_decay": 0.1,
         "weight_decouple": True},
    ),
    second_group={"alpha": 3.0, "betas": (0.8, 0.99, 0.999)},
    cycles="betas",
    reference=_package("pytorch_optimizer", "AdEMAMix"),  # pytorch-optimizer 4.1.0
)
MUON_INFO = OptimizerInfo(
    descend.Muon, torch.optim.Muon,
    (
        {"lr": 0.02},
        {"lr": 0.02, "nesterov": False},
        {"lr": 0.02, "weight_decay": 0.0, "adjust_lr_fn": "match_rms_adamw"},
        {"lr": 0.02, "momentum": 0.9, "ns_steps": 3, "adjust_lr_fn": "original"},
    ),
    second_group={"momentum": 0.8, "weight_decay": 0.05},
    cycles="momentum",
    traceable=False,
    supports_complex=False,
    takes=lambda p: p.ndim == 2,
    # The orthogonalization gives every singular direction of the update the same size, the
    # weak ones too, where a bfloat16 momentum's rounding is of the order of the signal.
    rounding_sensitive=("bfloat16",),
)
ADAFACTOR_INFO = OptimizerInfo(
    descend.Adafactor, torch.optim.Adafactor,
    (
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.01, "beta2_decay": -0.5, "eps": (1e-30, 1e-3), "d": 2.0},
    ),
    second_group={"beta2_decay": -0.6},
    traceable=False,
    supports_complex=False,
)
def _soap_state(name: str, value: Any) -> Any:
    """pytorch-optimizer keeps GG and Q as lists of matrices ([] for a dimension it leaves
    alone); descend concatenates them flat, each Q_i transposed (descend.rules.soap)."""
    if name not in ("GG", "Q"):
        return value
    matrices = [m.mT if name == "Q" else m for m in value if len(m)]
    return torch.cat([m.reshape(-1) for m in matrices]) if matrices else torch.zeros(0)


SOAP_INFO = OptimizerInfo(
    descend.SOAP, None,
    (
        {"lr": 3e-3},
        {"lr": 3e-3, "precondition_frequency": 3},
        {"lr": 3e-3, "precondition_1d": True, "maximize": True, "precondition_frequency": 2},
        {"lr": 3e-3, "max_precondition_dim": 5, "normalize_gradient": True,
         "shampoo_beta": 0.9, "correct_bias": False, "weight_decay": 0.0},
    ),
    second_group={"betas": (0.9, 0.99), "weight_decay": 0.05},
    cycles="betas",
    reference=_package("pytorch_optimizer", "SOAP"),  # pytorch-optimizer 4.1.0
    reference_state=_soap_state,
    nonfinite_raises="eigendecomposition.*skip_nonfinite=True",
    # Adam in an eigenbasis divides each rotated coordinate by its own RMS: in the near-null
    # directions of a low-rank statistic that is rounding noise over rounding noise, O(1) in
    # any precision, and it differs between precisions (float32 vs float64 runs end ~5% apart).
    rounding_sensitive=("float32", "bfloat16"),
    traceable=False,
    supports_complex=False,
)
LAMB_INFO = OptimizerInfo(
    descend.Lamb, None,
    (
        {"lr": 0.05},
        {"lr": 0.05, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.1, "weight_decouple": False},
        {"lr": 0.05, "rectify": True, "n_sma_threshold": 4},  # no step before step 5
        {"lr": 0.05, "rectify": True, "degenerated_to_sgd": True, "n_sma_threshold": 8},
        {"lr": 0.05, "pre_norm": True, "max_grad_norm": 0.05},
        {"lr": 0.05, "adam": True, "grad_averaging": False, "maximize": True},
        {"lr": 0.05, "adam_debias": True, "betas": (0.8, 0.99), "eps": 1e-4},
    ),
    second_group={"betas": (0.8, 0.99), "weight_decay": 0.05},
    cycles="betas",
    reference=_package("pytorch_optimizer", "Lamb"),  # pytorch-optimizer 4.1.0
    traceable=False,  # the trust ratio's norms
)
LARS_INFO = OptimizerInfo(
    descend.LARS, None,
    (
        {"lr": 0.1},
        {"lr": 0.1, "weight_decay": 0.1},
        {"lr": 0.1, "nesterov": True, "trust_coefficient": 0.02},
        {"lr": 0.1, "momentum": 0.0},
        {"lr": 0.1, "momentum": 0.5, "dampening": 0.3, "weight_decay": 0.05, "maximize": True},
    ),
    second_group={"momentum": 0.5, "trust_coefficient": 0.01},
    cycles="momentum",
    reference=_package("pytorch_optimizer", "LARS"),  # pytorch-optimizer 4.1.0
    traceable=False,  # the trust ratio's norms
)
PRODIGY_INFO = OptimizerInfo(
    descend.Prodigy, None,
    (
        {},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decouple": False},
        {"use_bias_correction": True, "betas": (0.8, 0.99)},
        {"safeguard_warmup": True, "beta3": 0.9, "d0": 1e-4},
        {"betas": (0.0, 0.99), "eps": 1e-6},
        {"growth_rate": 1.02, "d_coef": 2.0},
    ),
    second_group={"weight_decay": 0.02, "eps": 1e-6, "d0": 1e-5},
    cycles="betas",
    reference=_package("prodigyopt", "Prodigy"),  # prodigyopt 1.1.2
    lr_scales_steps=False,  # one step size d * max(lr) for every group (a group at lr 0 moves)
    second_lr_factor=1.0,
    tracks_across_dtypes=False,
)
SGD_SCHEDULE_FREE_INFO = OptimizerInfo(
    descend.SGDScheduleFree, None,
    (
        {"lr": 0.1},
        {"lr": 0.1, "weight_decay": 0.05},
        {"lr": 0.1, "warmup_steps": 10, "momentum": 0.5},
        {"lr": 0.1, "r": 1.0, "weight_lr_power": 1.0},
    ),
    second_group={"momentum": 0.8},
    cycles="momentum",
    reference=_package("schedulefree", "SGDScheduleFree"),  # schedulefree 1.4.1
)
ADAMW_SCHEDULE_FREE_INFO = OptimizerInfo(
    descend.AdamWScheduleFree, None,
    (
        {"lr": 0.01},
        {"lr": 0.01, "weight_decay": 0.05},
        {"lr": 0.01, "warmup_steps": 10, "betas": (0.8, 0.99)},
        {"lr": 0.01, "r": 0.5, "weight_lr_power": 1.0, "eps": 1e-6},
    ),
    second_group={"betas": (0.8, 0.99)},
    cycles="betas",
    reference=_package("schedulefree", "AdamWScheduleFree"),  # schedulefree 1.4.1
)
INFOS = (SGD_INFO, ADAGRAD_INFO, RMSPROP_INFO, ADADELTA_INFO, ADAM_INFO, ADAMW_INFO, ADAMAX_INFO,
         NADAM_INFO, RADAM_INFO, RPROP_INFO, ASGD_INFO, LION_INFO, ADEMAMIX_INFO, LAMB_INFO,
         LARS_INFO, PRODIGY_INFO, SGD_SCHEDULE_FREE_INFO, ADAMW_SCHEDULE_FREE_INFO, MUON_INFO,
         ADAFACTOR_INFO, SOAP_INFO)
INFO_BY_CLASS = {info.cls: info for info in INFOS}


def _config_id(cls: type, kwargs: dict[str, Any]) -> str:
    parts = [f"{k}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}"
             for k, v in kwargs.items()]
    return "-".join([cls.__name__, *parts])


def _registry_configs() -> list[Config]:
    out = []
    for name, entry in descend.REGISTRY.items():
        lr = {"rmsprop": 0.01, "rmsprop-nesterov": 0.01, "adam": 0.01, "adamw": 0.01,
              "adadelta": 1.0, "adagrad": 0.1, "adamax": 0.01, "nadam": 0.01, "radam": 0.01,
              "rprop": 0.01, "lion": 1e-3, "ademamix": 1e-3, "lamb": 0.05, "lars": 0.1,
              "prodigy": 1.0, "sgd-schedule-free": 0.1, "adamw-schedule-free": 0.01,
              "muon": 0.02, "adafactor": 0.01, "soap": 3e-3}.get(name, 0.05)
        out.append(Config(f"registry:{name}", INFO_BY_CLASS[entry.cls], {"lr": lr}, name))
    return out


CONFIGS: list[Config] = [
    Config(_config_id(info.cls, kw), info, kw) for info in INFOS for kw in info.configs
] + _registry_configs()
TORCH_CONFIGS = [c for c in CONFIGS if c.has_torch]
# One representative (with momentum where the class has it) per class, for costly sweeps.
REPRESENTATIVES = [
    next(c for c in (TORCH_CONFIGS if info.torch_cls else CONFIGS)
         if c.info is info and c.registry_name is None
         and (info.cycles != "momentum" or c.kwargs.get("momentum", 0) > 0))
    for info in INFOS
]
TORCH_REPRESENTATIVES = [c for c in REPRESENTATIVES if c.has_torch]  # where torch is the twin
# What the traced engines (foreach, numba, triton) run (OptimizerInfo.traceable).
TRACEABLE_CONFIGS = [c for c in CONFIGS if c.info.traceable]
TRACEABLE_REPRESENTATIVES = [c for c in REPRESENTATIVES if c.info.traceable]


def configs(selection: list[Config] = CONFIGS) -> Any:
    """``@configs()`` parametrizes a test over the table, ids readable in pytest's output."""
    return pytest.mark.parametrize("config", selection, ids=[c.id for c in selection])


# ---- a small real model shared by the tests ------------------------------------------------

def make_model(dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    """A 3-layer net with six parameter tensors of different shapes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 5), nn.Tanh(),
                         nn.Linear(5, 2)).to(dtype)


def make_data(dtype: torch.dtype = torch.float64, seed: int = 1) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    y = torch.randn(16, 2, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


def loss_closure(model: nn.Module, opt: torch.optim.Optimizer, data: tuple[torch.Tensor, ...],
                 ) -> Callable[[], torch.Tensor]:
    x, y = data

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    return closure


def train(model: nn.Module, opt: torch.optim.Optimizer, steps: int, data=None,
          scheduler: Any = None) -> list[float]:
    """``steps`` full-batch steps; a scheduler (if any) steps after each, as torch documents."""
    data = data if data is not None else make_data(next(model.parameters()).dtype)
    closure = loss_closure(model, opt, data)
    losses = []
    for _ in range(steps):
        loss = opt.step(closure)
        losses.append(float(loss.detach()))
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(float(loss.detach()))
        elif scheduler is not None:
            scheduler.step()
    return losses


def optimized(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters the optimizer holds (Muon: a model's matrices only), in group order."""
    return [p for group in opt.param_groups for p in group["params"]]


def assert_same_tensors(actual: Iterable[torch.Tensor], expected: Iterable[torch.Tensor]) -> None:
    """Bit-for-bit equality, tensor by tensor."""
    actual, expected = list(actual), list(expected)
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.dtype == e.dtype and torch.equal(a, e), f"tensor {i} differs"


def snapshot(opt: torch.optim.Optimizer) -> dict[str, Any]:
    """A deep copy of parameters, state and the groups' numbers (Prodigy's d, schedule-free's
    weight_sum...), to check that nothing changed."""
    params = [p.detach().clone() for g in opt.param_groups for p in g["params"]]
    state = {i: {k: v.clone() for k, v in opt.state[p].items()}
             for i, p in enumerate(p for g in opt.param_groups for p in g["params"])
             if p in opt.state}
    groups = [{k: v for k, v in g.items() if isinstance(v, (int, float))}
              for g in opt.param_groups]
    return {"params": params, "state": state, "groups": groups}


def assert_unchanged(opt: torch.optim.Optimizer, before: dict[str, Any]) -> None:
    after = snapshot(opt)
    assert after["groups"] == before["groups"], "a group's scalars changed"
    assert_same_tensors(after["params"], before["params"])
    assert after["state"].keys() == before["state"].keys()
    for i, buffers in before["state"].items():
        assert after["state"][i].keys() == buffers.keys()
        assert_same_tensors(after["state"][i].values(), buffers.values())
