"""skip_nonfinite=True: a step with a NaN or Inf gradient changes nothing, warns, and is counted."""

from __future__ import annotations

import math

import pytest
import torch
from optimizer_info import (
    CONFIGS,
    REPRESENTATIVES,
    assert_same_tensors,
    assert_unchanged,
    configs,
    loss_closure,
    make_data,
    make_model,
    snapshot,
    train,
)


def _bad_step(model, opt, value: float) -> None:
    """Computes the real gradients, then spoils one entry of a second-group parameter."""
    loss_closure(model, opt, make_data())()
    opt.param_groups[1]["params"][0].grad[0, 1] = value
    opt.step()


def _check_skip(config, value: float) -> None:
    model = make_model()
    opt = config.build(config.groups(model), skip_nonfinite=True)
    train(model, opt, 3)
    before = snapshot(opt)
    with pytest.warns(UserWarning, match="NaN or Inf.*skipped"):
        _bad_step(model, opt, value)
    assert_unchanged(opt, before)
    assert opt.skipped_steps == 1
    train(model, opt, 4)

    clean = make_model()
    clean_opt = config.build(config.groups(clean), skip_nonfinite=True)
    train(clean, clean_opt, 7)
    assert clean_opt.skipped_steps == 0
    assert_same_tensors(snapshot(opt)["params"], snapshot(clean_opt)["params"])
    for p, q in zip(model.parameters(), clean.parameters(), strict=True):
        assert_same_tensors(opt.state[p].values(), clean_opt.state[q].values())


@configs()
def test_a_nan_step_is_skipped_and_the_run_continues_as_if_it_never_happened(config):
    _check_skip(config, math.nan)


@pytest.mark.parametrize("value", [math.inf, -math.inf])
@configs(REPRESENTATIVES)
def test_an_inf_step_is_skipped(config, value):
    _check_skip(config, value)


def _after_one_bad_first_step(config):
    model = make_model()
    opt = config.build(config.groups(model), skip_nonfinite=True)
    with pytest.warns(UserWarning):
        _bad_step(model, opt, math.nan)
    return opt


@configs(CONFIGS[:1])
def test_a_nonfinite_grad_at_the_first_step_creates_no_state(config):
    opt = _after_one_bad_first_step(config)
    assert not opt.state and opt.skipped_steps == 1


@configs(REPRESENTATIVES)
def test_a_skipped_step_still_returns_the_closures_loss(config):
    model = make_model()
    opt = config.build(config.groups(model), skip_nonfinite=True)
    closure = loss_closure(model, opt, make_data())

    def spoiled() -> torch.Tensor:
        loss = closure()
        next(model.parameters()).grad.fill_(math.inf)
        return loss

    before = snapshot(opt)  # empty, but for Adagrad, whose state exists from construction
    with pytest.warns(UserWarning):
        loss = opt.step(spoiled)
    assert torch.isfinite(loss) and opt.skipped_steps == 1
    assert_unchanged(opt, before)


@configs(REPRESENTATIVES)
def test_without_skip_nonfinite_the_nan_goes_through(config):
    """The default is torch's behaviour: no check, the NaN reaches the parameters (Lion's sign
    maps NaN to 0, as torch.sign does: there it reaches the momentum only)."""
    model = make_model()
    opt = config.build(config.groups(model))
    if config.info.nonfinite_raises:
        with pytest.raises(RuntimeError, match=config.info.nonfinite_raises):
            _bad_step(model, opt, math.nan)
        return
    _bad_step(model, opt, math.nan)
    assert opt.skipped_steps == 0
    p = opt.param_groups[1]["params"][0]
    touched = [p, *(t for t in opt.state[p].values() if t.dim() > 0)]
    assert not all(torch.isfinite(t).all() for t in touched)


@configs(CONFIGS[:1])
def test_loading_a_state_dict_keeps_the_count_of_skipped_steps(config):
    """torch's load_state_dict goes through __setstate__; the counter must survive it."""
    opt = _after_one_bad_first_step(config)
    opt.load_state_dict(opt.state_dict())
    assert opt.skipped_steps == 1


def test_skip_together_refuses_what_cannot_work():
    """skip_together needs skip_nonfinite=True and an initialized process group, and says so."""
    import descend
    from descend.distributed import skip_together

    param = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="skip_nonfinite=True"):
        skip_together(descend.Adam([param]))
    with pytest.raises(ValueError, match="init_process_group"):
        skip_together(descend.Adam([param], skip_nonfinite=True))
