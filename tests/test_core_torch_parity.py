"""Parity with torch.optim for every configuration torch also has (issue 2, section 4).

float64, 45 steps on a 3-layer net (six parameter tensors), two param groups with different
hyperparameters, and a StepLR that halves the learning rate every 10 steps.
"""

from __future__ import annotations

import pytest
import torch
from optimizer_info import IMPL, TORCH_CONFIGS, TORCH_REPRESENTATIVES, configs, make_model, train

STEPS = 45
RTOL = 1e-9


def _run(build, config, **extra):
    model = make_model()
    opt = build(config.groups(model), **extra)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    losses = train(model, opt, STEPS, scheduler=scheduler)
    return model, opt, losses


@configs(TORCH_CONFIGS)
def test_matches_torch_optim(config):
    check_parity(config)


# The table runs on IMPL; the representatives also run on every other engine the user can pick.
@pytest.mark.parametrize("impl", sorted({"auto", "reference"} - {IMPL}))
@configs(TORCH_REPRESENTATIVES)
def test_every_engine_matches_torch_optim(config, impl):
    check_parity(config, impl=impl)


def check_parity(config, **extra):
    model, opt, losses = _run(config.build, config, **extra)
    torch_model, torch_opt, torch_losses = _run(config.build_torch, config)

    assert losses[-1] != losses[0], "the run must move the parameters"
    assert opt.param_groups[0]["lr"] == torch_opt.param_groups[0]["lr"]
    for p, q in zip(model.parameters(), torch_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=RTOL, atol=0)
    compared = 0
    for p, q in zip(model.parameters(), torch_model.parameters(), strict=True):
        mine, theirs = opt.state[p], torch_opt.state[q]
        for name in mine.keys() & theirs.keys():
            expected = theirs[name].to(mine[name].dtype)
            torch.testing.assert_close(mine[name], expected, rtol=RTOL, atol=1e-300)
            compared += 1
    assert compared > 0, "state buffers must be compared"
