"""Param groups, add_param_group, lr as a float or a 0-d tensor, and every lr_scheduler."""

from __future__ import annotations

import pytest
import torch
from optimizer_info import (
    CONFIGS,
    REPRESENTATIVES,
    TORCH_CONFIGS,
    TORCH_REPRESENTATIVES,
    assert_same_tensors,
    configs,
    make_model,
    train,
)
from torch.optim import lr_scheduler as sched

STEPS = 12


def _schedulers(config):
    """name -> factory(optimizer) for every scheduler in torch.optim.lr_scheduler."""
    lr = float(config.effective_kwargs().get("lr", 1.0))
    cycle = config.info.cycles is not None
    return {
        "StepLR": lambda o: sched.StepLR(o, step_size=3, gamma=0.5),
        "MultiStepLR": lambda o: sched.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.3),
        "ConstantLR": lambda o: sched.ConstantLR(o, factor=0.5, total_iters=4),
        "LinearLR": lambda o: sched.LinearLR(o, start_factor=0.2, total_iters=6),
        "ExponentialLR": lambda o: sched.ExponentialLR(o, gamma=0.8),
        "PolynomialLR": lambda o: sched.PolynomialLR(o, total_iters=10, power=2.0),
        "CosineAnnealingLR": lambda o: sched.CosineAnnealingLR(o, T_max=10),
        "CosineAnnealingWarmRestarts": lambda o: sched.CosineAnnealingWarmRestarts(o, T_0=4),
        "LambdaLR": lambda o: sched.LambdaLR(o, lambda e: 1 / (1 + e)),
        "MultiplicativeLR": lambda o: sched.MultiplicativeLR(o, lambda e: 0.9),
        "SequentialLR": lambda o: sched.SequentialLR(
            o, [sched.LinearLR(o, start_factor=0.1, total_iters=3),
                sched.ExponentialLR(o, gamma=0.9)], milestones=[3]),
        "ChainedScheduler": lambda o: sched.ChainedScheduler(
            [sched.StepLR(o, step_size=3, gamma=0.5), sched.ExponentialLR(o, gamma=0.9)]),
        # mode="max" on a falling loss: no improvement at every step, so the lr is cut each time
        "ReduceLROnPlateau": lambda o: sched.ReduceLROnPlateau(o, mode="max", patience=0,
                                                               factor=0.5),
        "CyclicLR": lambda o: sched.CyclicLR(o, base_lr=lr / 10, max_lr=lr, step_size_up=3,
                                             cycle_momentum=cycle),
        "OneCycleLR": lambda o: sched.OneCycleLR(o, max_lr=lr, total_steps=STEPS,
                                                 cycle_momentum=cycle),
    }


SCHEDULER_NAMES = list(_schedulers(CONFIGS[0]))
DESCEND_ONLY = [c for c in CONFIGS if not c.has_torch and c.registry_name is None]


def _hyperparameter_history(build, config, scheduler_name):
    """Runs STEPS steps under the scheduler; returns the model and each group's lr, momentum
    and betas after every step."""
    model = make_model()
    opt = build(config.groups(model))
    scheduler = _schedulers(config)[scheduler_name](opt)
    history = []
    for _ in range(STEPS):
        train(model, opt, 1, scheduler=scheduler)
        history.append([(float(g["lr"]), g.get("momentum"), g.get("betas"))
                        for g in opt.param_groups])
    return model, history


@pytest.mark.parametrize("scheduler_name", SCHEDULER_NAMES)
@configs(TORCH_REPRESENTATIVES)
def test_every_scheduler_drives_descend_like_torch(config, scheduler_name):
    model, history = _hyperparameter_history(config.build, config, scheduler_name)
    torch_model, torch_history = _hyperparameter_history(config.build_torch, config,
                                                         scheduler_name)
    assert history == torch_history
    assert len({h[0][0] for h in history}) > 1, "the scheduler must change the lr"
    for p, q in zip(model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=0)


@pytest.mark.parametrize("scheduler_name", ["OneCycleLR", "CyclicLR"])
@configs([c for c in REPRESENTATIVES if c.info.cycles] + DESCEND_ONLY)
def test_one_cycle_and_cyclic_cycle_momentum_or_beta1(config, scheduler_name):
    _, history = _hyperparameter_history(config.build, config, scheduler_name)
    key = 1 if config.info.cycles == "momentum" else 2
    first_group = [h[0][key] if key == 1 else h[0][key][0] for h in history]
    assert len(set(first_group)) > 2, f"{scheduler_name} must cycle {config.info.cycles}"


@pytest.mark.parametrize("scheduler_name", SCHEDULER_NAMES)
@configs(DESCEND_ONLY)
def test_descend_only_configs_follow_every_scheduler(config, scheduler_name):
    """No torch twin for the parameters; the schedule itself must be torch's, and the run sane."""
    twin = next((c for c in TORCH_CONFIGS if c.info is config.info), None)
    build_twin = config.build_reference if twin is None else twin.build_torch  # (Lion: its package)
    model, history = _hyperparameter_history(config.build, config, scheduler_name)
    _, twin_history = _hyperparameter_history(build_twin, twin or config, scheduler_name)
    lrs = [[g[0] for g in h] for h in history]
    assert lrs == [[g[0] for g in h] for h in twin_history]
    assert all(torch.isfinite(p).all() for p in model.parameters())


@configs([c for c in CONFIGS if c.info.lr_scales_steps])
def test_a_group_with_lr_zero_stays_put_while_the_other_moves(config):
    model = make_model()
    groups = config.groups(model)
    groups[1]["lr"] = 0.0
    opt = config.build(groups)
    first, second = (g["params"] for g in opt.param_groups)
    frozen = [p.detach().clone() for p in second]
    moving = [p.detach().clone() for p in first]
    train(model, opt, 5)
    assert_same_tensors([p.detach() for p in second], frozen)
    assert all(not torch.equal(p, q) for p, q in zip(first, moving, strict=True))


@configs(TORCH_CONFIGS)
def test_add_param_group_mid_run_matches_torch(config):
    def run(build):
        model = make_model()
        first, second = config.groups(model)
        opt = build([first])
        train(model, opt, 4)
        opt.add_param_group(config.taken([second])[0])
        train(model, opt, 6)
        return model, opt

    model, opt = run(config.build)
    torch_model, torch_opt = run(config.build_torch)
    assert len(opt.param_groups) == 2
    added = opt.param_groups[1]
    assert set(opt.defaults) <= set(added), "defaults must fill the added group"
    for p, q in zip(model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=0)


@configs()
def test_lr_as_a_0d_tensor_is_the_same_as_a_float(config):
    def run(lr):
        model = make_model()
        groups = config.groups(model)
        for g in groups:
            g["lr"] = lr(g.get("lr", config.effective_kwargs().get("lr", 1.0)))
        opt = config.build(groups)
        train(model, opt, 8, scheduler=sched.StepLR(opt, step_size=3, gamma=0.5))
        return list(model.parameters()), opt

    with_floats, _ = run(float)
    with_tensors, opt = run(lambda v: torch.tensor(float(v), dtype=torch.float64))
    assert isinstance(opt.param_groups[0]["lr"], torch.Tensor)
    assert_same_tensors([p.detach() for p in with_tensors], [p.detach() for p in with_floats])
