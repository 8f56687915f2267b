"""Parity with the reference package of each optimizer torch does not have (issue 10, part 2).

The packages are test-only dependencies (the dev extra), written by others: lion-pytorch 0.2.5
for Lion, pytorch-optimizer 4.1.0 for AdEMAMix, Lamb, LARS and SOAP, prodigyopt 1.1.2 for
Prodigy, schedulefree 1.4.1 for SGDScheduleFree and AdamWScheduleFree. As for torch
(test_core_torch_parity.py): float64, 45 steps on a 3-layer net, two param groups with different
hyperparameters, a StepLR halving the learning rate every 10 steps; parameters, state and the
groups' scalars (Prodigy's d, schedule-free's weight_sum...) equal to rtol 1e-9, on every engine
(the traced ones refuse the rules that reduce over a tensor or multiply matrices, Lamb, LARS and
SOAP: that is checked too); and a run resumed from a checkpoint at step 20 ends where the
package's uninterrupted run does.

SOAP holds rtol 1e-9 although its eigendecompositions could round differently: descend keeps
the package's matrices in the package's memory layouts (see test_matrix_optimizers.py), so the
same LAPACK and BLAS calls see the same operands and the runs agree bit for bit here.
"""

from __future__ import annotations

import io
from numbers import Real

import pytest
import torch
from optimizer_info import (
    CONFIGS,
    assert_unchanged,
    configs,
    make_data,
    make_model,
    snapshot,
    train,
)

import descend

STEPS = 45
RTOL = 1e-9
REFERENCE_CONFIGS = [c for c in CONFIGS if c.info.reference is not None]


def _scheduled(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
    return torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)


def _reference_run(config):
    model = make_model()
    opt = config.build_reference(config.groups(model))
    train(model, opt, STEPS, scheduler=_scheduled(opt))
    return model, opt


def _as_ours(ours: torch.Tensor, theirs) -> torch.Tensor:
    """The package's value in our layout: a number (prodigyopt's step count) as a tensor, a
    flattened buffer (prodigyopt's s and p0) in the parameter's shape."""
    return torch.as_tensor(theirs).reshape(ours.shape).to(ours.dtype)


def _assert_close(config, model, opt, ref_model, ref_opt, rtol: float = RTOL) -> None:
    compared = 0
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=rtol, atol=0)
        for name in opt.state[p].keys() & ref_opt.state[q].keys():
            ours = opt.state[p][name]
            theirs = config.info.reference_state(name, ref_opt.state[q][name])
            torch.testing.assert_close(ours, _as_ours(ours, theirs), rtol=rtol, atol=1e-300,
                                       msg=lambda m, name=name: f"{name}: {m}")
            compared += 1
    assert compared > 0, "state buffers must be compared"
    for group, ref_group in zip(opt.param_groups, ref_opt.param_groups, strict=True):
        for key in group.keys() & ref_group.keys() - {"params"}:  # d, weight_sum, k, lr...
            ours, theirs = group[key], ref_group[key]
            if isinstance(theirs, Real) and not isinstance(theirs, bool):
                assert ours == pytest.approx(theirs, rel=RTOL, abs=1e-300), key


# Every engine; foreach refuses the rules it cannot trace (Lamb, LARS, SOAP): checked too.
ENGINE_RUNS = [(c, impl) for c in REFERENCE_CONFIGS for impl in ("reference", "foreach", "auto")]


@pytest.mark.parametrize("config, impl", ENGINE_RUNS, ids=[f"{c.id}-{i}" for c, i in ENGINE_RUNS])
def test_matches_its_reference_package(config, impl):
    if impl == "foreach" and not config.info.traceable:
        _assert_foreach_refuses(config)
        return
    model = make_model()
    opt = config.build(config.groups(model), impl=impl)
    losses = train(model, opt, STEPS, scheduler=_scheduled(opt))
    assert losses[-1] != losses[0], "the run must move the parameters"
    _assert_close(config, model, opt, *_reference_run(config))


@configs(REFERENCE_CONFIGS)
def test_resumed_run_ends_where_the_reference_package_does(config):
    model = make_model()
    opt = config.build(config.groups(model), impl="auto")
    scheduler = _scheduled(opt)
    train(model, opt, 20, scheduler=scheduler)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed_model = make_model(seed=1)
    resumed_model.load_state_dict(saved["model"])
    resumed = config.build(config.groups(resumed_model), impl="auto")
    resumed.load_state_dict(saved["opt"])
    resumed_scheduler = _scheduled(resumed)
    resumed_scheduler.load_state_dict(saved["scheduler"])
    train(resumed_model, resumed, STEPS - 20, scheduler=resumed_scheduler)
    _assert_close(config, resumed_model, resumed, *_reference_run(config))


def _assert_foreach_refuses(config) -> None:
    """A rule that reduces over a tensor (a norm) is refused by impl='foreach', before anything
    changed, with the way out (its auto and reference runs are the other parametrizations)."""
    model = make_model()
    opt = config.build(config.groups(model), impl="foreach")
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"impl='foreach'.*impl='reference'"):
        train(model, opt, 1)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("name", ["AdEMAMix", "Lamb"])
def test_fixed_decay_matches_pytorch_optimizer(name):
    """fixed_decay decays by lambda whatever the lr (so it is not in the table, whose lr=0 test
    expects a group to stay put)."""
    config = next(c for c in REFERENCE_CONFIGS if c.cls.__name__ == name)
    kwargs = {"lr": 1e-3, "weight_decay": 0.01, "weight_decouple": True, "fixed_decay": True}
    model, theirs_model = make_model(), make_model()
    ours = config.cls(model.parameters(), **kwargs)
    theirs = config.info.reference(theirs_model.parameters(), **kwargs)
    train(model, ours, STEPS)
    train(theirs_model, theirs, STEPS)
    _assert_close(config, model, ours, theirs_model, theirs)


SCHEDULE_FREE = [next(c for c in REFERENCE_CONFIGS if c.cls is cls)
                 for cls in (descend.SGDScheduleFree, descend.AdamWScheduleFree)]


@configs(SCHEDULE_FREE)
def test_schedule_free_eval_mode_matches_the_package_and_train_mode_comes_back(config):
    """eval() puts the average x in the parameters, as the package does: the evaluated model
    (and its loss) is the package's; train() brings back y."""
    model = make_model()
    opt = config.build(config.groups(model))
    train(model, opt, STEPS, scheduler=_scheduled(opt))
    ref_model, ref_opt = _reference_run(config)
    y = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    ref_opt.eval()
    assert not any(torch.equal(p, q) for p, q in zip(model.parameters(), y, strict=True))
    _assert_close(config, model, opt, ref_model, ref_opt)
    x, target = make_data()
    with torch.no_grad():
        loss = torch.nn.functional.mse_loss(model(x), target)
        ref_loss = torch.nn.functional.mse_loss(ref_model(x), target)
    assert float(loss) == pytest.approx(float(ref_loss), rel=RTOL)
    opt.eval()  # a second eval() changes nothing
    _assert_close(config, model, opt, ref_model, ref_opt)
    opt.train()
    for p, q in zip(model.parameters(), y, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-15)


@configs(SCHEDULE_FREE)
def test_schedule_free_refuses_a_step_in_eval_mode(config):
    model = make_model()
    opt = config.build(config.groups(model))
    train(model, opt, 3)
    opt.eval()
    before = snapshot(opt)
    with pytest.raises(RuntimeError, match=r"eval mode.*optimizer\.train\(\)"):
        train(model, opt, 1)
    assert_unchanged(opt, before)
    opt.train()
    train(model, opt, 1)  # and steps again once back in train mode


def test_prodigy_refuses_groups_with_different_lrs_before_anything_changes():
    """One d for every group: lrs must be equal, or 0 (prodigyopt's rule), checked when a
    group is added and, for lrs set by hand since, at the step."""
    model = make_model()
    with pytest.raises(ValueError, match=r"different lrs.*lr=1"):
        descend.Prodigy([{"params": model[0].parameters()},
                         {"params": model[2].parameters(), "lr": 0.5}])
    opt = descend.Prodigy([{"params": model[0].parameters()},
                           {"params": model[2].parameters(), "lr": 0.0}])
    opt.param_groups[1]["lr"] = 0.5
    params = [p.detach().clone() for p in model.parameters()]
    groups_before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError, match=r"different lrs.*lr=1"):
        train(model, opt, 1)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), params, strict=True))
    assert opt.param_groups == groups_before


@pytest.mark.parametrize("kwargs, fragments", [
    ({"slice_p": 11}, ["slice_p=11", "slice_p=1"]),
    ({"fsdp_in_use": True}, ["fsdp_in_use", "False"]),
    ({"beta3": 1.5}, ["beta3=1.5", "[0, 1)"]),
    ({"d0": 0.0}, ["d0", "(0, inf)"]),
    ({"lr": 0.0}, ["lr", "(0, inf)"]),
])
def test_prodigy_refuses_what_it_does_not_support_clearly(kwargs, fragments):
    with pytest.raises(ValueError) as error:
        descend.Prodigy([torch.nn.Parameter(torch.ones(3))], **kwargs)
    assert all(f in str(error.value) for f in fragments), str(error.value)


@pytest.mark.parametrize("cls, kwargs, fragments", [
    (descend.SGDScheduleFree, {"momentum": 0.0}, ["momentum", "(0, 1)"]),
    (descend.AdamWScheduleFree, {"betas": (0.0, 0.999)}, ["betas[0]", "(0, 1)"]),
    (descend.AdamWScheduleFree, {"warmup_steps": -1}, ["warmup_steps", "[0, inf)"]),
    (descend.Lamb, {"adanorm": True}, ["adanorm", "adam_debias"]),
    (descend.Lamb, {"max_grad_norm": -1.0}, ["max_grad_norm", "[0, inf)"]),
    (descend.Lamb, {"n_sma_threshold": 3}, ["n_sma_threshold", "[4, inf)"]),
    (descend.LARS, {"momentum": 1.0}, ["momentum", "[0, 1)"]),
])
def test_the_new_optimizers_refuse_bad_hyperparameters_clearly(cls, kwargs, fragments):
    with pytest.raises(ValueError) as error:
        cls([torch.nn.Parameter(torch.ones(3))], **kwargs)
    assert all(f in str(error.value) for f in fragments), str(error.value)
