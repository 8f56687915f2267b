"""Checkpoint/resume bit for bit, deepcopy, pickle, and printing."""

from __future__ import annotations

import copy
import pickle

import torch
from optimizer_info import (
    TORCH_CONFIGS,
    assert_same_tensors,
    configs,
    make_model,
    optimized,
    train,
)
from torch.optim.lr_scheduler import StepLR

BEFORE, AFTER = 7, 8


def _setup(config, seed: int = 0):
    model = make_model(seed=seed)
    opt = config.build(config.groups(model))
    return model, opt, StepLR(opt, step_size=3, gamma=0.5)


def _params_and_state(model, opt) -> list[torch.Tensor]:
    params = [p.detach() for p in model.parameters()]
    return params + [t for p in optimized(opt) for t in opt.state[p].values()]


@configs()
def test_resume_from_a_checkpoint_is_bit_for_bit(config, tmp_path):
    model, opt, scheduler = _setup(config)
    train(model, opt, BEFORE + AFTER, scheduler=scheduler)

    first, first_opt, first_scheduler = _setup(config)
    train(first, first_opt, BEFORE, scheduler=first_scheduler)
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": first.state_dict(), "optimizer": first_opt.state_dict(),
                "scheduler": first_scheduler.state_dict()}, path)

    # a fresh process would build everything anew: another init, fresh optimizer and scheduler
    resumed, resumed_opt, resumed_scheduler = _setup(config, seed=123)
    checkpoint = torch.load(path, weights_only=True)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    resumed_scheduler.load_state_dict(checkpoint["scheduler"])
    train(resumed, resumed_opt, AFTER, scheduler=resumed_scheduler)

    assert_same_tensors(_params_and_state(resumed, resumed_opt), _params_and_state(model, opt))
    assert resumed_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert resumed_opt.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


@configs()
def test_deepcopy_continues_like_the_original(config):
    model, opt, _ = _setup(config)
    train(model, opt, 3)
    twin = copy.deepcopy({"model": model, "opt": opt})
    assert twin["opt"].param_groups[0]["params"][0] is next(twin["model"].parameters())
    train(model, opt, 4)
    train(twin["model"], twin["opt"], 4)
    assert_same_tensors(_params_and_state(twin["model"], twin["opt"]),
                        _params_and_state(model, opt))


@configs()
def test_pickle_round_trip_continues_like_the_original(config):
    model, opt, _ = _setup(config)
    train(model, opt, 3)
    opt.skipped_steps = 2
    twin_model, twin_opt = pickle.loads(pickle.dumps((model, opt)))
    assert type(twin_opt) is type(opt) and twin_opt.skipped_steps == 2
    assert twin_opt.defaults == opt.defaults
    train(model, opt, 4)
    train(twin_model, twin_opt, 4)
    assert_same_tensors(_params_and_state(twin_model, twin_opt), _params_and_state(model, opt))


@configs()
def test_repr_names_the_class_and_every_group_hyperparameter(config):
    model, opt, _ = _setup(config)
    text = repr(opt)
    assert str(opt) == text
    assert text.startswith(type(opt).__name__ + " (")
    assert "Parameter Group 0" in text and "Parameter Group 1" in text
    for key, value in opt.param_groups[1].items():
        if key != "params":
            assert f"{key}: {value}" in text


def _resume(config, first_build, then_build, path):
    """BEFORE steps with one implementation, checkpoint, AFTER steps with the other."""
    model = make_model()
    opt = first_build(config.groups(model))
    train(model, opt, BEFORE)
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    resumed = make_model(seed=123)
    resumed_opt = then_build(config.groups(resumed))
    checkpoint = torch.load(path, weights_only=True)
    resumed.load_state_dict(checkpoint["model"])
    resumed_opt.load_state_dict(checkpoint["optimizer"])
    train(resumed, resumed_opt, AFTER)
    return resumed


@configs(TORCH_CONFIGS)
def test_a_torch_optim_checkpoint_resumes_in_descend_and_back(config, tmp_path):
    """Drop-in both ways: torch.optim's state dicts load into descend and descend's into torch."""
    reference = make_model()
    reference_opt = config.build_torch(config.groups(reference))
    train(reference, reference_opt, BEFORE + AFTER)
    for first, then in ((config.build_torch, config.build), (config.build, config.build_torch)):
        resumed = _resume(config, first, then, tmp_path / "checkpoint.pt")
        for p, q in zip(resumed.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=0)
